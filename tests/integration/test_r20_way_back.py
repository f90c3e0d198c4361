"""R20 the way back, against the running services on a real Kafka broker and real Redis.

Whenever the interaction returns to the AI the user gets one system notice (the return
notice in force when human mode began), and the next message routed to the AI carries
`routing.context` (what happened in the human stretch), once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of, new_id
from devstack.harness.sandbox import NOTICE, human_until, redis_now_ms, wait_for_lease_expiry
from services.handoff.domain.modes import DEFAULT_RETURN_NOTICE, HandoffConfig
from services.handoff.domain.routing import RouteRequest
from services.handoff.state.keys import InteractionKeys, shard_of
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, make_token, user_path

# R3's notice, then R16's place in line (the queue's first ticket: no estimate yet).
HANDOFF_NOTICE = f"{NOTICE} You're number 1 in line. We don't have a wait estimate yet."

pytestmark = pytest.mark.integration

RETURN_NOTICE = "You're back with the Acme assistant. Thanks for your patience!"
REASON = "The user wants a refund for a double charge."


@pytest.fixture
async def desk(api_url: str, jwt_secret: str, tenant: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield Api(http, make_token(jwt_secret, tenant=tenant, sub="jane"))


async def publish(store: ModeStore, who: Who, idle: int | None = None, text: str = "") -> None:
    config = HandoffConfig(
        enabled=True,
        idle_timeout_minutes=idle,
        notice_text=NOTICE,
        return_notice_text=text or RETURN_NOTICE,
    )
    n = await store.apply_agent_version(who.tenant, who.agent, config, "2026-01-01T00:00Z", "t")
    await store.publish_agent_version(who.tenant, who.agent, n)


async def route(bus: Bus, who: Who, text: str) -> tuple[str, Any]:
    message = who.message(text)
    await bus.send(bus.topics.inbound, message, key=who.key)
    return await bus.wait_routed(message["event_id"])


async def hand_off(bus: Bus, who: Who) -> dict[str, Any]:
    """An agent's to_human; returns the HandoffTicket."""
    command = who.command("to_human", reason=REASON)
    await bus.send(bus.topics.commands, command, key=who.key)
    [ticket] = await bus.wait_for(
        bus.topics.human_queue,
        lambda v: (
            v.get("type") == "handoff_ticket" and v.get("command_id") == command["command_id"]
        ),
    )
    return ticket  # type: ignore[no-any-return]


def system_notices(bus: Bus, who: Who, text: str) -> list[Any]:
    return bus.on(
        bus.topics.outbound,
        lambda v: (
            isinstance(v, dict)
            and v.get("sender") == "system"
            and v.get("text") == text
            and key_of(v) == who.key
        ),
    )


