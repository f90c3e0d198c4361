"""R15 one owner: racing claims, transfer, release, assign, resolve, each one TicketChanged."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token
from tests.support.tickets import hand_off, of, publish_queues_agent, ticket_path

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


def auth(jwt_secret: str, tenant: str, sub: str, role: str = "editor") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(jwt_secret, tenant, role=role, sub=sub)}"}


async def test_r15_twenty_teammates_claim_one_ticket_and_exactly_one_wins(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    opened = await hand_off(bus, who)
    path = ticket_path(tenant, opened["ticket_id"], "claim")

    async def claim(n: int) -> httpx.Response:
        return await http.post(path, headers=auth(jwt_secret, tenant, f"mate-{n}"))

    answers = await asyncio.gather(*(claim(n) for n in range(20)))

    statuses = Counter(r.status_code for r in answers)
    assert statuses == {200: 1, 409: 19}, statuses
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {
        "already_assigned"
    }
    [winner] = [r.json() for r in answers if r.status_code == 200]
    assert winner["status"] == "assigned" and winner["ticket_version"] == 2
    # A later ticket event of the interaction proves nothing more is on its way.
    release = await http.post(
        ticket_path(tenant, opened["ticket_id"], "release"),
        headers=auth(jwt_secret, tenant, winner["assignee"]),
    )
    assert release.status_code == 200
    await bus.wait_for(bus.topics.events, of(who, "ticket_changed", ticket_version=3))
    assigned = bus.on(bus.topics.events, of(who, "ticket_changed", status="assigned"))
    assert len(assigned) == 1, assigned
    assert assigned[0]["assignee"] == winner["assignee"]
    assert assigned[0]["actor"] == f"operator:{winner['assignee']}"


async def test_r15_transfer_then_claim_by_another_teammate(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    ticket_id = (await hand_off(bus, who))["ticket_id"]
    jane, bob = auth(jwt_secret, tenant, "jane"), auth(jwt_secret, tenant, "bob")

    claimed = await http.post(ticket_path(tenant, ticket_id, "claim"), headers=jane)
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "jane"
    moved = await http.post(
        ticket_path(tenant, ticket_id, "transfer"), json={"queue": "billing"}, headers=jane
    )
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["queue"], body["status"], body["assignee"], body["position"]) == (
        "billing",
        "queued",
        None,
        1,
    )
    listed = await http.get(f"/v1/tenants/{tenant}/queues/billing/tickets", headers=bob)
    assert [t["ticket_id"] for t in listed.json()["items"]] == [ticket_id]
    assert (await http.get(f"/v1/tenants/{tenant}/queues/default/tickets", headers=bob)).json()[
        "items"
    ] == []
    taken = await http.post(
        ticket_path(tenant, ticket_id, "claim"), json={"display_name": "Bob B."}, headers=bob
    )
    assert taken.status_code == 200
    assert (taken.json()["assignee"], taken.json()["assignee_name"]) == ("bob", "Bob B.")
    assert taken.json()["ticket_version"] == 4

    changes = await bus.wait_for(bus.topics.events, of(who, "ticket_changed"), count=4)
    assert [(c["from_status"], c["status"], c["queue"], c["assignee"]) for c in changes] == [
        (None, "queued", "default", None),
        ("queued", "assigned", "default", "jane"),
        ("assigned", "queued", "billing", None),
        ("queued", "assigned", "billing", "bob"),
    ]
    assert [c["ticket_version"] for c in changes] == [1, 2, 3, 4]
    assert changes[2]["note"] == "transferred" and changes[2]["position"] == 1
    # The router names the ticket and its (new) queue in human mode.
    message = who.message("still there?")
    await bus.send(bus.topics.inbound, message, key=who.key)
    _, routed = await bus.wait_routed(message["event_id"])
    assert routed["routing"]["ticket_id"] == ticket_id and routed["routing"]["queue"] == "billing"


async def test_r15_resolve_returns_to_ai_with_the_note_in_one_step(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    ticket_id = (await hand_off(bus, who))["ticket_id"]
    jane = auth(jwt_secret, tenant, "jane")
    await http.post(ticket_path(tenant, ticket_id, "claim"), headers=jane)

    done = await http.post(
        ticket_path(tenant, ticket_id, "resolve"), json={"note": "Refund issued."}, headers=jane
    )

    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["resolution_note"]) == ("resolved", "Refund issued.")
    [back] = await bus.wait_for(bus.topics.events, of(who, "mode_changed", to_mode="ai"))
    assert (back["cause"], back["actor"]) == ("operator", "operator:jane")
    assert "Refund issued." in back["reason"]
    [resolved] = await bus.wait_for(bus.topics.events, of(who, "ticket_changed", status="resolved"))
    assert (resolved["from_status"], resolved["note"]) == ("assigned", "Refund issued.")
    assert (await store.ticket(ticket_id)).resolution_note == "Refund issued."  # type: ignore[union-attr]
    message = who.message("thanks")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, routed = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.ai_requests and routed["routing"]["ticket_id"] is None
    again = await http.post(ticket_path(tenant, ticket_id, "resolve"), headers=jane)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "ticket_closed")
    assert len(bus.on(bus.topics.events, of(who, "ticket_changed", status="resolved"))) == 1


async def test_r15_resolve_without_return_keeps_human_mode(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    ticket_id = (await hand_off(bus, who))["ticket_id"]
    jane = auth(jwt_secret, tenant, "jane")

    done = await http.post(
        ticket_path(tenant, ticket_id, "resolve"),
        json={"note": "Waiting for the customer's photo.", "return_to_ai": False},
        headers=jane,
    )

    assert done.status_code == 200 and done.json()["status"] == "resolved"
    message = who.message("here is the photo")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, routed = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.human_queue and routed["routing"]["mode"] == "human"
    assert bus.on(bus.topics.events, of(who, "mode_changed", to_mode="ai")) == []
    assert (await store.read_state(who.key)).mode == "human"


async def test_r15_an_operator_switch_to_ai_closes_the_open_ticket_once(
    bus: Bus, store: ModeStore, tenant: str, http: httpx.AsyncClient, jwt_secret: str
) -> None:
    who = Who(tenant, "support")
    await publish_queues_agent(store, who)
    ticket_id = (await hand_off(bus, who))["ticket_id"]
    path = f"/v1/tenants/{tenant}/users/web/alice/agents/support/mode"
    r = await http.put(
        path,
        json={"mode": "ai", "reason": "Handled by phone."},
        headers=auth(jwt_secret, tenant, "jane"),
    )
    assert r.status_code == 200, r.text
    [closed] = await bus.wait_for(bus.topics.events, of(who, "ticket_changed", status="closed"))
    assert (closed["ticket_id"], closed["from_status"], closed["note"]) == (
        ticket_id,
        "queued",
        "mode_returned",
    )
    assert closed["actor"] == "operator:jane" and closed["position"] is None
    ticket = await store.ticket(ticket_id)
    assert ticket is not None and ticket.status == "closed"
    claim = await http.post(
        ticket_path(tenant, ticket_id, "claim"), headers=auth(jwt_secret, tenant, "bob")
    )
    assert (claim.status_code, claim.json()["error"]["code"]) == (409, "ticket_closed")
