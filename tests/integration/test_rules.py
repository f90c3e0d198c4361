"""R1-R13 against the running services on a real Kafka broker and a real Redis server.

Records go in as plain JSON on the contract's topics (as kcat would send them) and the tests
read what comes out. "Nothing came out" is proved without sleeping: records of one
interaction are handled in order (R13), so once a later record of the same interaction is
out, the earlier one has been handled.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, attachment, key_of
from devstack.harness.sandbox import NOTICE, publish_agent
from services.handoff.state.store import ModeStore

pytestmark = pytest.mark.integration


async def route(bus: Bus, who: Who, text: str = "hello", **extra: Any) -> tuple[str, Any]:
    """Sends one user message and returns (topic, RoutedMessage) once it is routed."""
    message = who.message(text, **extra)
    await bus.send(bus.topics.inbound, message, key=who.key)
    return await bus.wait_routed(message["event_id"])


def for_key(who: Who, type_: str) -> Any:
    return lambda v: isinstance(v, dict) and v.get("type") == type_ and key_of(v) == who.key


async def hand_off(bus: Bus, who: Who, **extra: Any) -> dict[str, Any]:
    """Sends an agent's to_human command and returns its ModeChanged."""
    command = who.command("to_human", **extra)
    await bus.send(bus.topics.commands, command, key=who.key)
    changed = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert changed[0]["type"] == "mode_changed", changed[0]
    return changed[0]  # type: ignore[no-any-return]


async def test_r3_accepted_handoff_emits_mode_notice_and_ticket(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    _, first = await route(bus, who, "my card was charged twice")
    assert first["routing"]["mode"] == "ai"

    changed = await hand_off(bus, who, reason="The user asked for a person.")

    assert changed["from_mode"] == "ai" and changed["to_mode"] == "human"
    assert changed["cause"] == "agent" and changed["reason"] == "The user asked for a person."
    assert changed["actor"] == "agent:support@1" and changed["expires_at"] is None
    notices = await bus.wait_for(bus.topics.outbound, for_key(who, "outbound_message"))
    # R3's notice, then R16's place in line (the first of this queue: no estimate yet).
    waiting = "You're number 1 in line. We don't have a wait estimate yet."
    assert [(n["sender"], n["text"]) for n in notices] == [("system", f"{NOTICE} {waiting}")]
    assert notices[0]["conversation_id"] == "c-1"
    tickets = await bus.wait_for(bus.topics.human_queue, for_key(who, "handoff_ticket"))
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket["reason"] == "The user asked for a person." and ticket["cause"] == "agent"
    assert [t["text"] for t in ticket["transcript"]] == [
        "my card was charged twice",
        f"{NOTICE} {waiting}",
    ]
    assert (ticket["queue"], ticket["status"]) == ("default", "queued")
    assert ticket["state_version"] == changed["state_version"] == 1


async def test_r4_messages_in_human_mode_go_to_the_desk_with_attachments(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await hand_off(bus, who)

    sent = []
    for n in range(3):
        topic, routed = await route(
            bus, who, f"follow-up {n}", attachments=[attachment(n), attachment(n + 10)]
        )
        sent.append(routed["message"]["event_id"])
        assert topic == bus.topics.human_queue
        assert routed["routing"]["mode"] == "human" and routed["routing"]["cause"] == "agent"
        assert routed["message"]["attachments"] == [attachment(n), attachment(n + 10)]

    assert not [e for e in sent if any(t == bus.topics.ai_requests for t, _ in bus.routed(e))]
    turns = await store.transcript(who.key, 10)
    recorded = [t for t in turns if t["event_id"] in sent]
    assert [t["text"] for t in recorded] == ["follow-up 0", "follow-up 1", "follow-up 2"]
    assert [t["attachments"] for t in recorded] == [
        [attachment(n), attachment(n + 10)] for n in range(3)
    ]


async def test_r1_mode_belongs_to_one_agent(bus: Bus, store: ModeStore, tenant: str) -> None:
    who, other = Who(tenant, "support"), Who(tenant, "sales")
    await publish_agent(store, who)
    await publish_agent(store, other)
    await hand_off(bus, who)

    topic_support, _ = await route(bus, who)
    topic_sales, routed = await route(bus, other)

    assert topic_support == bus.topics.human_queue
    assert topic_sales == bus.topics.ai_requests and routed["routing"]["state_version"] == 0
    assert await store.user_agents(tenant, "web", "alice") == ["sales", "support"]


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("live_test", "live_test"),
        ("anonymous", "anonymous_user"),
        ("unpublished", "agent_not_published"),
        ("disabled", "handoff_disabled"),
    ],
)
async def test_r2_handoff_rejected_where_it_does_not_exist(
    bus: Bus, store: ModeStore, tenant: str, case: str, expected_code: str
) -> None:
    who = Who(tenant, "support", user=None if case == "anonymous" else "alice")
    await publish_agent(store, who, enabled=case != "disabled", publish=case != "unpublished")
    command = who.command("to_human", live_test=case == "live_test")

    await bus.send(bus.topics.commands, command, key=who.key)

    rejected = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert [(r["type"], r["code"]) for r in rejected] == [("command_rejected", expected_code)]
    topic, routed = await route(bus, who)
    assert topic == bus.topics.ai_requests and routed["routing"]["mode"] == "ai"
    assert not bus.on(bus.topics.outbound, for_key(who, "outbound_message"))
    assert not bus.on(bus.topics.human_queue, for_key(who, "handoff_ticket"))


