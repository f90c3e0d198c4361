"""R22: a command's authority comes from where it arrived, never from what it says.

handoff.commands grants agent authority only: a record there claiming `source: operator` is
rejected `not_allowed`, audited with the claim marked as a claim, and changes nothing. The
same command on handoff.operator-commands (whose writers the deployment's ACLs restrict) is
accepted, audited, and the history names its actor.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import publish_agent
from services.handoff.state.store import ModeStore

pytestmark = pytest.mark.integration


def about(command: dict[str, Any], type_: str) -> Any:
    return lambda v: v.get("type") == type_ and v.get("command_id") == command["command_id"]


async def handed_off(bus: Bus, store: ModeStore, who: Who) -> None:
    await publish_agent(store, who)
    command = who.command("to_human")
    await bus.send(bus.topics.commands, command, key=who.key)
    await bus.wait_for(bus.topics.events, about(command, "mode_changed"))


async def test_r22_operator_claim_on_the_agents_topic_is_rejected_and_audited(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await handed_off(bus, store, who)
    forged = who.command("to_ai", source="operator", actor="operator:ceo@acme", reason="Forged.")

    await bus.send(bus.topics.commands, forged, key=who.key)

    rejected = await bus.wait_for(bus.topics.events, about(forged, "command_rejected"))
    assert rejected[0]["code"] == "not_allowed"
    audit = await bus.wait_for(bus.topics.events, about(forged, "operator_action"))
    assert len(audit) == 1
    assert audit[0]["outcome"] == "not_allowed" and audit[0]["via"] == bus.topics.commands
    assert audit[0]["claimed_actor"] == "operator:ceo@acme"
    assert audit[0]["actor"] != "operator:ceo@acme" and audit[0]["role"] is None
    assert audit[0]["tenant_id"] == tenant and audit[0]["target"] == who.key
    assert not bus.on(bus.topics.events, about(forged, "mode_changed"))
    state = await store.read_state(who.key)
    assert state.mode == "human" and state.cause == "agent" and state.version == 1
    assert [h["actor"] for h in await store.history(who.key)] == ["agent:support@1"]


async def test_r22_an_idle_timeout_override_claimed_on_the_agents_topic_is_refused(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    forged = who.command("to_human", source="operator", idle_timeout_minutes=0)

    await bus.send(bus.topics.commands, forged, key=who.key)

    rejected = await bus.wait_for(bus.topics.events, about(forged, "command_rejected"))
    assert rejected[0]["code"] == "not_allowed"
    assert (await store.read_state(who.key)).version == 0


async def test_r22_the_same_command_on_the_operator_topic_is_accepted_and_audited(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await handed_off(bus, store, who)
    command = who.command("to_ai", source="operator", actor="operator:ceo@acme", reason="Done.")

    await bus.send(bus.topics.operator_commands, command, key=who.key)

    changed = await bus.wait_for(bus.topics.events, about(command, "mode_changed"))
    assert changed[0]["cause"] == "operator" and changed[0]["actor"] == "operator:ceo@acme"
    audit = await bus.wait_for(bus.topics.events, about(command, "operator_action"))
    assert len(audit) == 1
    assert audit[0]["outcome"] == "accepted" and audit[0]["action"] == "mode_switch"
    assert audit[0]["actor"] == "operator:ceo@acme" and audit[0]["claimed_actor"] is None
    assert audit[0]["via"] == bus.topics.operator_commands and audit[0]["role"] is None
    state = await store.read_state(who.key)
    assert state.mode == "ai" and state.actor == "operator:ceo@acme"
    history = await store.history(who.key)
    assert [(h["cause"], h["actor"]) for h in history] == [
        ("operator", "operator:ceo@acme"),
        ("agent", "agent:support@1"),
    ]


async def test_r22_a_rejected_operator_command_on_the_operator_topic_is_audited_too(
    bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    command = who.command("to_ai", source="operator")  # already on AI

    await bus.send(bus.topics.operator_commands, command, key=who.key)

    audit = await bus.wait_for(bus.topics.events, about(command, "operator_action"))
    assert audit[0]["outcome"] == "already_in_mode" and audit[0]["actor"] == "operator:jane"