async def test_r20_operator_switch_back_sends_one_notice_and_the_next_ai_message_has_context(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish(store, who)
    await route(bus, who, "I was charged twice")
    ticket = await hand_off(bus, who)
    # The version changes during the stretch: the notice in force at the handoff is sent.
    await publish(store, who, text="A newer return notice, not this stretch's.")
    topic, _ = await route(bus, who, "is anyone there?")
    assert topic == bus.topics.human_queue
    reply = await desk.post(
        f"{user_path(who)}/agents/support/messages", {"text": "Jane here: refund issued."}
    )
    assert reply.status_code == 201, reply.text

    back = await desk.switch(who, "ai", "Refund done.")
    assert back.status_code == 200, back.text

    [notice] = await bus.wait_for(
        bus.topics.outbound, lambda v: v.get("text") == RETURN_NOTICE and key_of(v) == who.key
    )
    assert (notice["sender"], notice["conversation_id"]) == ("system", "c-1")
    topic, first = await route(bus, who, "thanks! one more question")
    assert topic == bus.topics.ai_requests
    context = first["routing"]["context"]
    assert context["ticket_id"] == ticket["ticket_id"]
    assert (context["reason"], context["ended_by"]) == (REASON, "operator")
    assert context["handled_by"] is None and context["resolution_note"] is None  # no ticket
    assert [(t["role"], t["text"]) for t in context["turns"]] == [
        ("system", HANDOFF_NOTICE),
        ("user", "is anyone there?"),
        ("human", "Jane here: refund issued."),
    ]
    _, second = await route(bus, who, "and another")
    assert second["routing"]["context"] is None  # once
    assert len(system_notices(bus, who, RETURN_NOTICE)) == 1
    turns = await store.transcript(who.key, 3)
    assert (turns[0]["role"], turns[0]["text"]) == ("system", RETURN_NOTICE)


async def test_r20_idle_timeout_sends_one_notice_with_the_router_and_two_workers_racing(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    """The lease runs out; the next user message (router's inline revert), a sweep run from
    here and the stack's two timeout workers all race to revert it: one revert, one notice."""
    who = Who(tenant, "support")
    await publish(store, who, idle=2)  # two seconds here
    await route(bus, who, "hello")
    await hand_off(bus, who)
    topic, _ = await route(bus, who, "I'll wait for a person")
    assert topic == bus.topics.human_queue
    await wait_for_lease_expiry(store, who)

    message = who.message("hello? anyone?")
    await asyncio.gather(
        bus.send(bus.topics.inbound, message, key=who.key),
        store.expire_due([shard_of(who.key)], 100),
    )
    topic, first = await bus.wait_routed(message["event_id"])

    assert topic == bus.topics.ai_requests
    context = first["routing"]["context"]
    assert (context["ended_by"], context["reason"]) == ("timeout", REASON)
    assert [(t["role"], t["text"]) for t in context["turns"]] == [
        ("system", HANDOFF_NOTICE),
        ("user", "I'll wait for a person"),
    ]
    [notice] = await bus.wait_for(
        bus.topics.outbound, lambda v: v.get("text") == RETURN_NOTICE and key_of(v) == who.key
    )
    reverts = await bus.wait_for(
        bus.topics.events, lambda v: v.get("cause") == "timeout" and key_of(v) == who.key
    )
    _, second = await route(bus, who, "still me")
    assert second["routing"]["context"] is None
    assert len(reverts) == 1 and len(system_notices(bus, who, RETURN_NOTICE)) == 1
    assert notice["event_id"] == (await store.transcript(who.key, 10))[-3]["event_id"]


async def test_r20_the_route_marker_keeps_the_context_for_a_replayed_record(
    store: ModeStore, tenant: str
) -> None:
    """A replayed inbound record (same position) gets the same decision, context included;
    the same event at another position is a duplicate and consumes nothing."""
    who = Who(tenant, "support")
    now = await redis_now_ms(store)
    [seeded] = await store.apply_many([human_until(who.key, now - 1, now - 1000)])
    assert seeded["status"] == "applied"
    event_id = new_id("m-")

    def request(src: str) -> RouteRequest:
        return RouteRequest(who.key, event_id, src, "", stateless=False)

    [first] = await store.route_batch([request("chat.inbound/0/41")])
    [replay] = await store.route_batch([request("chat.inbound/0/41")])
    [again] = await store.route_batch([request("chat.inbound/1/7")])

    assert (first.status, replay.status, again.status) == ("routed", "replay", "duplicate")
    assert first.mode == "ai" and first.context is not None
    assert (first.context["ended_by"], first.context["reason"]) == ("timeout", "seeded")
    assert replay.context == first.context and replay.version == first.version
    # Reverted where no notice was captured (state from before R20): the default text.
    turns = await store.transcript(who.key, 1)
    assert (turns[0]["role"], turns[0]["text"]) == ("system", DEFAULT_RETURN_NOTICE)


async def test_r20_the_context_names_the_tickets_assignee_and_resolution_note(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    """The tickets feature (R15) keeps a ticket's owner and resolution note in its hash
    (`ho:ticket:{hN}:<ticket id>`); the return reads them as the stretch left them."""
    who = Who(tenant, "support")
    await publish(store, who)
    await route(bus, who, "I was charged twice")
    ticket = await hand_off(bus, who)
    tag = InteractionKeys(who.key).tag
    await store.redis.hset(
        f"ho:ticket:{tag}:{ticket['ticket_id']}",
        mapping={
            "ticket_id": ticket["ticket_id"],
            "assignee": "jane",
            "assignee_name": "Jane",
            "resolution_note": "Refunded the second charge.",
        },
    )
    assert (await desk.switch(who, "ai", "Resolved.")).status_code == 200

    _, first = await route(bus, who, "thanks")

    context = first["routing"]["context"]
    assert (context["ticket_id"], context["handled_by"], context["handled_by_name"]) == (
        ticket["ticket_id"],
        "jane",
        "Jane",
    )
    assert context["resolution_note"] == "Refunded the second charge."
