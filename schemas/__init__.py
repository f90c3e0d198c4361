"""Event models shared by every Handoff service (see events.py)."""

from schemas.events import (
    EVENT_MODELS,
    AgentReply,
    Attachment,
    CommandRejected,
    DeadLetter,
    DeadLetterError,
    EndUser,
    HandoffCommand,
    HandoffTicket,
    InteractionIds,
    ModeChanged,
    OutboundMessage,
    RoutedMessage,
    Routing,
    TranscriptTurn,
    UserMessage,
)
from schemas.interaction import ids_of, interaction_key, parse_interaction_key

__all__ = [
    "EVENT_MODELS",
    "AgentReply",
    "Attachment",
    "CommandRejected",
    "DeadLetter",
    "DeadLetterError",
    "EndUser",
    "HandoffCommand",
    "HandoffTicket",
    "InteractionIds",
    "ModeChanged",
    "OutboundMessage",
    "RoutedMessage",
    "Routing",
    "TranscriptTurn",
    "UserMessage",
    "ids_of",
    "interaction_key",
    "parse_interaction_key",
]
