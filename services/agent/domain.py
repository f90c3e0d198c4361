"""What the reference agent decides, without I/O: a brain's thought about one message, the
rule of repeated failed clarification, and the records the decision becomes.

A brain (rules.py, llm.py) looks at a `Turn` and returns a `Thought`: an `Answer`, or a
`Handoff` (the `request_handoff(reason)` tool). The worker turns an answer into an
`AgentReply` carrying the routing's `state_version` (R9: the reply gate drops it if a handoff
made it stale), and a handoff into a `HandoffCommand` with no reply to that message. Ids are
derived from the message, so a replayed batch yields byte-identical records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas import (
    AgentReply,
    HandoffCommand,
    ReturnContext,
    RoutedMessage,
    ids_of,
    interaction_key,
)
from services.common.ids import derived_id

MAX_REASON = 280
DEFAULT_REASON = "The agent decided this conversation needs a person."
STUCK_REASON = "I could not answer the user's question {n} turns in a row."
EMPTY_ANSWER = "Sorry, I don't have an answer to that. Could you put it another way?"
NO_HANDOFF_ANSWER = (
    "I'm sorry, I can't connect you to a person in this chat. "
    "I'll do my best to help: what do you need?"
)


@dataclass(frozen=True)
class PublishedVersion:
    """What the agent uses of its published version: the number (its commands' actor names
    it) and, of the version's `handoff` block, whether handoff is on, the instructions (one
    condition per line) and the queues it may hand to (first = default). The agent learns it
    from handoff.events (`agent_version_applied`, `agent_version_published`), never from the
    handoff service's state."""

    version: int
    enabled: bool = False
    instructions: str = ""
    queues: tuple[str, ...] = ()

    @classmethod
    def of(cls, version: int, handoff: Mapping[str, Any]) -> PublishedVersion:
        """The version from an `agent_version_applied` record's `handoff` block (the operator
        API's HandoffSettingsBody). Fields the agent does not use are ignored, missing ones
        take their defaults; a field of the wrong type is a ValueError."""
        enabled = handoff.get("enabled", False)
        instructions = handoff.get("instructions") or ""
        queues = handoff.get("queues") or []
        if not isinstance(enabled, bool):
            raise ValueError(f"handoff.enabled is not a boolean: {enabled!r}")
        if not isinstance(instructions, str):
            raise ValueError("handoff.instructions is not a string")
        if not isinstance(queues, list) or not all(isinstance(q, str) for q in queues):
            raise ValueError("handoff.queues is not a list of names")
        return cls(version, enabled, instructions, tuple(queues))


@dataclass(frozen=True)
class Resumed:
    """The AI has the user back after a human stretch (R20's routing.context): why they were
    handed off, who helped (a display name, or None), how it was resolved (or None), what
    ended it (`operator`: a teammate or a switch; `timeout`: nobody wrote for a while, or
    nobody picked up) and the stretch's turns, (role, text) oldest first."""

    reason: str
    teammate: str | None = None
    resolution_note: str | None = None
    ended_by: str = "operator"
    turns: tuple[tuple[str, str], ...] = ()


def resumed_of(context: ReturnContext | None) -> Resumed | None:
    if context is None:
        return None
    return Resumed(
        reason=context.reason,
        teammate=(context.handled_by_name or "").strip() or None,
        resolution_note=(context.resolution_note or "").strip() or None,
        ended_by=context.ended_by,
        turns=tuple((t.role, t.text) for t in context.turns),
    )


@dataclass(frozen=True)
class Turn:
    """What a brain sees of one message."""

    text: str
    attachments: tuple[str, ...] = ()  # file names
    instructions: str = ""  # the published version's handoff instructions
    can_hand_off: bool = False  # whether the request_handoff tool is offered
    history: tuple[tuple[str, str], ...] = ()  # (role, text) of earlier turns, oldest first
    resumed: Resumed | None = None  # the first message after a human stretch (R20)


