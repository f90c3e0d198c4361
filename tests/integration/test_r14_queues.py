"""R14 queues: an accepted handoff opens exactly one ticket in one queue, listed oldest first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import wait_until
from services.handoff.state.keys import queues_key
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token
from tests.support.tickets import (
    hand_off,
    of,
    publish_queues_agent,
    queue_path,
    send_handoff,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


async def test_r14_a_handoff_into_a_named_queue_opens_one_ticket_there(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)

    opened = await hand_off(bus, who, queue="billing")

    assert (opened["queue"], opened["status"], opened["position"]) == ("billing", "queued", 1)
    assert opened["ticket_version"] == 1 and opened["assignee"] is None
    [ticket] = await bus.wait_for(bus.topics.human_queue, of(who, "handoff_ticket"))
    assert (ticket["ticket_id"], ticket["queue"], ticket["status"]) == (
        opened["ticket_id"],
        "billing",
        "queued",
    )
    stored = await store.ticket(opened["ticket_id"])
    assert stored is not None and (stored.queue, stored.status) == ("billing", "queued")
    state = await store.read_state(who.key)
    assert (state.ticket_id, state.queue) == (opened["ticket_id"], "billing")
    message = who.message("hello?")
    await bus.send(bus.topics.inbound, message, key=who.key)
    _, routed = await bus.wait_routed(message["event_id"])
    assert (routed["routing"]["ticket_id"], routed["routing"]["queue"]) == (
        opened["ticket_id"],
        "billing",
    )
    assert len(bus.on(bus.topics.events, of(who, "ticket_changed"))) == 1


async def test_r14_no_queue_named_is_the_versions_first(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("vip", "default"))
    opened = await hand_off(bus, who)
    assert opened["queue"] == "vip"


async def test_r14_a_queue_the_version_does_not_list_is_rejected(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, queues=("default",))
    command = await send_handoff(bus, who, queue="billing")
    [rejected] = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert (rejected["type"], rejected["code"]) == ("command_rejected", "unknown_queue")
    assert (await store.read_state(who.key)).mode == "ai"
    message = who.message("so?")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, _ = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.ai_requests
    assert bus.on(bus.topics.events, of(who, "ticket_changed")) == []


async def test_r14_operators_list_a_queue_oldest_first_with_position_and_wait(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    users = [Who(tenant, "support", user=f"u{n}") for n in range(3)]
    await publish_queues_agent(store, users[0])
    opened = [await hand_off(bus, who, queue="billing") for who in users]
    assert [o["position"] for o in opened] == [1, 2, 3]
    headers = {"Authorization": f"Bearer {make_token(jwt_secret, tenant, role='viewer')}"}

    r = await http.get(queue_path(tenant, "billing", "tickets"), headers=headers)

    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["ticket_id"] for i in items] == [o["ticket_id"] for o in opened]
    assert [i["position"] for i in items] == [1, 2, 3]
    waits = [i["waiting_seconds"] for i in items]
    assert waits == sorted(waits, reverse=True) and waits[-1] >= 0
    assert {i["external_id"] for i in items} == {"u0", "u1", "u2"}
    status = (await http.get(queue_path(tenant, "billing"), headers=headers)).json()["status"]
    assert (status["waiting"], status["assigned"]) == (3, 0)
    assert status["oldest_wait_seconds"] >= waits[0] - 1


async def test_r14_an_idle_timeout_closes_the_ticket_once(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who, idle_timeout_minutes=1)  # one second in tests
    opened = await hand_off(bus, who)
    [closed] = await bus.wait_for(
        bus.topics.events, of(who, "ticket_changed", status="closed"), timeout=30
    )
    assert (closed["ticket_id"], closed["note"], closed["actor"]) == (
        opened["ticket_id"],
        "mode_returned",
        "system:timeout",
    )
    assert closed["ticket_version"] == 2
    [back] = await bus.wait_for(bus.topics.events, of(who, "mode_changed", cause="timeout"))
    assert back["to_mode"] == "ai"
    message = who.message("anyone?")
    await bus.send(bus.topics.inbound, message, key=who.key)
    await bus.wait_routed(message["event_id"])
    assert len(bus.on(bus.topics.events, of(who, "ticket_changed", status="closed"))) == 1


async def test_r14_a_lost_queue_index_entry_is_repaired_by_the_sweep(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    opened = await hand_off(bus, who)
    # As if the process died between the ticket's step and its index write.
    await store.unindex_ticket(tenant, "default", opened["ticket_id"])
    now = await store.redis_now_ms(queues_key(tenant))

    async def listed() -> bool:
        found = await store.queue_tickets(tenant, "default", now)
        return [t.ticket_id for t in found] == [opened["ticket_id"]]

    await wait_until(listed, 20, "the waiting sweep to re-index the ticket")
