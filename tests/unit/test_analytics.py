"""The R21 fold and report without servers: what each record counts, and how."""

from __future__ import annotations

from datetime import UTC, datetime

from services.handoff.analytics.domain import (
    HOUR_MS,
    Count,
    Effect,
    Fact,
    HumanReply,
    Journey,
    ModeChange,
    Reason,
    Sample,
    TicketChange,
    fold,
    hours_between,
    percentile,
)
from services.handoff.analytics.report import report
from services.handoff.analytics.store import Buckets

T0 = 10 * HOUR_MS  # an hour boundary
S = 1000


def run(facts: list[Fact], journey: Journey | None = None) -> tuple[Journey, list[Effect]]:
    j, effects = journey or Journey(), []
    for f in facts:
        step = fold(j, f)
        j = step.journey
        effects += step.effects
    return j, effects


def handoff(at: int, eid: str = "h1", cause: str = "agent", reason: str = "Asked") -> Fact:
    return ModeChange(eid, "human", cause, reason, at)


def created(at: int, tid: str = "tk1", queue: str = "billing") -> Fact:
    return TicketChange(tid, queue, None, "queued", at)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.0
    assert percentile([float(i) for i in range(1, 12)], 0.9) == 10.0


def test_hours_between_covers_every_overlapping_hour() -> None:
    assert hours_between(T0 + 1, T0 + HOUR_MS + 1) == [T0, T0 + HOUR_MS]
    assert hours_between(T0, T0 + HOUR_MS) == [T0]
    assert hours_between(T0, T0) == []


def test_a_handoff_counts_once_joined_with_its_ticket_in_either_order() -> None:
    expected = [Count(T0, "billing", "handoffs", "agent"), Reason(T0, "billing", "Asked")]
    _, first_mode = run([handoff(T0 + 5), created(T0 + 5)])
    _, first_ticket = run([created(T0 + 5), handoff(T0 + 5)])
    assert first_mode == expected
    assert first_ticket == expected


def test_pickup_wait_handle_time_and_first_reply() -> None:
    facts: list[Fact] = [
        handoff(T0),
        created(T0),
        HumanReply(T0 + 40 * S),
        HumanReply(T0 + 90 * S),  # not the first
        TicketChange("tk1", "billing", "queued", "assigned", T0 + 30 * S),
        TicketChange("tk1", "billing", "assigned", "assigned", T0 + 50 * S),  # reassigned
        TicketChange("tk1", "billing", "assigned", "resolved", T0 + 630 * S),
        ModeChange("r1", "ai", "operator", "Done", T0 + 630 * S),
    ]
    _, effects = run(facts)
    samples = [e for e in effects if isinstance(e, Sample)]
    assert samples == [
        Sample(T0, "billing", "first_reply", "h1", 40.0),
        Sample(T0, "billing", "pickup", "tk1", 30.0),
        Sample(T0, "billing", "handle", "tk1", 600.0),
    ]
    assert Count(T0, "billing", "returns", "operator") in effects


def test_a_reply_read_before_its_handoff_is_matched_when_the_handoff_is_read() -> None:
    _, effects = run([HumanReply(T0 + 20 * S), handoff(T0), created(T0)])
    assert Sample(T0, "billing", "first_reply", "h1", 20.0) in effects
    # A reply older than the handoff answers an earlier stretch: not this handoff's.
    _, effects = run([HumanReply(T0 - S), handoff(T0), created(T0)])
    assert not [e for e in effects if isinstance(e, Sample)]


def test_a_transfer_moves_the_pickup_to_the_queue_that_picked_it_up() -> None:
    facts: list[Fact] = [
        handoff(T0),
        created(T0, queue="default"),
        TicketChange("tk1", "billing", "queued", "queued", T0 + 10 * S),
        TicketChange("tk1", "billing", "queued", "assigned", T0 + 70 * S),
    ]
    _, effects = run(facts)
    assert effects[0] == Count(T0, "default", "handoffs", "agent")
    assert effects[-1] == Sample(T0, "billing", "pickup", "tk1", 70.0)


def test_bounce_back_within_24_hours_of_a_return_only() -> None:
    back = ModeChange("r1", "ai", "timeout", "Idle", T0)
    soon, late = T0 + 23 * HOUR_MS, T0 + 25 * HOUR_MS
    _, effects = run([back, handoff(soon, "h2"), created(soon, "tk2")])
    assert Count(soon - soon % HOUR_MS, "billing", "bounce_backs") in effects
    _, effects = run([back, handoff(late, "h2"), created(late, "tk2")])
    assert not [e for e in effects if isinstance(e, Count) and e.kind == "bounce_backs"]


def test_a_closed_ticket_never_assigned_has_no_handle_time() -> None:
    facts: list[Fact] = [
        handoff(T0),
        created(T0),
        TicketChange("tk1", "billing", "queued", "closed", T0 + HOUR_MS),
        ModeChange("r1", "ai", "timeout", "No pickup", T0 + HOUR_MS),
    ]
    _, effects = run(facts)
    assert not [e for e in effects if isinstance(e, Sample)]
    assert Count(T0 + HOUR_MS, "billing", "returns", "timeout") in effects


def test_report_totals_series_and_rates() -> None:
    b = Buckets(queues={"billing", "default"})
    b.counts[(T0, "billing", "handoffs", "agent")] = 3
    b.counts[(T0, "default", "handoffs", "operator")] = 1
    b.counts[(T0 + HOUR_MS, "billing", "bounce_backs", "")] = 1
    b.counts[(T0 + HOUR_MS, "billing", "handoffs", "agent")] = 1
    b.counts[(T0 + HOUR_MS, "billing", "returns", "timeout")] = 2
    b.reasons[(T0, "billing", "Refund")] = 3
    b.reasons[(T0, "default", "Asked")] = 1
    b.samples[(T0, "billing", "pickup")] = [10.0, 20.0, 30.0]
    b.samples[(T0 + HOUR_MS, "billing", "pickup")] = [100.0]
    start = datetime.fromtimestamp(T0 / 1000, UTC)
    end = datetime.fromtimestamp((T0 + 2 * HOUR_MS) / 1000, UTC)
    r = report("acme", start, end, b)
    assert r.totals.handoffs == 5
    assert r.totals.handoffs_by_cause == {"agent": 4, "operator": 1}
    assert r.totals.bounce_back_rate == 0.2
    assert [(x.reason, x.count) for x in r.totals.top_reasons] == [("Refund", 3), ("Asked", 1)]
    assert r.totals.pickup_wait_seconds.model_dump() == {"count": 4, "p50": 20.0, "p90": 100.0}
    assert [p.handoffs_by_queue for p in r.series] == [{"billing": 3, "default": 1}, {"billing": 1}]
    assert [(p.pickup_wait_p50, p.pickup_wait_p90) for p in r.series] == [
        (20.0, 30.0),
        (100.0, 100.0),
    ]
    billing = next(q for q in r.queues if q.queue == "billing")
    assert billing.handoffs == 4 and billing.returns_by_cause == {"timeout": 2}
    assert billing.first_human_reply_seconds.p50 is None
    assert r.model_dump(by_alias=True)["from"] == start
