"""What the router asks of the mode state and what it is told: requests and decisions.

Plain values with no I/O, so the router's domain (services/router/domain.py) can build records
from a decision without importing the Redis code that makes it (state/reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from schemas import Cause, Mode


@dataclass(frozen=True)
class RouteRequest:
    ikey: str
    event_id: str
    src: str  # topic/partition/offset of the inbound record
    turn_json: str  # the transcript turn; '' records nothing
    stateless: bool  # Live Test or anonymous: AI, no state touched


@dataclass(frozen=True)
class RouteDecision:
    status: Literal["routed", "replay", "duplicate"]
    mode: Mode = "ai"
    cause: Cause | None = None
    version: int = 0
    decided_at_ms: int = 0
    human_since_ms: int | None = None
    expires_at_ms: int | None = None
    stateless: bool = False
    ticket_id: str | None = None  # R14: the open ticket and its queue, in human mode
    queue: str | None = None
    # R20: what happened in the human stretch that just ended (ReturnContext's fields, the
    # turns decoded), on the first message routed to the AI after it; else None.
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class GateRequest:
    ikey: str
    reply_id: str
    in_reply_to: str
    src: str
    state_version: int
    turn_json: str


@dataclass(frozen=True)
class GateVerdict:
    status: Literal["decided", "replay", "duplicate"]
    verdict: str = ""
    current_version: int | None = None

    @property
    def forwarded(self) -> bool:
        return self.verdict == "forwarded"
