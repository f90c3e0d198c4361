"""Tickets, queues and waiting without I/O (R14-R17): transitions, ETA, notices, the queue."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from services.handoff.domain.modes import AgentVersion, HandoffConfig, Rejection
from services.handoff.domain.tickets import (
    QueueChoice,
    QueueSettings,
    Refusal,
    Ticket,
    TicketStep,
    Waiting,
    eta_minutes,
    new_ticket,
    percentile,
    pickup_due_ms,
    plan_action,
    plan_queue,
    render,
    shard_of_ticket,
    ticket_id_for,
    waiting_line,
)
from tests.unit.builders import MINUTE_MS, NOW_MS, command

IKEY = "acme:support:web:alice"
QUEUED = new_ticket(ticket_id_for(IKEY, "t"), IKEY, "acme", "default", NOW_MS - 5000, "r", "agent")
ASSIGNED = replace(QUEUED, status="assigned", assignee="jane", version=2)


def step(result: TicketStep | Refusal) -> TicketStep:
    assert isinstance(result, TicketStep), result
    return result


def code(result: TicketStep | Refusal) -> str:
    assert isinstance(result, Refusal), result
    return result.code


def test_ticket_ids_name_their_shard_and_are_stable() -> None:
    tid = ticket_id_for(IKEY, "ticket", "cmd-1")
    assert tid == ticket_id_for(IKEY, "ticket", "cmd-1") != ticket_id_for(IKEY, "ticket", "cmd-2")
    from services.handoff.state.keys import shard_of

    assert shard_of_ticket(tid) == shard_of(IKEY)
    assert shard_of_ticket("tk99-" + "0" * 32) is None and shard_of_ticket("nope") is None


def test_claim_takes_a_queued_ticket_once() -> None:
    claimed = step(plan_action(QUEUED, "claim", "operator:jane", NOW_MS, assignee="jane"))
    assert (claimed.after.status, claimed.after.assignee, claimed.after.version) == (
        "assigned",
        "jane",
        2,
    )
    assert claimed.after.assignee_name == "jane" and claimed.picked_up
    assert code(plan_action(claimed.after, "claim", "operator:bob", NOW_MS, assignee="bob")) == (
        "already_assigned"
    )
    assert code(plan_action(claimed.after, "claim", "operator:jane", NOW_MS, assignee="jane")) == (
        "already_assigned"
    )


def test_assign_moves_the_owner_but_not_to_the_same_one() -> None:
    moved = step(
        plan_action(ASSIGNED, "assign", "operator:lead", NOW_MS, assignee="bob", display_name="Bob")
    )
    assert (moved.after.assignee, moved.after.assignee_name) == ("bob", "Bob")
    assert not moved.picked_up  # it had an owner already
    assert code(plan_action(ASSIGNED, "assign", "operator:lead", NOW_MS, assignee="jane")) == (
        "already_assigned"
    )


def test_transfer_requeues_unassigned_and_keeps_the_place_by_handoff_time() -> None:
    moved = step(plan_action(ASSIGNED, "transfer", "operator:jane", NOW_MS, queue="billing"))
    after = moved.after
    assert (after.queue, after.status, after.assignee) == ("billing", "queued", None)
    assert after.created_at_ms == QUEUED.created_at_ms and after.queued_at_ms == NOW_MS
    assert moved.note == "transferred"
    assert code(plan_action(QUEUED, "transfer", "operator:jane", NOW_MS, queue="default")) == (
        "same_queue"
    )


def test_release_needs_an_owner() -> None:
    released = step(plan_action(ASSIGNED, "release", "operator:jane", NOW_MS))
    assert (released.after.status, released.after.assignee) == ("queued", None)
    assert code(plan_action(QUEUED, "release", "operator:jane", NOW_MS)) == "not_assigned"


def test_resolve_keeps_the_note_and_ends_the_ticket() -> None:
    done = step(plan_action(ASSIGNED, "resolve", "operator:jane", NOW_MS, note="Refunded."))
    assert (done.after.status, done.after.resolution_note, done.after.ended_at_ms) == (
        "resolved",
        "Refunded.",
        NOW_MS,
    )
    for action in ("claim", "assign", "transfer", "release", "resolve"):
        refused = plan_action(
            done.after,
            action,
            "operator:x",
            NOW_MS,
            assignee="x",
            queue="billing",  # type: ignore[arg-type]
        )
        assert code(refused) == "ticket_closed"
    closed = replace(QUEUED, status="closed")
    assert code(plan_action(closed, "claim", "operator:x", NOW_MS, assignee="x")) == "ticket_closed"


def test_a_stale_expected_version_is_a_conflict() -> None:
    stale = plan_action(QUEUED, "claim", "operator:x", NOW_MS, assignee="x", expected_version=7)
    assert code(stale) == "version_conflict"


def test_redis_round_trip() -> None:
    assert Ticket.from_redis(ASSIGNED.to_redis()) == ASSIGNED
    assert Ticket.from_redis({}) is None


@pytest.mark.parametrize(
    ("waits", "position", "teammates", "expected"),
    [
        ([], 1, 1, None),  # no pickups: no estimate, never a made-up number
        ([60_000, 120_000], 1, 1, None),  # two are not enough
        ([60_000, 120_000, 180_000], 1, 1, 2),  # median 2 minutes
        ([60_000, 120_000, 180_000], 3, 1, 6),
        ([60_000, 120_000, 180_000], 3, 2, 3),  # two teammates share the line
        ([1_000, 2_000, 3_000], 1, 0, 1),  # at least a minute; nobody online counts as one
    ],
)
def test_eta(waits: list[int], position: int, teammates: int, expected: int | None) -> None:
    assert eta_minutes(waits, position, teammates, MINUTE_MS) == expected


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([30, 10, 20], 0.5) == 20
    assert percentile(list(range(1, 11)), 0.9) == 9


def test_waiting_lines() -> None:
    assert waiting_line(Waiting(3, None, None)) == (
        "You're number 3 in line. We don't have a wait estimate yet."
    )
    assert waiting_line(Waiting(1, 1, None)) == (
        "You're number 1 in line. The expected wait is about 1 minute."
    )
    away = waiting_line(Waiting(2, 5, "Monday 30 March, 09:00 (Europe/Berlin)"))
    assert away.startswith("Our team is away right now and back Monday 30 March, 09:00")
    template = "Position {position}, about {eta_minutes} min."
    assert waiting_line(Waiting(2, 4, None), template) == "Position 2, about 4 min."
    # The template needs an ETA there is not: the built-in sentence says so honestly.
    assert waiting_line(Waiting(2, None, None), template).endswith("a wait estimate yet.")


def test_templates_fill_known_placeholders_and_keep_other_text() -> None:
    assert render("{teammate} is here", {"teammate": "Jane"}) == "Jane is here"
    assert render("{teammate} is here", {"teammate": None}) is None
    assert render("{name} {position} {", {"position": 2}) == "{name} 2 {"


def version(**handoff: object) -> AgentVersion:
    return AgentVersion(3, HandoffConfig(enabled=True, **handoff))  # type: ignore[arg-type]


CLOSED = QueueSettings(hours={})  # never open


def test_queue_defaults_to_the_first_listed_and_refuses_unlisted() -> None:
    choice = plan_queue(command(), version(queues=("billing", "default")), {}, NOW_MS)
    assert isinstance(choice, QueueChoice) and choice.queue == "billing"
    assert plan_queue(command(), version(), {}, NOW_MS) == QueueChoice("default", QueueSettings())
    refused = plan_queue(command(queue="vip"), version(queues=("billing",)), {}, NOW_MS)
    assert isinstance(refused, Rejection) and refused.code == "unknown_queue"


def test_out_of_hours_policies() -> None:
    queued = plan_queue(command(), version(), {"default": CLOSED}, NOW_MS)
    assert isinstance(queued, QueueChoice)  # `queue`: handed off, the notice says when
    stay = version(out_of_hours="stay_with_ai")
    refused = plan_queue(command(), stay, {"default": CLOSED}, NOW_MS)
    assert isinstance(refused, Rejection) and refused.code == "out_of_hours"
    assert refused.notice and "isn't available" in refused.notice
    operator = plan_queue(command(source="operator"), stay, {"default": CLOSED}, NOW_MS)
    assert isinstance(operator, QueueChoice)  # a person's decision goes through


def test_queue_settings_validation() -> None:
    ok = QueueSettings.model_validate(
        {"timezone": "Europe/Berlin", "hours": {"mon": ["09:00\u201317:00"]}, "pickup_minutes": 5}
    )
    assert ok.hours == {"mon": ["09:00-17:00"]}
    for bad in (
        {"timezone": "Nowhere/City"},
        {"hours": {"mon": ["17:00-29:00"]}},
        {"hours": {"funday": ["09:00-12:00"]}},
        {"closed_dates": ["24.12.2026"]},
        {"closed_dates": ["2026-02-30"]},
        {"pickup_minutes": 0},
        {"on_no_pickup": "panic"},
        {"extra": 1},
    ):
        with pytest.raises(ValidationError):
            QueueSettings.model_validate(bad)


def test_the_pickup_target_counts_opening_time_only() -> None:
    """Found from outside: a user told the team is away until noon was told at once that
    "everyone is still busy": the target ran while nobody could pick up."""
    # NOW_MS is Wednesday 2024-05-01 12:00 UTC = 14:00 in Berlin.
    open_now = QueueSettings(timezone="Europe/Berlin", pickup_minutes=10)
    assert pickup_due_ms(open_now, NOW_MS, NOW_MS, MINUTE_MS) == NOW_MS + 10 * MINUTE_MS
    later = QueueSettings(
        timezone="Europe/Berlin", hours={"wed": ["16:00-18:00"]}, pickup_minutes=10
    )
    two_hours = 2 * 3600 * 1000
    assert pickup_due_ms(later, NOW_MS, NOW_MS, MINUTE_MS) == NOW_MS + two_hours + 10 * MINUTE_MS
    assert pickup_due_ms(QueueSettings(), NOW_MS, NOW_MS, MINUTE_MS) is None  # no target