async def test_r5_idle_timeout_moves_with_messages_then_reverts_once(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    """One idle minute lasts one second here; two timeout workers run in the stack."""
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=3)
    changed = await hand_off(bus, who)
    assert changed["expires_at"] is not None and changed["idle_timeout_minutes"] == 3

    expiries = []
    for _ in range(3):
        topic, routed = await route(bus, who, "still there?")
        assert topic == bus.topics.human_queue
        expiries.append(routed["routing"]["expires_at"])
    assert expiries == sorted(expiries) and len(set(expiries)) == 3  # each message moves it

    reverts = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("cause") == "timeout" and key_of(v) == who.key,
        timeout=15,
    )
    assert reverts[0]["from_mode"] == "human" and reverts[0]["to_mode"] == "ai"
    assert reverts[0]["state_version"] == changed["state_version"] + 1

    topic, routed = await route(bus, who, "hello again")
    assert topic == bus.topics.ai_requests
    assert routed["routing"]["cause"] == "timeout"
    assert routed["routing"]["state_version"] == changed["state_version"] + 1
    # Both workers have swept past the expiry many times by now: still exactly one event.
    assert (
        len(
            bus.on(
                bus.topics.events, lambda v: v.get("cause") == "timeout" and key_of(v) == who.key
            )
        )
        == 1
    )


async def test_r6_without_timeout_human_mode_lasts_until_an_operator_returns_it(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=None)
    await hand_off(bus, who)
    # Outlive the timeout test's whole idle window, measured by routed messages, not sleep.
    for n in range(3):
        topic, routed = await route(bus, who, f"message {n}")
        assert topic == bus.topics.human_queue and routed["routing"]["expires_at"] is None
    state = await store.read_state(who.key)
    assert state.mode == "human" and state.expires_at_ms is None

    command = who.command("to_ai", source="operator", reason="Resolved by phone.")
    await bus.send(bus.topics.operator_commands, command, key=who.key)
    back = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
    )
    assert back[0]["to_mode"] == "ai" and back[0]["cause"] == "operator"
    assert back[0]["actor"] == "operator:jane"
    topic, routed = await route(bus, who)
    assert topic == bus.topics.ai_requests and routed["routing"]["cause"] == "operator"


