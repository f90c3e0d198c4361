"""R21 measured: plain JSON ModeChanged, TicketChanged and OutboundMessage records (as kcat
would send them) on the stack's topics, and the analytics API's figures, exactly; a record
sent twice counts once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import Sandbox, wait_until
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token, route, user_path
from tests.support.analytics import TicketLife, human_reply, mode_changed, settled
from tests.support.tickets import hand_off, of, publish_queues_agent, ticket_path

pytestmark = pytest.mark.integration

DAY = "2026-11-25"
RANGE = {"from": f"{DAY}T10:00:00Z", "to": f"{DAY}T12:00:00Z"}


def at(hhmmss: str) -> str:
    return f"{DAY}T{hhmmss}Z"


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


def auth(jwt_secret: str, tenant: str, role: str = "viewer") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(jwt_secret, tenant, role, sub='jane')}"}


async def test_r21_analytics_from_the_public_events_exactly_once(
    bus: Bus, http: httpx.AsyncClient, jwt_secret: str, tenant: str
) -> None:
    alice, bob, carol = (Who(tenant, "support", user=u) for u in ("alice", "bob", "carol"))
    events, outbound = bus.topics.events, bus.topics.outbound
    a1, b1, c1, a2 = (
        TicketLife(alice, "billing"),
        TicketLife(bob, "billing"),
        TicketLife(carol, "default"),
        TicketLife(alice, "billing"),
    )
    # Built in the order they happen (a TicketLife counts its versions and statuses).
    a_handoff = mode_changed(alice, "human", "agent", "Refund request", at("10:00:00"))
    a_created = a1.change("queued", at("10:00:00"))
    a_assigned = a1.change("assigned", at("10:02:00"), "jane")
    a_reply = human_reply(alice, at("10:03:00"))
    a_resolved = a1.change("resolved", at("10:12:00"), "jane")
    a_back = mode_changed(alice, "ai", "operator", "Refunded.", at("10:12:00"))
    c_created = c1.change("queued", at("10:10:00"))
    sends: list[tuple[str, Who, dict[str, Any]]] = [
        # alice: picked up after 120 s, first reply after 180 s, resolved 600 s after pickup
        (events, alice, a_handoff),
        (events, alice, a_created),
        (events, alice, a_assigned),
        (outbound, alice, a_reply),
        (outbound, alice, human_reply(alice, at("10:04:00"))),
        (events, alice, a_resolved),
        (events, alice, a_back),
        # bob: picked up after 30 s, first reply after 60 s, still open
        (events, bob, mode_changed(bob, "human", "agent", "Refund request", at("10:05:00"))),
        (events, bob, b1.change("queued", at("10:05:00"))),
        (events, bob, b1.change("assigned", at("10:05:30"), "omar")),
        (outbound, bob, human_reply(bob, at("10:06:00"))),
        # carol: an operator's handoff nobody picked up, closed by the idle timeout
        (
            events,
            carol,
            mode_changed(carol, "human", "operator", "Asked for a person", at("10:10:00")),
        ),
        (events, carol, c_created),
        (events, carol, c_created),  # sent twice: counts once
        (events, carol, c1.change("closed", at("11:10:00"))),
        (events, carol, mode_changed(carol, "ai", "timeout", "Idle.", at("11:10:00"))),
        # sent twice count once (same event ids, later positions); alice's later records
        # and carol's return come after them on their partitions, so once those count, these
        # have been read
        (events, alice, a_handoff),
        (events, alice, a_assigned),
        (events, alice, a_back),
        (outbound, alice, a_reply),
        # alice back 78 minutes after her return: a bounce-back, picked up after 40 s
        (events, alice, mode_changed(alice, "human", "agent", "Refund request", at("11:30:00"))),
        (events, alice, a2.change("queued", at("11:30:00"))),
        (events, alice, a2.change("assigned", at("11:30:40"), "jane")),
    ]
    for topic, who, record in sends:
        await bus.send(topic, record, key=who.key)
    # A TicketChanged the analytics cannot read is dead-lettered with the reason.
    broken = {k: v for k, v in b1.change("resolved", at("10:20:00")).items() if k != "queue"}
    await bus.send(events, broken, key=bob.key)

    path = f"/v1/tenants/{tenant}/analytics"
    headers = auth(jwt_secret, tenant)
    body = await settled(
        http,
        path,
        headers,
        lambda b: (
            b["totals"]["returns_to_ai"] >= 2 and b["totals"]["pickup_wait_seconds"]["count"] >= 3
        ),
        params=RANGE,
    )
    totals = body["totals"]
    assert totals == {
        "handoffs": 4,
        "handoffs_by_cause": {"agent": 3, "operator": 1},
        "top_reasons": [
            {"reason": "Refund request", "count": 3},
            {"reason": "Asked for a person", "count": 1},
        ],
        "returns_to_ai": 2,
        "returns_by_cause": {"operator": 1, "timeout": 1},
        "bounce_backs": 1,
        "bounce_back_rate": 0.25,
        "pickup_wait_seconds": {"count": 3, "p50": 40.0, "p90": 120.0},
        "first_human_reply_seconds": {"count": 2, "p50": 60.0, "p90": 180.0},
        "handle_seconds": {"count": 1, "p50": 600.0, "p90": 600.0},
    }
    assert body["from"] == "2026-11-25T10:00:00Z" and body["bucket_seconds"] == 3600
    series = [
        (
            p["start"],
            p["handoffs_by_queue"],
            p["returns_by_cause"],
            p["pickup_wait_p50"],
            p["pickup_wait_p90"],
        )
        for p in body["series"]
    ]
    assert series == [
        (at("10:00:00"), {"billing": 2, "default": 1}, {"operator": 1}, 30.0, 120.0),
        (at("11:00:00"), {"billing": 1}, {"timeout": 1}, 40.0, 40.0),
    ]
    queues = {q["queue"]: q for q in body["queues"]}
    assert sorted(queues) == ["billing", "default"]
    billing, default = queues["billing"], queues["default"]
    assert (billing["handoffs"], billing["bounce_backs"]) == (3, 1)
    assert billing["bounce_back_rate"] == pytest.approx(1 / 3)
    assert billing["returns_by_cause"] == {"operator": 1}
    assert billing["pickup_wait_seconds"] == {"count": 3, "p50": 40.0, "p90": 120.0}
    assert (default["handoffs"], default["returns_by_cause"]) == (1, {"timeout": 1})
    assert default["pickup_wait_seconds"] == {"count": 0, "p50": None, "p90": None}
    assert [p["handoffs"] for p in default["series"]] == [1, 0]

    letters = await bus.wait_for(
        bus.topics.dead_letter,
        lambda v: v.get("source_topic") == events and v.get("key") == bob.key,
    )
    assert letters[0]["error"]["kind"] == "schema_invalid"
    assert "queue" in letters[0]["error"]["detail"]

    metrics = (await http.get("/metrics")).text
    labels = f'cause="agent",queue="billing",tenant="{tenant}"'
    assert f"handoff_handoffs_total{{{labels}}} 3.0" in metrics
    assert f'handoff_returns_to_ai_total{{cause="operator",tenant="{tenant}"}} 1.0' in metrics
    assert f'handoff_bounce_backs_total{{queue="billing",tenant="{tenant}"}} 1.0' in metrics
    assert f'handoff_pickup_wait_seconds_count{{queue="billing",tenant="{tenant}"}} 3.0' in metrics


async def test_r21_analytics_range_and_tenancy(
    services: Any, http: httpx.AsyncClient, jwt_secret: str, tenant: str
) -> None:
    path = f"/v1/tenants/{tenant}/analytics"
    mine = auth(jwt_secret, tenant)
    default = await http.get(path, headers=mine)
    assert default.status_code == 200
    body = default.json()
    assert len(body["series"]) in (24, 25)  # the last 24 h: whole hours that overlap it
    assert body["totals"]["handoffs"] == 0 and body["totals"]["bounce_back_rate"] is None

    other = await http.get(path, headers=auth(jwt_secret, f"{tenant}x"))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert (await http.get(path)).status_code == 401

    bad = [
        {"from": "2026-11-25T12:00:00Z", "to": "2026-11-25T10:00:00Z"},
        {"from": "2026-10-01T00:00:00Z", "to": "2026-11-25T00:00:00Z"},
        {"from": "2026-11-25T10:00:00", "to": "2026-11-25T12:00:00Z"},
    ]
    for params in bad:
        r = await http.get(path, params=params, headers=mine)
        assert r.status_code == 422, params
        assert r.json()["error"]["code"] == "invalid_range"
    garbage = await http.get(path, params={"from": "yesterday"}, headers=mine)
    assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "validation_failed"


def seconds_between(earlier: str, later: str) -> float:
    """As the analytics measure: whole milliseconds."""

    def ms(at: str) -> int:
        return int(datetime.fromisoformat(at).timestamp() * 1000)

    return (ms(later) - ms(earlier)) / 1000


async def test_r21_a_real_handoff_claim_reply_and_resolve_are_measured(
    bus: Bus, store: ModeStore, http: httpx.AsyncClient, jwt_secret: str, tenant: str
) -> None:
    """End to end through the services: the figures are the differences of the times on the
    events the handoff service itself emitted."""
    who = Who(tenant, "support", user="dora")
    await publish_queues_agent(store, who)
    await route(bus, who, "I was charged twice")
    opened = await hand_off(bus, who, queue="billing", reason="Charged twice")
    jane = auth(jwt_secret, tenant, "editor")
    ticket = ticket_path(tenant, opened["ticket_id"])
    assert (await http.post(f"{ticket}/claim", headers=jane)).status_code == 200
    replied = await http.post(
        f"{user_path(who)}/agents/support/messages", json={"text": "Hi"}, headers=jane
    )
    assert replied.status_code == 201, replied.text
    resolved = await http.post(f"{ticket}/resolve", json={"note": "Refunded."}, headers=jane)
    assert resolved.status_code == 200, resolved.text

    ended = await bus.wait_for(bus.topics.events, of(who, "ticket_changed", status="resolved"))
    [assigned] = bus.on(bus.topics.events, of(who, "ticket_changed", status="assigned"))
    [reply] = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message", sender="human"))
    [handoff] = bus.on(bus.topics.events, of(who, "mode_changed", to_mode="human"))
    await bus.wait_for(bus.topics.events, of(who, "mode_changed", to_mode="ai"))

    path = f"/v1/tenants/{tenant}/analytics"
    body = await settled(
        http,
        path,
        auth(jwt_secret, tenant),
        lambda b: (  # every record of the stretch folded (they come from two topics)
            b["totals"]["returns_to_ai"] >= 1
            and b["totals"]["first_human_reply_seconds"]["count"] >= 1
            and b["totals"]["pickup_wait_seconds"]["count"] >= 1
            and b["totals"]["handle_seconds"]["count"] >= 1
        ),
    )
    billing = {q["queue"]: q for q in body["queues"]}["billing"]
    wait = seconds_between(opened["changed_at"], assigned["changed_at"])
    first = seconds_between(handoff["changed_at"], reply["sent_at"])
    handle = seconds_between(assigned["changed_at"], ended[0]["changed_at"])
    assert (billing["handoffs"], billing["handoffs_by_cause"]) == (1, {"agent": 1})
    assert billing["top_reasons"] == [{"reason": "Charged twice", "count": 1}]
    assert billing["pickup_wait_seconds"] == {"count": 1, "p50": wait, "p90": wait}
    assert billing["first_human_reply_seconds"] == {"count": 1, "p50": first, "p90": first}
    assert billing["handle_seconds"] == {"count": 1, "p50": handle, "p90": handle}
    assert billing["returns_by_cause"] == {"operator": 1}


async def test_r21_analytics_consumer_killed_mid_stream_counts_each_record_once(
    sandbox: tuple[Sandbox, Bus, ModeStore], jwt_secret: str
) -> None:
    """The handoff service (and its analytics consumer) SIGKILLed while 800 records stream
    in, then restarted: every handoff, pickup and handle time counted exactly once."""
    box, bus, _ = sandbox
    handoff = box.service("services.handoff", "h")
    tenant, users = f"t{uuid.uuid4().hex[:8]}", 200
    path = f"/v1/tenants/{tenant}/analytics"
    headers = auth(jwt_secret, tenant)

    async def produce() -> None:
        for n in range(users):
            who = Who(tenant, "support", user=f"u{n}")
            life = TicketLife(who, "default")
            for record in (
                mode_changed(who, "human", "agent", "Asked", at("10:00:00")),
                life.change("queued", at("10:00:00")),
                life.change("assigned", at("10:00:30"), "jane"),
                life.change("resolved", at("10:05:30"), "jane"),
            ):
                await bus.send(bus.topics.events, record, key=who.key)
            if n % 10 == 9:
                await asyncio.sleep(0.05)  # pacing the load, so the kill lands mid-stream

    async def handoffs(http: httpx.AsyncClient) -> int:
        body = (await http.get(path, params=RANGE, headers=headers)).json()
        return int(body["totals"]["handoffs"])

    producing = asyncio.create_task(produce())
    async with httpx.AsyncClient(base_url=handoff.url, timeout=30) as http:
        await wait_until(lambda: handoffs(http), 60, "the first handoffs counted")
    assert not producing.done()  # records still on their way: the kill is mid-stream
    handoff.kill()
    handoff.start()
    handoff.wait_ready(60)
    await producing
    async with httpx.AsyncClient(base_url=handoff.url, timeout=30) as http:
        body = await settled(
            http,
            path,
            headers,
            lambda b: b["totals"]["handle_seconds"]["count"] >= users,
            timeout=90,
            params=RANGE,
        )
    totals = body["totals"]
    assert totals["handoffs"] == users, totals
    assert totals["pickup_wait_seconds"] == {"count": users, "p50": 30.0, "p90": 30.0}
    assert totals["handle_seconds"] == {"count": users, "p50": 300.0, "p90": 300.0}
    assert totals["top_reasons"] == [{"reason": "Asked", "count": users}]
