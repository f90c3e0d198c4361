"""A teammate's reply to a user (R19): one use case for the operator API and `handoffctl`.

One step (ho_human_reply) records the turn, moves the idle expiry as a user message does and
queues the OutboundMessage with its audit record in the shard outbox, which the relay
publishes exactly once. The reply is a person's answer in the trace of what the desk was
given last (the desk feed keeps that context, api/desk.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas import Attachment, InteractionIds, OutboundMessage, interaction_key
from services.common import tracing
from services.common.settings import Topics
from services.handoff.domain.events import latest_conversation, outbound_turn
from services.handoff.state.outbox import QueuedOutput
from services.handoff.state.store import HumanReply, ModeStore

# Turns read to find the conversation a reply belongs to, when the caller does not say.
CONVERSATION_LOOKBACK_TURNS = 20


@dataclass(frozen=True)
class DeskReply:
    ids: InteractionIds
    text: str
    attachments: Sequence[Attachment] = ()
    in_reply_to: str | None = None
    conversation_id: str | None = None  # None: the conversation of the latest turn
    require_human: bool = True  # False only for `handoffctl desk reply --force`


@dataclass(frozen=True)
class Sent:
    message: OutboundMessage
    expires_at_ms: int | None  # the idle expiry after the reply; None: no idle timeout


class NotInHumanModeError(Exception):
    """The AI has the conversation: a teammate's reply would speak over it."""


class DeskReplies:
    def __init__(self, store: ModeStore, topics: Topics) -> None:
        self._store = store
        self._topics = topics

    async def send(
        self, reply: DeskReply, via: str, audit: Callable[[OutboundMessage], QueuedOutput]
    ) -> Sent:
        """Sends `reply`; `via` names the entry point (api, cli) in the step's marker, `audit`
        makes the reply's OperatorAction (the entry point knows who is asking)."""
        ikey = interaction_key(reply.ids)
        conversation = reply.conversation_id or latest_conversation(
            await self._store.transcript(ikey, CONVERSATION_LOOKBACK_TURNS)
        )
        message = OutboundMessage(
            **reply.ids.model_dump(),
            event_id=str(uuid.uuid4()),
            conversation_id=conversation,
            sender="human",
            text=reply.text,
            attachments=list(reply.attachments),
            in_reply_to=reply.in_reply_to,
            sent_at=datetime.now(UTC),
        )
        outputs = [("outbound", ikey, message.model_dump_json()), audit(message)]
        turn = outbound_turn(message).model_dump_json()
        given = await self._store.latest_trace(ikey)  # what the desk was shown last
        parent = tracing.extract(given)
        with tracing.sending(self._topics.outbound, parent, {"handoff.sender": "human"}) as span:
            step = HumanReply(
                ikey, message.event_id, f"{via}/{message.event_id}", turn, outputs,
                reply.require_human, trace=tracing.carrier_after(span, given),
            )  # fmt: skip
            result = await self._store.human_reply(step)
            tracing.note("handoff.outcome", result["status"])
        if result["status"] == "not_in_human_mode":
            raise NotInHumanModeError(ikey)
        expires = result.get("expires_at")
        return Sent(message, int(expires) if expires is not None else None)
