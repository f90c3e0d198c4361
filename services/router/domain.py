"""Routing rules that need no I/O: who is stateless, what a routed record and a turn look like."""

from __future__ import annotations

from pydantic_core import to_json

from schemas import (
    AgentReply,
    OutboundMessage,
    ReturnContext,
    RoutedMessage,
    Routing,
    TranscriptTurn,
    UserMessage,
    ids_of,
)
from services.handoff.domain.modes import at_ms, optional_at_ms
from services.handoff.domain.routing import RouteDecision


def is_stateless(message: UserMessage) -> bool:
    """R12 and R2: Live Test and anonymous users are always the AI's and never touch state."""
    return message.live_test or message.user.external_id is None


def user_turn(message: UserMessage) -> TranscriptTurn:
    """R4: the turn as recorded, attachments kept on it."""
    return TranscriptTurn(
        event_id=message.event_id,
        conversation_id=message.conversation_id,
        role="user",
        text=message.text,
        attachments=message.attachments,
        at=message.sent_at,
    )


def user_turn_json(message: UserMessage) -> str:
    """`user_turn(message)`'s JSON, byte for byte (tests/unit/test_routing.py holds them
    equal), serialised from plain values: on the hot path, building the model first cost
    four times as much. Keys in TranscriptTurn's field order."""
    return to_json({
        "event_id": message.event_id, "conversation_id": message.conversation_id,
        "role": "user", "text": message.text, "attachments": message.attachments,
        "at": message.sent_at,
    }).decode()  # fmt: skip


def routing(decision: RouteDecision) -> Routing:
    return Routing(
        mode=decision.mode,
        cause=decision.cause,
        state_version=decision.version,
        decided_at=at_ms(decision.decided_at_ms),
        human_since=optional_at_ms(decision.human_since_ms),
        expires_at=optional_at_ms(decision.expires_at_ms),
        ticket_id=decision.ticket_id if decision.mode == "human" else None,
        queue=decision.queue if decision.mode == "human" else None,
        context=ReturnContext.model_validate(decision.context) if decision.context else None,
    )


def routing_json(decision: RouteDecision) -> bytes:
    """`routing(decision)`'s JSON, byte for byte, from plain values (see `user_turn_json`).
    Keys in Routing's field order."""
    human = decision.mode == "human"
    return to_json({
        "mode": decision.mode, "cause": decision.cause, "state_version": decision.version,
        "decided_at": at_ms(decision.decided_at_ms),
        "human_since": optional_at_ms(decision.human_since_ms),
        "expires_at": optional_at_ms(decision.expires_at_ms),
        "ticket_id": decision.ticket_id if human else None,
        "queue": decision.queue if human else None,
        "context": ReturnContext.model_validate(decision.context) if decision.context else None,
    })  # fmt: skip


def routed_message(message: UserMessage, decision: RouteDecision) -> RoutedMessage:
    return RoutedMessage(message=message, routing=routing(decision))


_SPLICED_HEAD = b'{"type":"routed_message","schema_version":1,"message":'


def routed_record(raw: bytes, message: UserMessage, decision: RouteDecision, room: int) -> bytes:
    """The RoutedMessage's JSON, with the inbound record's own bytes spliced in as `message`
    rather than the model serialised again: `raw` is the JSON `message` was validated from, so
    it is a UserMessage's JSON. Fields the contract does not know stay in it (consumers ignore
    unknown fields, as the contract says). A record that would then be over `room` bytes (it
    carries large unknown fields) is serialised from the model instead, without them."""
    tail = b',"routing":' + routing_json(decision) + b"}"
    if len(_SPLICED_HEAD) + len(raw) + len(tail) <= room:
        return b"".join((_SPLICED_HEAD, raw, tail))
    return routed_message(message, decision).model_dump_json().encode()


def ai_turn(reply: AgentReply, at_ms_: int) -> TranscriptTurn:
    return TranscriptTurn(
        event_id=reply.reply_id,
        conversation_id=reply.conversation_id,
        role="ai",
        text=reply.text,
        at=at_ms(at_ms_),
    )


def forwarded_reply(reply: AgentReply, sent_at_ms: int) -> OutboundMessage:
    """R9: what the user receives when the gate lets an agent reply through."""
    return OutboundMessage(
        **ids_of(reply),
        event_id=reply.reply_id,
        conversation_id=reply.conversation_id,
        sender="ai",
        text=reply.text,
        in_reply_to=reply.in_reply_to,
        sent_at=at_ms(sent_at_ms),
    )
