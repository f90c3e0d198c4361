"""The reference agent on the real stack: it hands off (R2, R3), answers with the state
version it was given (R9), and its stale replies never reach the user."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devstack.harness.events import Who
from devstack.harness.sandbox import NOTICE, agent_knows, publish_known
from services.agent.domain import NO_HANDOFF_ANSWER, STUCK_REASON
from services.agent.rules import NOT_UNDERSTOOD
from services.common.ids import derived_id
from tests.api.helpers import Api, make_token, user_path
from tests.e2e.conftest import Stack
from tests.support.tickets import of, publish_queues_agent

pytestmark = pytest.mark.integration


def with_command(command_id: str) -> Any:
    return lambda v: v.get("command_id") == command_id


async def say(stack: Stack, who: Who, text: str, **extra: Any) -> dict[str, Any]:
    message = who.message(text, **extra)
    await stack.bus.send(stack.bus.topics.inbound, message, key=who.key)
    return message


async def ai_answer(stack: Stack, who: Who, message: dict[str, Any]) -> dict[str, Any]:
    t = stack.bus.topics
    found = await stack.bus.wait_for(
        t.outbound, of(who, "outbound_message", in_reply_to=message["event_id"])
    )
    return found[0]  # type: ignore[no-any-return]


async def test_agent_hands_off_when_the_user_asks_for_a_person(stack: Stack, tenant: str) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    version = await publish_known(stack.store, who)
    hello = await say(stack, who, "hello")
    assert (await ai_answer(stack, who, hello))["sender"] == "ai"

    ask = await say(stack, who, "I want to talk to a person")

    [command] = await bus.wait_for(t.commands, of(who, "handoff_command"))
    assert command["command_id"] == derived_id("agent-handoff", who.key, ask["event_id"])
    assert command["source"] == "agent" and command["action"] == "to_human"
    assert command["actor"] == f"agent:support@{version}" and command["live_test"] is False
    assert command["reason"] == "The user asked to talk to a person."
    [changed] = await bus.wait_for(t.events, of(who, "mode_changed"))
    assert (changed["to_mode"], changed["cause"]) == ("human", "agent")
    assert changed["command_id"] == command["command_id"]
    [notice] = await bus.wait_for(t.outbound, of(who, "outbound_message", sender="system"))
    assert notice["text"].startswith(NOTICE)  # then the place in line (R16)
    [ticket] = await bus.wait_for(t.human_queue, of(who, "handoff_ticket"))
    assert ticket["reason"] == command["reason"]
    assert [turn["text"] for turn in ticket["transcript"]][-3:] == [
        bus.on(t.outbound, of(who, "outbound_message", sender="ai"))[0]["text"],
        "I want to talk to a person",
        notice["text"],
    ]
    # The reply would have been in the agent's transaction with the command: there is none.
    assert not bus.on(t.agent_replies, of(who, "agent_reply", in_reply_to=ask["event_id"]))

    follow_up = await say(stack, who, "hello? anyone?")
    topic, routed = await bus.wait_routed(follow_up["event_id"])
    assert topic == t.human_queue and routed["routing"]["mode"] == "human"


async def test_the_reply_carries_the_state_version_it_was_given(stack: Stack, tenant: str) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who)
    for action, source in (("to_human", "agent"), ("to_ai", "operator")):
        command = who.command(action, source=source)
        topic = t.commands if source == "agent" else t.operator_commands
        await bus.send(topic, command, key=who.key)
        await bus.wait_for(t.events, with_command(command["command_id"]))

    message = await say(stack, who, "What are your opening hours?")

    _, routed = await bus.wait_routed(message["event_id"])
    assert routed["routing"]["state_version"] == 2
    [reply] = await bus.wait_for(
        t.agent_replies, of(who, "agent_reply", in_reply_to=message["event_id"])
    )
    assert reply["state_version"] == 2
    assert reply["reply_id"] == derived_id("agent-reply", who.key, message["event_id"])
    answer = await ai_answer(stack, who, message)
    assert answer["sender"] == "ai" and "Monday to Friday" in answer["text"]
    assert answer["event_id"] == reply["reply_id"]


async def test_a_reply_made_stale_by_a_handoff_never_reaches_the_user(
    stack: Stack, tenant: str
) -> None:
    """The agent is down while a message waits for it and the user is handed off meanwhile:
    its late reply carries the old state version and the reply gate drops it (R9)."""
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who)
    agent = stack.procs["agent"]
    agent.stop()
    try:
        waiting = await say(stack, who, "What are your opening hours?")
        _, routed = await bus.wait_routed(waiting["event_id"])
        assert routed["routing"] == routed["routing"] | {"mode": "ai", "state_version": 0}
        handoff = who.command("to_human", source="operator")
        await bus.send(t.operator_commands, handoff, key=who.key)
        await bus.wait_for(t.events, lambda v: v.get("command_id") == handoff["command_id"])
    finally:
        agent.start()
        agent.wait_ready(60)

    [stale] = await bus.wait_for(
        t.agent_replies, of(who, "agent_reply", in_reply_to=waiting["event_id"]), timeout=30
    )
    assert stale["state_version"] == 0
    # Back to AI; the next answer passes the gate after the stale reply (same partition).
    back = who.command("to_ai", source="operator")
    await bus.send(t.operator_commands, back, key=who.key)
    await bus.wait_for(t.events, lambda v: v.get("command_id") == back["command_id"])
    later = await say(stack, who, "hello")
    await ai_answer(stack, who, later)

    ai_sent = bus.on(t.outbound, of(who, "outbound_message", sender="ai"))
    assert [m["in_reply_to"] for m in ai_sent] == [later["event_id"]]


async def test_live_test_handoff_is_rejected_and_the_user_stays_on_ai(
    stack: Stack, tenant: str
) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who)

    ask = await say(stack, who, "I want to talk to a person", live_test=True)

    [command] = await bus.wait_for(t.commands, of(who, "handoff_command"))
    assert command["live_test"] is True
    [rejected] = await bus.wait_for(t.events, of(who, "command_rejected"))
    assert rejected["code"] == "live_test" and rejected["command_id"] == command["command_id"]
    assert (await stack.store.read_state(who.key)).mode == "ai"
    live = await say(stack, who, "hello")
    topic, routed = await bus.wait_routed(live["event_id"])
    assert topic == t.ai_requests and routed["routing"]["mode"] == "ai"
    await ai_answer(stack, who, live)
    assert not bus.on(t.outbound, of(who, "outbound_message", sender="system"))
    assert not bus.on(t.agent_replies, of(who, "agent_reply", in_reply_to=ask["event_id"]))


async def test_with_handoff_disabled_the_agent_just_answers(stack: Stack, tenant: str) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who, enabled=False)

    ask = await say(stack, who, "I want to talk to a person")

    answer = await ai_answer(stack, who, ask)
    assert answer["text"] == NO_HANDOFF_ANSWER
    assert not bus.on(t.commands, of(who, "handoff_command"))


async def test_three_unanswered_turns_in_a_row_hand_off(stack: Stack, tenant: str) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who)
    for text in ("blorp", "fizzle wob"):
        message = await say(stack, who, text)
        assert (await ai_answer(stack, who, message))["text"] == NOT_UNDERSTOOD

    await say(stack, who, "zzzt qua")

    [command] = await bus.wait_for(t.commands, of(who, "handoff_command"))
    assert command["reason"] == STUCK_REASON.format(n=3)
    await bus.wait_for(t.events, of(who, "mode_changed", to_mode="human"))


async def test_agent_hands_billing_trouble_to_the_billing_queue(stack: Stack, tenant: str) -> None:
    """R14: the reference agent picks the queue by the reason, among its version's queues."""
    t, bus = stack.bus.topics, stack.bus
    who, other = Who(tenant, "support"), Who(tenant, "support", user="bob")
    version = await publish_queues_agent(stack.store, who, queues=("default", "billing"))
    await agent_knows(stack.store.redis, who, version)

    await say(stack, who, "I was charged twice for my order!")
    await say(stack, other, "I want to talk to a person")

    [billing] = await bus.wait_for(t.commands, of(who, "handoff_command"))
    [plain] = await bus.wait_for(t.commands, of(other, "handoff_command"))
    assert (billing["queue"], plain["queue"]) == ("billing", None)
    [opened] = await bus.wait_for(t.events, of(who, "ticket_changed"))
    [default] = await bus.wait_for(t.events, of(other, "ticket_changed"))
    assert (opened["queue"], default["queue"]) == ("billing", "default")


async def test_back_from_a_teammate_the_agent_acknowledges_the_return(
    stack: Stack, tenant: str
) -> None:  # R20
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support")
    await publish_known(stack.store, who)
    await say(stack, who, "I want to talk to a person")
    await bus.wait_for(t.events, of(who, "mode_changed", to_mode="human"))
    token = make_token(stack.env["HANDOFF_API_JWT_SECRET"], tenant=tenant, sub="jane")
    async with httpx.AsyncClient(base_url=stack.procs["handoff"].url, timeout=30) as http:
        desk = Api(http, token)
        sent = await desk.post(f"{user_path(who)}/agents/support/messages", {"text": "Done!"})
        assert sent.status_code == 201, sent.text
        assert (await desk.switch(who, "ai", "Resolved.")).status_code == 200

    back = await say(stack, who, "hello")
    first = await ai_answer(stack, who, back)
    assert first["text"] == (
        "Welcome back! My teammate has handed this chat back to me. Anything else I can help with?"
    )
    again = await say(stack, who, "hello")
    assert (await ai_answer(stack, who, again))["text"].startswith("Hello! I'm the support")
