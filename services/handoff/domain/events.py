"""Turning state changes into the contract's events.

A change record is the flat dict stored in an interaction's history and in the timeout
outbox (written by handoff.lua for timeouts, by `change_record` for commands); every
ModeChanged, whoever emits it, is made from one by `mode_changed`.
"""

from __future__ import annotations

from typing import Any

from schemas import (
    ModeChanged,
    OutboundMessage,
    TicketChanged,
    TranscriptTurn,
    ids_of,
    parse_interaction_key,
)
from services.common.ids import derived_id
from services.handoff.domain.modes import ModeState, at_ms, optional_at_ms
from services.handoff.domain.tickets import Ticket


def change_record(ikey: str, before: ModeState, after: ModeState, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ikey": ikey,
        "from_mode": before.mode,
        "to_mode": after.mode,
        "cause": after.cause,
        "actor": after.actor,
        "reason": after.reason,
        "changed_at": after.changed_at_ms,
        "expires_at": after.expires_at_ms,
        "idle_ms": after.idle_ms,
        "version": after.version,
        "command_id": after.command_id,
    }


def mode_changed(change: dict[str, Any], minute_ms: int) -> ModeChanged:
    ids = parse_interaction_key(change["ikey"])
    idle_ms = change.get("idle_ms")
    return ModeChanged(
        **ids_of(ids),
        event_id=change["event_id"],
        from_mode=change["from_mode"],
        to_mode=change["to_mode"],
        cause=change["cause"],
        actor=change["actor"],
        reason=change["reason"],
        changed_at=at_ms(change["changed_at"]),
        expires_at=optional_at_ms(change.get("expires_at")),
        idle_timeout_minutes=round(idle_ms / minute_ms) if idle_ms else None,
        state_version=change["version"],
        command_id=change.get("command_id"),
    )


def outbound_turn(message: OutboundMessage) -> TranscriptTurn:
    """What the transcript records of a message sent to the user (a desk's reply)."""
    return TranscriptTurn(
        event_id=message.event_id,
        conversation_id=message.conversation_id,
        role=message.sender,
        text=message.text,
        attachments=message.attachments,
        at=message.sent_at,
    )


def ticket_changed(
    before: Ticket | None,
    after: Ticket,
    actor: str,
    note: str | None,
    at: int,
    position: int | None,
) -> TicketChanged:
    """The TicketChanged of one ticket step (`before` None: the ticket was just opened)."""
    return TicketChanged(
        **ids_of(parse_interaction_key(after.ikey)),
        event_id=derived_id("ticket_changed", after.ticket_id, after.version),
        ticket_id=after.ticket_id,
        queue=after.queue,
        from_status=None if before is None else before.status,
        status=after.status,
        assignee=after.assignee,
        actor=actor,
        note=note,
        changed_at=at_ms(at),
        ticket_version=after.version,
        position=position if after.status == "queued" else None,
    )