async def test_r7_operator_switches_need_published_handoff_only_towards_human(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, enabled=True)
    to_human = who.command("to_human", source="operator", idle_timeout_minutes=0)
    await bus.send(bus.topics.operator_commands, to_human, key=who.key)
    changed = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == to_human["command_id"]
    )
    assert changed[0]["cause"] == "operator" and changed[0]["expires_at"] is None

    await publish_agent(store, who, enabled=False)  # handoff switched off later
    to_ai = who.command("to_ai", source="operator")
    again = who.command("to_human", source="operator")
    await bus.send(bus.topics.operator_commands, to_ai, key=who.key)
    await bus.send(bus.topics.operator_commands, again, key=who.key)

    back = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == to_ai["command_id"]
    )
    assert back[0]["type"] == "mode_changed" and back[0]["to_mode"] == "ai"
    refused = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == again["command_id"]
    )
    assert refused[0]["type"] == "command_rejected" and refused[0]["code"] == "handoff_disabled"


async def test_r7_agent_cannot_take_a_user_back_and_repeat_switch_is_refused(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await hand_off(bus, who)
    repeat, back = who.command("to_human"), who.command("to_ai", source="agent")
    await bus.send(bus.topics.commands, repeat, key=who.key)
    await bus.send(bus.topics.commands, back, key=who.key)
    codes = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("command_id") in (repeat["command_id"], back["command_id"]),
        count=2,
    )
    assert [c["code"] for c in codes] == ["already_in_mode", "not_allowed"]


async def test_r8_history_keeps_every_change_with_cause_actor_and_reason(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await hand_off(bus, who, reason="Billing dispute.")
    back = who.command("to_ai", source="operator", reason="Refund issued.")
    await bus.send(bus.topics.operator_commands, back, key=who.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == back["command_id"])

    history = await store.history(who.key)
    assert [(h["to_mode"], h["cause"], h["reason"], h["version"]) for h in history] == [
        ("ai", "operator", "Refund issued.", 2),
        ("human", "agent", "Billing dispute.", 1),
    ]
    state = await store.read_state(who.key)
    assert (state.mode, state.cause, state.actor, state.version) == (
        "ai",
        "operator",
        "operator:jane",
        2,
    )


async def test_r9_reply_for_a_stale_state_version_never_reaches_the_user(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    _, routed = await route(bus, who, "help")
    version = routed["routing"]["state_version"]
    late = who.reply(routed["message"]["event_id"], version, "Sure, here is how...")
    await hand_off(bus, who)
    await bus.send(bus.topics.agent_replies, late, key=who.key)

    # A reply to a Live Test message after it is gated in order behind the late one.
    _, live = await route(bus, who, "live test", live_test=True)
    probe = who.reply(live["message"]["event_id"], 0, "live test answer")
    await bus.send(bus.topics.agent_replies, probe, key=who.key)
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == probe["reply_id"])

    assert not bus.on(bus.topics.outbound, lambda v: v.get("event_id") == late["reply_id"])


async def test_r9_reply_at_the_current_version_is_forwarded_and_recorded(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    _, routed = await route(bus, who, "what are your hours?")
    reply = who.reply(routed["message"]["event_id"], routed["routing"]["state_version"], "9 to 5.")
    await bus.send(bus.topics.agent_replies, reply, key=who.key)

    out = await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == reply["reply_id"])
    assert (out[0]["sender"], out[0]["text"], out[0]["in_reply_to"]) == (
        "ai",
        "9 to 5.",
        routed["message"]["event_id"],
    )
    turns = await store.transcript(who.key, 5)
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "what are your hours?"),
        ("ai", "9 to 5."),
    ]


