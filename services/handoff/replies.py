"""Teammates' replies that external desks send straight to chat.outbound (R19, R20).

A desk other than the operator API (a CRM, a help-desk product) answers the user by producing
an OutboundMessage with `sender: "human"` on chat.outbound. This batch handler, run by a
TransactionalProcessor of the handoff service with its own consumer group, records each such
reply in the interaction's transcript and counts it as activity (the idle expiry moves, as
for a user message), through ho_human_reply: one atomic step per reply, with a marker keyed
by the reply's event_id and the record's position. A replayed record gets the stored result;
a reply the operator API or the desk CLI already recorded (same event_id, other source) is
skipped. It produces nothing: its effect is in Redis, and the offsets commit with the batch.

Records that are not human replies (the AI's, notices) are passed over unread beyond a byte
check. A record that is not a valid OutboundMessage is not ours to dead-letter: the channels
that consume chat.outbound do it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from schemas import OutboundMessage, interaction_key
from services.common.kafka import Handled, Record, decode
from services.handoff.domain.events import outbound_turn
from services.handoff.state.store import HumanReply, ModeStore

log = structlog.get_logger()


def human_reply_of(record: Record) -> HumanReply | None:
    """The teammate's reply a chat.outbound record carries, or None."""
    raw = record.value or b""
    if b"human" not in raw:  # the bulk of the topic (AI replies, notices) ends here
        return None
    message = decode(record, OutboundMessage)
    if not isinstance(message, OutboundMessage) or message.sender != "human":
        return None
    if message.user.external_id is None:
        return None  # an anonymous user has no interaction state to record it in
    return HumanReply(
        ikey=interaction_key(message),
        event_id=message.event_id,
        src=f"{record.topic}/{record.partition}/{record.offset}",
        turn_json=outbound_turn(message).model_dump_json(),
    )


class ExternalReplies:
    """The batch handler of chat.outbound in the handoff service."""

    def __init__(self, store: ModeStore) -> None:
        self._store = store

    async def __call__(self, records: Sequence[Record]) -> Handled:
        replies = [r for r in map(human_reply_of, records) if r is not None]
        if not replies:
            return Handled()
        results = await self._store.human_replies(replies)
        for reply, result in zip(replies, results, strict=True):
            if result["status"] == "recorded":
                log.info(
                    "external_reply_recorded",
                    interaction=reply.ikey,
                    event_id=reply.event_id,
                    mode=result.get("mode"),
                )
        return Handled()
