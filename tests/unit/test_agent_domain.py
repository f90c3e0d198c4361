"""The reference agent's decisions without I/O (services/agent/domain.py): the records it
emits, the failed-clarification rule, and where the handoff tool is offered."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import ReturnContext, RoutedMessage, Routing, TranscriptTurn
from services.agent.domain import (
    EMPTY_ANSWER,
    NO_HANDOFF_ANSWER,
    STUCK_REASON,
    Answer,
    Handoff,
    PublishedVersion,
    Resumed,
    after_failures,
    can_hand_off,
    command_for,
    one_sentence,
    reply_for,
    resumed_of,
    settle,
)
from services.handoff.domain.modes import HandoffConfig
from tests.unit.builders import message

AT = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)


def published(enabled: bool = True) -> PublishedVersion:
    return PublishedVersion(version=3, enabled=enabled)


def routed(version: int = 7, **extra: Any) -> RoutedMessage:
    return RoutedMessage(
        message=message(**extra),
        routing=Routing(
            mode="ai",
            cause=None,
            state_version=version,
            decided_at=AT,
            human_since=None,
            expires_at=None,
        ),
    )


def test_reply_carries_the_state_version_it_was_given() -> None:
    reply = reply_for(routed(version=7), "We're open 9 to 6.")
    assert reply.state_version == 7
    assert reply.in_reply_to == "m-1" and reply.conversation_id == "c-1"
    assert (reply.tenant_id, reply.agent_id, reply.user.external_id) == ("acme", "support", "alice")
    assert reply.text == "We're open 9 to 6."


def test_ids_are_derived_from_the_message_so_a_replay_yields_the_same_records() -> None:
    first, again = routed(), routed()
    assert reply_for(first, "a").reply_id == reply_for(again, "a").reply_id
    version = published()
    one = command_for(first, "The user asked for a person.", version, AT)
    two = command_for(again, "The user asked for a person.", version, AT)
    assert one.model_dump_json() == two.model_dump_json()
    other = command_for(routed(event_id="m-2"), "x.", version, AT)
    assert other.command_id != one.command_id
    assert one.command_id != reply_for(first, "a").reply_id


def test_command_is_the_contracts_agent_handoff() -> None:
    command = command_for(routed(live_test=True), "The user asked for a person.", published(), AT)
    assert command.action == "to_human" and command.source == "agent"
    assert command.actor == "agent:support@3"  # the published version's number
    assert command.live_test is True  # copied from the message (R2: rejected downstream)
    assert command.idle_timeout_minutes is None and command.requested_at == AT
    assert command.reason == "The user asked for a person."


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("The user asked for a person.", "The user asked for a person."),
        ("  Needs a human.  Also, they were rude. ", "Needs a human."),
        ("", "The agent decided this conversation needs a person."),
        ("line one\nline two", "line one line two"),
    ],
)
def test_one_sentence(reason: str, expected: str) -> None:
    assert one_sentence(reason) == expected


def test_one_sentence_is_at_most_280_characters() -> None:
    reason = one_sentence("x" * 1000)
    assert len(reason) == 280 and reason.endswith("…")


@pytest.mark.parametrize(
    ("extra", "enabled", "is_published", "offered"),
    [
        ({}, True, True, True),
        ({"live_test": True}, True, True, True),  # the editor sees the decision (rejected)
        ({"user": {"channel": "web", "external_id": None}}, True, True, False),
        ({}, False, True, False),
        ({}, True, False, False),
    ],
)
def test_can_hand_off(
    extra: dict[str, Any], enabled: bool, is_published: bool, offered: bool
) -> None:
    version = published(enabled=enabled) if is_published else None
    assert can_hand_off(version, routed(**extra)) is offered


def test_the_third_failed_turn_in_a_row_hands_off() -> None:
    failed = Answer("Sorry?", understood=False)
    assert after_failures(failed, 2, 3, tool=True) == failed
    assert after_failures(failed, 3, 3, tool=True) == Handoff(STUCK_REASON.format(n=3))
    assert after_failures(failed, 3, 3, tool=False) == failed
    understood = Answer("Hello!")
    assert after_failures(understood, 5, 3, tool=True) == understood


def test_settle() -> None:
    assert settle(Handoff("Needs a person. Really."), tool=True) == Handoff("Needs a person.")
    assert settle(Handoff("Needs a person."), tool=False) == Answer(NO_HANDOFF_ANSWER)
    assert settle(Answer("  hi  "), tool=True) == Answer("hi")
    assert settle(Answer("   "), tool=True) == Answer(EMPTY_ANSWER, understood=False)


def test_the_handoff_goes_to_billing_for_billing_words_when_the_version_lists_it() -> None:
    both = PublishedVersion(4, enabled=True, queues=("default", "billing"))
    only_default = PublishedVersion(4, enabled=True, queues=("default",))
    billing = 'The user reported an urgent billing problem ("charged twice").'
    assert command_for(routed(), billing, both, AT).queue == "billing"
    assert command_for(routed(), "I was CHARGED twice for my order.", both, AT).queue == "billing"
    # Anything else, or a version without `billing`: the version's default (null).
    assert command_for(routed(), "The user asked for a person.", both, AT).queue is None
    assert command_for(routed(), billing, only_default, AT).queue is None
    assert command_for(routed(), "Cardigan sizes are confusing.", both, AT).queue is None


def test_resumed_of_the_routing_context() -> None:  # R20
    assert resumed_of(None) is None
    turn = TranscriptTurn(event_id="h-1", role="human", text="Refunded.", at=AT)
    context = ReturnContext(
        ticket_id="tk-1",
        reason="Double charge.",
        handled_by="jane",
        handled_by_name=" Jane ",
        resolution_note="",
        turns=[turn],
        ended_by="timeout",
    )
    assert resumed_of(context) == Resumed(
        reason="Double charge.",
        teammate="Jane",
        resolution_note=None,
        ended_by="timeout",
        turns=(("human", "Refunded."),),
    )


def test_the_agents_version_is_read_from_the_handoff_block_the_handoff_service_publishes() -> None:
    # The block of an agent_version_applied record is the handoff service's HandoffConfig
    # as a dict (services/handoff/state/store.py apply_agent_version): every field the agent uses
    # is there, and the rest are ignored.
    config = HandoffConfig(
        enabled=True,
        idle_timeout_minutes=30,
        instructions="Hand off when: the user mentions a lawyer",
        queues=("default", "billing"),
        announce_teammate=True,
    )
    block = json.loads(json.dumps(asdict(config)))  # as it travels: JSON, queues a list
    assert PublishedVersion.of(7, block) == PublishedVersion(
        7, enabled=True, instructions=config.instructions, queues=("default", "billing")
    )
    assert PublishedVersion.of(1, {}) == PublishedVersion(1)  # all defaults: handoff off
    assert PublishedVersion.of(1, {"enabled": True, "future_field": 1}).enabled


@pytest.mark.parametrize(
    "block",
    [{"enabled": "yes"}, {"instructions": 3}, {"queues": "billing"}, {"queues": [1]}],
)
def test_a_handoff_block_of_the_wrong_shape_is_refused(block: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="handoff"):
        PublishedVersion.of(1, block)
