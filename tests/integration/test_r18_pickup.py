"""R18 pickup target: a ticket still queued `pickup_minutes` after it was queued is announced
once and its queue's `on_no_pickup` applies, with two timeout workers sweeping (a "minute"
lasts a second in tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token
from tests.support.tickets import hand_off, of, publish_queues_agent, ticket_path

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


async def target(store: ModeStore, tenant: str, policy: str, minutes: int = 2) -> None:
    settings = QueueSettings(pickup_minutes=minutes, on_no_pickup=policy)  # type: ignore[arg-type]
    await store.put_queue(tenant, "default", settings, "2026-01-01T00:00:00Z", "test", None)


async def test_r18_notify_announces_once_and_tells_the_user_again(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",))
    await target(store, tenant, "notify")
    opened = await hand_off(bus, who)

    [overdue] = await bus.wait_for(
        bus.topics.events, of(who, "ticket_changed", note="pickup_overdue"), timeout=30
    )

    assert (overdue["from_status"], overdue["status"], overdue["position"]) == (
        "queued",
        "queued",
        1,
    )
    assert (overdue["actor"], overdue["ticket_version"]) == ("system:pickup", 2)
    notices = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"), count=2)
    assert "still busy" in notices[1]["text"] and "number 1" in notices[1]["text"]
    # A later step of the same ticket goes through the same outbox: once it is out, anything
    # fired before it is out too, so the counts below are final.
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant)}"}
    claimed = await http.post(ticket_path(tenant, opened["ticket_id"], "claim"), headers=headers)
    assert claimed.status_code == 200 and claimed.json()["pickup_overdue"] is True
    await bus.wait_for(bus.topics.events, of(who, "ticket_changed", status="assigned"))
    assert len(bus.on(bus.topics.events, of(who, "ticket_changed", note="pickup_overdue"))) == 1
    assert len(bus.on(bus.topics.outbound, of(who, "outbound_message"))) == 2
    assert (await store.read_state(who.key)).mode == "human"
    # What the user was told is in the transcript the desk shows (found from outside).
    told = [t["text"] for t in await store.transcript(who.key, 20) if t["role"] == "system"]
    assert told == [n["text"] for n in notices]


async def test_r18_back_to_ai_returns_the_user_once_and_closes_the_ticket(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",))
    await target(store, tenant, "back_to_ai")
    opened = await hand_off(bus, who)

    [back] = await bus.wait_for(
        bus.topics.events, of(who, "mode_changed", to_mode="ai"), timeout=30
    )

    assert (back["cause"], back["actor"]) == ("timeout", "system:pickup")
    assert back["reason"] == "No teammate picked up within 2 minutes."
    [closed] = await bus.wait_for(bus.topics.events, of(who, "ticket_changed", status="closed"))
    assert (closed["ticket_id"], closed["ticket_version"]) == (opened["ticket_id"], 3)
    overdue = bus.on(bus.topics.events, of(who, "ticket_changed", note="pickup_overdue"))
    assert [o["ticket_version"] for o in overdue] == [2]
    message = who.message("hello again")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, routed = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.ai_requests
    # R20: the AI resumes knowing why, once; the user was told once.
    context = routed["routing"]["context"]
    assert (context["ticket_id"], context["ended_by"]) == (opened["ticket_id"], "timeout")
    assert context["handled_by"] is None
    returns = bus.on(
        bus.topics.outbound, lambda v: of(who, "outbound_message")(v) and "assistant" in v["text"]
    )
    assert len(returns) == 1, returns
    again = who.message("still there?")
    await bus.send(bus.topics.inbound, again, key=who.key)
    _, later = await bus.wait_routed(again["event_id"])
    assert later["routing"]["context"] is None
    assert len(bus.on(bus.topics.events, of(who, "mode_changed", to_mode="ai"))) == 1
    ticket = await store.ticket(opened["ticket_id"])
    assert ticket is not None and (ticket.status, ticket.pickup_overdue) == ("closed", True)


async def test_r18_a_ticket_picked_up_in_time_is_never_announced(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",))
    await target(store, tenant, "back_to_ai", minutes=4)
    opened = await hand_off(bus, who)
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant)}"}
    claimed = await http.post(ticket_path(tenant, opened["ticket_id"], "claim"), headers=headers)
    assert claimed.status_code == 200
    # Past the target, a released ticket gets a new one, counted from its release.
    released = await http.post(ticket_path(tenant, opened["ticket_id"], "release"), headers=headers)
    assert released.status_code == 200
    [overdue] = await bus.wait_for(
        bus.topics.events, of(who, "ticket_changed", note="pickup_overdue"), timeout=30
    )
    assert overdue["ticket_version"] == 4  # queued(1), assigned(2), released(3), overdue(4)