async def test_r10_same_event_id_twice_is_routed_once(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    message = who.message("double tap")
    await bus.send(bus.topics.inbound, message, key=who.key)
    await bus.send(bus.topics.inbound, message, key=who.key)
    await route(bus, who, "after")  # in order behind both copies

    assert len(bus.routed(message["event_id"])) == 1
    turns = await store.transcript(who.key, 10)
    assert [t["text"] for t in turns] == ["double tap", "after"]


async def test_r11_bad_records_go_to_dead_letter_and_good_ones_around_them_are_routed(
    bus: Bus, tenant: str
) -> None:
    who = Who(tenant, "support")
    before, after = who.message("before"), who.message("after")
    invalid = who.message("bad id")
    invalid["tenant_id"] = "no spaces allowed"
    huge = who.message("x" * (33 * 1024))
    wrong_type = {**who.message(), "type": "agent_reply"}
    bad = {
        "undecodable": b"\xff\xfe\x00garbage",
        "invalid_json": b'{"type": "user_message", ',
        "schema_invalid": invalid,
        "schema_invalid_size": huge,
        "unknown_type": wrong_type,
    }
    await bus.send(bus.topics.inbound, before, key=who.key)
    for value in bad.values():
        await bus.send(bus.topics.inbound, value, key=who.key)
    await bus.send(bus.topics.inbound, after, key=who.key)

    await bus.wait_routed(before["event_id"])
    await bus.wait_routed(after["event_id"])
    # The dead letters are committed with the records around them, but a reader sees each
    # partition's commit when it reaches it: wait for them, not assume them.
    letters = await bus.wait_for(
        bus.topics.dead_letter,
        lambda v: v["key"] == who.key and v["source_topic"] == bus.topics.inbound,
        count=len(bad),
    )
    assert [v["error"]["kind"] for v in letters] == [
        "undecodable",
        "invalid_json",
        "schema_invalid",
        "schema_invalid",
        "unknown_type",
    ]
    assert "tenant_id" in letters[2]["error"]["detail"] and "text" in letters[3]["error"]["detail"]
    offsets = [v["offset"] for v in letters]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5


async def test_r11_bad_commands_and_replies_are_dead_lettered_too(bus: Bus, tenant: str) -> None:
    who = Who(tenant, "support")
    command = who.command()
    del command["reason"]
    await bus.send(bus.topics.commands, command, key=who.key)
    await bus.send(bus.topics.agent_replies, b"not json", key=who.key)

    letters = await bus.wait_for(bus.topics.dead_letter, lambda v: v["key"] == who.key, count=2)
    by_topic = {v["source_topic"]: v["error"] for v in letters}
    assert by_topic[bus.topics.commands]["kind"] == "schema_invalid"
    assert "reason" in by_topic[bus.topics.commands]["detail"]
    assert by_topic[bus.topics.agent_replies]["kind"] == "invalid_json"


async def test_r12_live_test_is_answered_by_ai_and_touches_no_live_state(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=60)
    await hand_off(bus, who)
    state_before = await store.read_state(who.key)
    turns_before = await store.transcript(who.key, 50)

    topic, routed = await route(bus, who, "editor testing", live_test=True)
    reply = who.reply(
        routed["message"]["event_id"], routed["routing"]["state_version"], "test answer"
    )
    await bus.send(bus.topics.agent_replies, reply, key=who.key)

    assert topic == bus.topics.ai_requests and routed["routing"]["mode"] == "ai"
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == reply["reply_id"])
    assert await store.read_state(who.key) == state_before  # lease not even extended
    assert await store.transcript(who.key, 50) == turns_before
    topic, _ = await route(bus, who, "live user")
    assert topic == bus.topics.human_queue


async def test_r13_one_interactions_records_keep_their_order(bus: Bus, tenant: str) -> None:
    who = Who(tenant, "support")
    messages = [who.message(f"m{n}") for n in range(60)]
    for m in messages:
        await bus.send(bus.topics.inbound, m, key=who.key)
    ids = {m["event_id"] for m in messages}
    routed = await bus.wait_for(
        bus.topics.ai_requests, lambda v: v.get("message", {}).get("event_id") in ids, count=60
    )
    assert [r["message"]["text"] for r in routed] == [f"m{n}" for n in range(60)]
