"""R19 human activity, against the running services on a real Kafka broker and real Redis.

A teammate's reply counts as activity: it moves the idle expiry forward as a user message
does, whether it is sent through the operator API or by an external desk straight to
chat.outbound (recorded in the transcript once). The desk can extend the expiry (audited).
An idle "minute" lasts one second in the test stack.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of, now
from devstack.harness.sandbox import publish_agent, redis_now_ms, wait_until
from services.handoff.domain.modes import DEFAULT_RETURN_NOTICE
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, error_code, make_token, user_path

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def desk(http: httpx.AsyncClient, jwt_secret: str, tenant: str) -> Api:
    return Api(http, make_token(jwt_secret, tenant=tenant, sub="jane"))


async def route(bus: Bus, who: Who, text: str) -> tuple[str, Any]:
    message = who.message(text)
    await bus.send(bus.topics.inbound, message, key=who.key)
    return await bus.wait_routed(message["event_id"])


async def in_human_mode(bus: Bus, store: ModeStore, who: Who, idle: int | None) -> int:
    """A user handed off by the agent; returns the idle expiry (ms) the handoff set, or 0."""
    await publish_agent(store, who, idle=idle)
    await route(bus, who, "I need a person")
    command = who.command("to_human")
    await bus.send(bus.topics.commands, command, key=who.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == command["command_id"])
    return (await store.read_state(who.key)).expires_at_ms or 0


async def until_redis_time(store: ModeStore, at_ms: int) -> None:
    async def passed() -> bool:
        return await redis_now_ms(store) > at_ms

    await wait_until(passed, 15, f"Redis time past {at_ms}")


def external_reply(who: Who, text: str, event_id: str | None = None) -> dict[str, Any]:
    """What an external desk writes to chat.outbound."""
    return {
        "type": "outbound_message",
        "schema_version": 1,
        "event_id": event_id or f"desk-{uuid.uuid4().hex[:12]}",
        **who.ids(),
        "conversation_id": "c-1",
        "sender": "human",
        "text": text,
        "attachments": [],
        "sent_at": now(),
    }


async def recorded(store: ModeStore, who: Who, event_id: str) -> int:
    return sum(t["event_id"] == event_id for t in await store.transcript(who.key, 50))


async def test_r19_a_teammate_reply_through_the_api_moves_the_idle_expiry(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    who = Who(tenant, "support")
    first_expiry = await in_human_mode(bus, store, who, idle=3)
    await until_redis_time(store, first_expiry - 1500)  # halfway through the idle timeout

    r = await desk.post(f"{user_path(who)}/agents/support/messages", {"text": "On it, Jane."})

    assert r.status_code == 201, r.text
    moved = datetime.fromisoformat(r.json()["expires_at"])
    state = await store.read_state(who.key)
    assert state.expires_at_ms == int(moved.timestamp() * 1000) > first_expiry
    await until_redis_time(store, first_expiry)  # past the expiry the handoff set
    topic, routed = await route(bus, who, "thanks, I'm still here")
    assert topic == bus.topics.human_queue  # still a person's: the reply was activity
    assert routed["routing"]["state_version"] == state.version
    assert not bus.on(
        bus.topics.events, lambda v: v.get("cause") == "timeout" and key_of(v) == who.key
    )


async def test_r19_an_external_desks_reply_on_chat_outbound_is_recorded_once_and_is_activity(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    who = Who(tenant, "support")
    first_expiry = await in_human_mode(bus, store, who, idle=3)
    await until_redis_time(store, first_expiry - 1500)
    reply = external_reply(who, "Hi, this is Sam from the help desk.")

    await bus.send(bus.topics.outbound, reply, key=who.key)
    await bus.send(bus.topics.outbound, reply, key=who.key)  # the desk sent it twice
    marker = external_reply(who, "A later reply, recorded after both copies.")
    await bus.send(bus.topics.outbound, marker, key=who.key)

    await wait_until(lambda: recorded(store, who, marker["event_id"]), 20, "the later reply")
    assert await recorded(store, who, reply["event_id"]) == 1
    [turn] = [t for t in await store.transcript(who.key, 50) if t["event_id"] == reply["event_id"]]
    assert (turn["role"], turn["text"]) == ("human", reply["text"])
    state = await store.read_state(who.key)
    assert state.mode == "human" and (state.expires_at_ms or 0) > first_expiry

    # A reply sent through the API is on chat.outbound too: the consumer skips it.
    r = await desk.post(f"{user_path(who)}/agents/support/messages", {"text": "Via the API."})
    assert r.status_code == 201, r.text
    api_id = r.json()["event_id"]
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == api_id)
    after = external_reply(who, "Sent after the API's reply reached the topic.")
    await bus.send(bus.topics.outbound, after, key=who.key)
    await wait_until(lambda: recorded(store, who, after["event_id"]), 20, "the reply after it")
    assert await recorded(store, who, api_id) == 1


async def test_r19_the_desk_extends_the_idle_expiry_audited(
    bus: Bus, store: ModeStore, desk: Api, http: httpx.AsyncClient, jwt_secret: str, tenant: str
) -> None:
    who = Who(tenant, "support")
    path = f"{user_path(who)}/agents/support/extend"
    first_expiry = await in_human_mode(bus, store, who, idle=3)

    r = await desk.post(path, {"minutes": 30})

    assert r.status_code == 200, r.text
    extended = int(datetime.fromisoformat(r.json()["expires_at"]).timestamp() * 1000)
    assert extended >= first_expiry + 25_000  # 30 "minutes" = 30 s from now
    assert (await store.read_state(who.key)).expires_at_ms == extended
    # The default (the idle timeout, 3 s) would end it sooner: the expiry never moves back.
    again = await desk.post(path, {})
    assert again.status_code == 200, again.text
    assert again.json()["expires_at"] == r.json()["expires_at"]
    audits = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "operator_action"
            and v.get("action") == "idle_extend"
            and v.get("target") == who.key
        ),
        count=2,
    )
    assert [(a["actor"], a["outcome"]) for a in audits] == [("operator:jane", "extended")] * 2

    viewer = Api(http, make_token(jwt_secret, tenant=tenant, role="viewer", sub="vic"))
    refused = await viewer.post(path, {})
    assert refused.status_code == 403
    too_long = await desk.post(path, {"minutes": 10081})
    assert too_long.status_code == 422

    assert (await desk.switch(who, "ai", "Done.")).status_code == 200
    on_ai = await desk.post(path, {})
    assert on_ai.status_code == 409 and error_code(on_ai) == "not_in_human_mode"
    assert (await desk.switch(who, "human", "Again.", idle_timeout_minutes=0)).status_code == 200
    no_timeout = await desk.post(path, {})
    assert no_timeout.status_code == 409 and error_code(no_timeout) == "no_idle_timeout"
    outcomes = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("action") == "idle_extend" and v.get("target") == who.key,
        count=4,
    )
    assert [a["outcome"] for a in outcomes[2:]] == ["not_in_human_mode", "no_idle_timeout"]
    unknown = Who(tenant, "support", user="nobody")
    missing = await desk.post(f"{user_path(unknown)}/agents/support/extend", {})
    assert missing.status_code == 404


async def test_r19_an_idle_return_after_a_reply_comes_one_idle_timeout_after_it(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    """The teammate's last reply, not the handoff, starts the idle countdown; the return
    that follows sends the return notice (R20)."""
    who = Who(tenant, "support")
    await in_human_mode(bus, store, who, idle=2)
    r = await desk.post(f"{user_path(who)}/agents/support/messages", {"text": "Checking."})
    assert r.status_code == 201, r.text
    due = datetime.fromisoformat(r.json()["expires_at"])

    [revert] = await bus.wait_for(
        bus.topics.events, lambda v: v.get("cause") == "timeout" and key_of(v) == who.key
    )
    assert revert["to_mode"] == "ai"
    assert datetime.fromisoformat(revert["changed_at"]) >= due
    notices = await bus.wait_for(
        bus.topics.outbound,
        lambda v: v.get("text") == DEFAULT_RETURN_NOTICE and key_of(v) == who.key,
    )
    assert [n["sender"] for n in notices] == ["system"]


async def test_r19_a_teammate_taking_the_ticket_moves_the_idle_expiry(
    bus: Bus, store: ModeStore, desk: Api, tenant: str
) -> None:
    """Found from outside: a claimed user was returned to the AI by the idle timeout counted
    from before the claim, while the teammate was reading the conversation."""
    who = Who(tenant, "support")
    first_expiry = await in_human_mode(bus, store, who, idle=10)
    ticket_id = (await store.read_state(who.key)).ticket_id
    assert ticket_id is not None
    await until_redis_time(store, first_expiry - 7000)  # 3 of the 10 seconds gone

    r = await desk.post(f"/v1/tenants/{tenant}/tickets/{ticket_id}/claim", {})

    assert r.status_code == 200, r.text
    assert ((await store.read_state(who.key)).expires_at_ms or 0) > first_expiry
    await until_redis_time(store, first_expiry)
    topic, _ = await route(bus, who, "are you there?")
    assert topic == bus.topics.human_queue  # still the teammate's
