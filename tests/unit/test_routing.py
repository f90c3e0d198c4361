"""Router rules without I/O (services/router/domain.py): R4, R9, R12."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import RoutedMessage
from services.handoff.domain.routing import RouteDecision
from services.router.domain import (
    forwarded_reply,
    is_stateless,
    routed_message,
    routed_record,
    routing,
    routing_json,
    user_turn,
    user_turn_json,
)
from tests.unit.builders import NOW_MS, attachment, message, reply


@pytest.mark.parametrize(
    ("extra", "stateless"),
    [
        ({}, False),
        ({"live_test": True}, True),
        ({"user": {"channel": "web", "external_id": None}}, True),
        ({"user": {"channel": "web"}, "live_test": True}, True),
    ],
)
def test_is_stateless(extra: dict[str, Any], stateless: bool) -> None:
    assert is_stateless(message(**extra)) is stateless


def test_routed_message_carries_the_message_untouched_and_the_routing() -> None:
    attachments = [attachment(0), attachment(1)]
    msg = message(attachments=attachments)
    decision = RouteDecision(
        status="routed",
        mode="human",
        cause="operator",
        version=6,
        decided_at_ms=NOW_MS,
        human_since_ms=NOW_MS - 60_000,
        expires_at_ms=NOW_MS + 600_000,
        ticket_id="tk1-00",
        queue="billing",
    )
    routed = json.loads(routed_message(msg, decision).model_dump_json())
    assert routed["type"] == "routed_message"
    assert routed["message"] == json.loads(msg.model_dump_json())
    assert routed["message"]["attachments"] == attachments
    assert routed["routing"] == {
        "mode": "human",
        "cause": "operator",
        "state_version": 6,
        "decided_at": "2024-05-01T12:00:00Z",
        "human_since": "2024-05-01T11:59:00Z",
        "expires_at": "2024-05-01T12:10:00Z",
        "ticket_id": "tk1-00",
        "queue": "billing",
        "context": None,
    }


def test_the_first_message_after_a_human_stretch_carries_its_context() -> None:  # R20
    turn = {"event_id": "h-1", "role": "human", "text": "Refunded.", "at": "2024-05-01T11:59:00Z"}
    context = {
        "ticket_id": "tk-1",
        "reason": "The user asked for a refund.",
        "handled_by": "jane",
        "handled_by_name": "Jane",
        "resolution_note": "Refund issued.",
        "turns": [turn],
        "ended_by": "operator",
    }
    decision = RouteDecision(status="routed", version=3, decided_at_ms=NOW_MS, context=context)
    routing = json.loads(routed_message(message(), decision).model_dump_json())["routing"]
    assert routing["context"] == {
        **context,
        "turns": [{**turn, "conversation_id": None, "attachments": []}],
    }


def test_routing_of_a_never_changed_interaction() -> None:
    decision = RouteDecision(status="routed", decided_at_ms=NOW_MS)
    routing = routed_message(message(), decision).routing
    assert (routing.mode, routing.cause, routing.state_version) == ("ai", None, 0)
    assert routing.human_since is None and routing.expires_at is None


def test_user_turn_keeps_the_attachments_on_the_turn() -> None:
    msg = message(attachments=[attachment(3)])
    turn = user_turn(msg)
    assert (turn.role, turn.event_id, turn.text, turn.at) == ("user", "m-1", "hello", msg.sent_at)
    assert turn.attachments == msg.attachments


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"attachments": [attachment(0), attachment(1)]},
        {"conversation_id": None, "text": 'Grüße, 你好 "quoted" \\ \u2028'},
        {"sent_at": "2024-05-01T14:00:00.123456+02:00"},  # kept as UTC, microseconds too
    ],
)
def test_the_turn_json_is_the_turn_models_json_byte_for_byte(extra: dict[str, Any]) -> None:
    msg = message(**extra)
    assert user_turn_json(msg) == user_turn(msg).model_dump_json()


@pytest.mark.parametrize(
    "decision",
    [
        RouteDecision(status="routed", decided_at_ms=NOW_MS),
        RouteDecision(status="replay", mode="human", cause="agent", version=9,
                      decided_at_ms=NOW_MS + 7, human_since_ms=NOW_MS - 1,
                      expires_at_ms=NOW_MS + 600_001, ticket_id="tk-9", queue="billing"),
        # A ticket on an AI decision (it was just resolved) is not named in the routing.
        RouteDecision(status="routed", mode="ai", cause="timeout", version=2,
                      decided_at_ms=NOW_MS, ticket_id="tk-1", queue="billing"),
        RouteDecision(status="routed", version=3, decided_at_ms=NOW_MS, context={
            "ticket_id": "tk-1", "reason": "r", "handled_by": None, "resolution_note": None,
            "turns": [{"event_id": "h-1", "role": "human", "text": "x",
                       "at": "2024-05-01T11:59:00Z"}],
            "ended_by": "timeout"}),
    ],
)  # fmt: skip
def test_the_routing_json_is_the_routing_models_json_byte_for_byte(
    decision: RouteDecision,
) -> None:
    assert routing_json(decision) == routing(decision).model_dump_json().encode()


def test_forwarded_reply() -> None:
    r = reply()
    out = forwarded_reply(r, NOW_MS)
    assert out.sender == "ai"
    assert (out.tenant_id, out.agent_id, out.user) == (r.tenant_id, r.agent_id, r.user)
    assert out.event_id == r.reply_id
    assert out.in_reply_to == r.in_reply_to == "m-1"
    assert out.conversation_id == "c-1"
    assert out.text == r.text
    assert out.attachments == []
    assert out.sent_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_the_routed_record_splices_the_inbound_bytes_and_is_a_routed_message() -> None:
    msg = message(attachments=[attachment(0)])
    raw = json.dumps({**json.loads(msg.model_dump_json()), "x_unknown": [1, 2]}).encode()
    decision = RouteDecision(status="routed", mode="human", version=3, decided_at_ms=NOW_MS)
    value = routed_record(raw, msg, decision, room=1 << 20)
    assert raw in value  # the inbound bytes as they came, not serialised again
    # The contract's RoutedMessage, field for field; the unknown field kept, ignored by it.
    assert RoutedMessage.model_validate_json(value) == routed_message(msg, decision)
    assert json.loads(value)["message"]["x_unknown"] == [1, 2]


def test_a_routed_record_over_the_room_is_serialised_without_its_unknown_fields() -> None:
    msg = message()
    raw = json.dumps({**json.loads(msg.model_dump_json()), "padding": "x" * 5000}).encode()
    decision = RouteDecision(status="routed", decided_at_ms=NOW_MS)
    value = routed_record(raw, msg, decision, room=4000)
    assert len(value) < 4000 and b"padding" not in value
    assert value == routed_message(msg, decision).model_dump_json().encode()