@dataclass(frozen=True)
class Answer:
    text: str
    understood: bool = True  # False: the agent could not answer (a failed clarification)


@dataclass(frozen=True)
class Handoff:
    reason: str


Thought = Answer | Handoff


class Brain(Protocol):
    name: str
    wants_history: bool  # whether the worker keeps and reads its recent turns (`Turn.history`)

    async def think(self, turn: Turn) -> Thought: ...
    async def aclose(self) -> None: ...


def one_sentence(reason: str) -> str:
    """The contract's reason: one sentence, at most 280 characters, never empty."""
    text = " ".join(reason.split())
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text, maxsplit=1)[0] if text else ""
    if not first:
        return DEFAULT_REASON
    if len(first) > MAX_REASON:
        return first[: MAX_REASON - 1].rstrip() + "…"
    return first


def can_hand_off(published: PublishedVersion | None, message: RoutedMessage) -> bool:
    """R2 as the agent sees it: offer the tool only where a handoff can be accepted.

    A Live Test message still gets the tool: the editor sees the agent's decision, and the
    handoff service rejects the command with `live_test` (R12). An anonymous user does not:
    the command would surely be rejected and the user left without an answer.
    """
    return (
        published is not None and published.enabled and message.message.user.external_id is not None
    )


def after_failures(thought: Thought, failures: int, limit: int, tool: bool) -> Thought:
    """Repeated failed clarification: the `limit`-th unanswered turn in a row hands off."""
    if isinstance(thought, Answer) and not thought.understood and tool and failures >= limit:
        return Handoff(STUCK_REASON.format(n=failures))
    return thought


def settle(thought: Thought, tool: bool) -> Thought:
    """The thought as sent: a handoff where none is offered becomes an answer, a reason one
    sentence, an empty answer a failed turn."""
    if isinstance(thought, Handoff):
        return Handoff(one_sentence(thought.reason)) if tool else Answer(NO_HANDOFF_ANSWER)
    text = thought.text.strip()
    return Answer(text, thought.understood) if text else Answer(EMPTY_ANSWER, understood=False)


def reply_for(routed: RoutedMessage, text: str) -> AgentReply:
    message = routed.message
    return AgentReply(
        **ids_of(message),
        reply_id=derived_id("agent-reply", interaction_key(message), message.event_id),
        conversation_id=message.conversation_id,
        in_reply_to=message.event_id,
        text=text,
        state_version=routed.routing.state_version,
    )


# Words of a reason that send the ticket to the `billing` queue (R14), whole words, any case.
BILLING_WORDS = re.compile(
    r"(?<!\w)(billing|bill|bills|invoice|invoices|charge|charged|charges|chargeback|refund|"
    r"refunds|payment|payments|paid|card|fraud|subscription|rechnung|zahlung|abbuchung|"
    r"facture|paiement|remboursement|factura|pago|reembolso)(?!\w)",
    re.IGNORECASE,
)


def queue_for(reason: str, published: PublishedVersion) -> str | None:
    """R14: the queue to hand to, by the reason: `billing` for billing words when the
    published version lists it; else None, which the handoff service reads as the version's
    first queue (its default). Never a queue the version does not list."""
    if "billing" in published.queues and BILLING_WORDS.search(reason):
        return "billing"
    return None


def command_for(
    routed: RoutedMessage, reason: str, published: PublishedVersion, requested_at: datetime
) -> HandoffCommand:
    """The request_handoff tool call as the contract's command (R2: live_test copied), into
    the queue the reason calls for (R14)."""
    message = routed.message
    return HandoffCommand(
        **ids_of(message),
        command_id=derived_id("agent-handoff", interaction_key(message), message.event_id),
        action="to_human",
        source="agent",
        actor=f"agent:{message.agent_id}@{published.version}",
        reason=one_sentence(reason),
        live_test=message.live_test,
        queue=queue_for(reason, published),
        requested_at=requested_at,
    )
