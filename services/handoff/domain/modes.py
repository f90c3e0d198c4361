"""The handoff domain: mode state, agent handoff settings and the rules of R2, R3, R5-R7.

Pure functions and dataclasses, no I/O: the service layer reads a snapshot from Redis, asks
these functions what should happen, and writes the answer back in one atomic, version-checked
step (services/handoff/state/lua/handoff.lua).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args

from schemas import Cause, HandoffCommand, Mode
from services.common.ids import derived_id
from services.handoff.domain.limits import SWITCH_IDLE_TIMEOUT_MINUTES

# R22: what the entry point a command came through vouches for, never what the record says.
Authority = Literal["agent", "operator"]

DEFAULT_NOTICE = (
    "I've handed this conversation to a human teammate. They'll reply here as soon as they can."
)
# Said on every return, also when no teammate ever wrote (an idle timeout while queued).
DEFAULT_RETURN_NOTICE = "You're chatting with our assistant again. It can see what was said so far."
# R5 and R18: who returns a user to the AI, and why, when no person did. handoff.lua makes
# these returns (atomically with the lease check) and is loaded with these texts.
TIMEOUT_ACTOR = "system:timeout"
TIMEOUT_REASON = "The idle timeout expired with no new user message."
PICKUP_ACTOR = "system:pickup"
LUA_CONSTANTS = {
    "DEFAULT_RETURN_NOTICE": DEFAULT_RETURN_NOTICE,
    "TIMEOUT_ACTOR": TIMEOUT_ACTOR,
    "TIMEOUT_REASON": TIMEOUT_REASON,
    "PICKUP_ACTOR": PICKUP_ACTOR,
}


def at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def optional_at_ms(ms: int | None) -> datetime | None:
    return None if ms is None else at_ms(ms)


@dataclass(frozen=True)
class HandoffConfig:
    """The handoff section of an agent version."""

    enabled: bool = False
    idle_timeout_minutes: int | None = None
    instructions: str = ""
    notice_text: str = DEFAULT_NOTICE
    # R14: the queues the agent may hand to, first = default; empty: ("default",).
    queues: tuple[str, ...] = ()
    # R17: outside the queue's hours, `queue` hands off anyway (the notice says when people
    # are back); `stay_with_ai` rejects the handoff (`out_of_hours`) and the AI keeps the user.
    out_of_hours: Literal["queue", "stay_with_ai"] = "queue"
    # R16: the waiting part of the handoff notice; {position} {eta_minutes} {opens_at}.
    # Empty: the built-in sentence.
    waiting_notice_text: str = ""
    # R15: tell the user the teammate's display name when a teammate takes the ticket.
    announce_teammate: bool = False
    # R20: what the user is told whenever the conversation returns to the AI.
    return_notice_text: str = DEFAULT_RETURN_NOTICE

    def __post_init__(self) -> None:
        # Stored versions hold JSON lists; the config is frozen, so it keeps a tuple.
        object.__setattr__(self, "queues", tuple(self.queues))


@dataclass(frozen=True)
class AgentVersion:
    version: int
    handoff: HandoffConfig
    created_at: str = ""
    created_by: str = ""


@dataclass(frozen=True)
class ModeState:
    """One interaction's mode. Version 0 is the implicit initial state: AI, never changed."""

    mode: Mode = "ai"
    cause: Cause | None = None
    actor: str = ""
    reason: str = ""
    changed_at_ms: int | None = None
    expires_at_ms: int | None = None
    idle_ms: int | None = None
    human_since_ms: int | None = None
    version: int = 0
    command_id: str | None = None
    # R20, set when human mode starts: the return notice in force (the version may change
    # before the return, and the Lua revert reads no agent version) and the ticket's id.
    return_notice: str = ""
    ticket_id: str | None = None
    # R14: the ticket's queue, in human mode (transfers move it).
    queue: str | None = None

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> ModeState:
        def opt_int(name: str) -> int | None:
            value = raw.get(name, "")
            return int(value) if value else None

        if not raw:
            return cls()
        return cls(
            mode="human" if raw.get("mode") == "human" else "ai",
            cause=parse_cause(raw.get("cause", "")),
            actor=raw.get("actor", ""),
            reason=raw.get("reason", ""),
            changed_at_ms=opt_int("changed_at"),
            expires_at_ms=opt_int("expires_at"),
            idle_ms=opt_int("idle_ms"),
            human_since_ms=opt_int("human_since"),
            version=int(raw.get("version", "0") or 0),
            command_id=raw.get("command_id") or None,
            return_notice=raw.get("return_notice", ""),
            ticket_id=raw.get("ticket_id") or None,
            queue=raw.get("queue") or None,
        )

    def to_redis(self) -> dict[str, str]:
        def s(value: object) -> str:
            return "" if value is None else str(value)

        return {
            "mode": self.mode,
            "cause": s(self.cause),
            "actor": self.actor,
            "reason": self.reason,
            "changed_at": s(self.changed_at_ms),
            "expires_at": s(self.expires_at_ms),
            "idle_ms": s(self.idle_ms),
            "human_since": s(self.human_since_ms),
            "version": str(self.version),
            "command_id": s(self.command_id),
            "return_notice": self.return_notice,
            "ticket_id": s(self.ticket_id),
            "queue": s(self.queue),
        }


_CAUSES: dict[str, Cause] = {c: c for c in get_args(Cause)}  # the contract's causes, all of them


def parse_cause(value: str) -> Cause | None:
    return _CAUSES.get(value)


@dataclass(frozen=True)
class Rejection:
    code: str
    detail: str
    # What the user is told about it, if anything (R17 out_of_hours: when people are back).
    notice: str | None = None


@dataclass(frozen=True)
class Transition:
    before: ModeState
    after: ModeState
    event_id: str = field(default="")


def check_command(
    command: HandoffCommand, published: AgentVersion | None, authority: Authority
) -> Rejection | None:
    """R22, R2 and R7: may this command change a live user's mode at all?"""
    if command.source == "operator" and authority != "operator":
        return Rejection(
            "not_allowed",
            "Operator commands come from the operator API or handoff.operator-commands; "
            "this entry point grants agent authority only.",
        )
    if authority == "agent" and not command.actor.startswith("agent:"):
        return Rejection("not_allowed", "An agent's command must name an `agent:` actor.")
    if command.live_test:
        return Rejection("live_test", "Live Test conversations never change a live user's mode.")
    if command.user.external_id is None:
        return Rejection("anonymous_user", "Handoff needs an identified user (external_id).")
    # Whatever is not an operator command has an agent's powers, no more.
    if command.source != "operator" and command.action == "to_ai":
        return Rejection("not_allowed", "An agent cannot take a conversation back from a human.")
    if command.source != "operator" and command.idle_timeout_minutes is not None:
        return Rejection("not_allowed", "Only operators may override the idle timeout.")
    minutes = command.idle_timeout_minutes
    if minutes is not None and minutes not in SWITCH_IDLE_TIMEOUT_MINUTES:
        bound = SWITCH_IDLE_TIMEOUT_MINUTES
        return Rejection(
            "invalid_idle_timeout",
            f"idle_timeout_minutes must be {bound.min}-{bound.max} (0 = no timeout).",
        )
    if command.action == "to_human":
        if published is None:
            return Rejection("agent_not_published", "The agent has no published version.")
        if not published.handoff.enabled:
            return Rejection(
                "handoff_disabled",
                f"Handoff is disabled in published version {published.version}.",
            )
    return None


def idle_timeout_ms(
    command: HandoffCommand, published: AgentVersion | None, minute_ms: int
) -> int | None:
    """R5: the operator's override wins (0 = none); else the published version's setting."""
    minutes = command.idle_timeout_minutes
    if minutes is None and published is not None:
        minutes = published.handoff.idle_timeout_minutes
    return minutes * minute_ms if minutes else None


def plan_transition(
    command: HandoffCommand,
    state: ModeState,
    published: AgentVersion | None,
    now_ms: int,
    minute_ms: int,
    authority: Authority,
) -> Transition | Rejection:
    """The new state a command asks for, or why it cannot have it."""
    rejection = check_command(command, published, authority)
    if rejection is not None:
        return rejection
    to_mode: Mode = "human" if command.action == "to_human" else "ai"
    if state.mode == to_mode:
        return Rejection("already_in_mode", f"The interaction is already in {to_mode} mode.")
    human = to_mode == "human"
    idle = idle_timeout_ms(command, published, minute_ms) if human else None
    after = ModeState(
        mode=to_mode,
        cause=command.source,
        actor=command.actor,
        reason=command.reason,
        changed_at_ms=now_ms,
        expires_at_ms=now_ms + idle if idle else None,
        idle_ms=idle,
        human_since_ms=now_ms if human else None,
        version=state.version + 1,
        command_id=command.command_id,
        return_notice=return_notice_text(published) if human else "",
        # A to_human's ticket (and its queue) is the one commands.py opens for it.
        ticket_id=ticket_id_of(command.command_id) if human else None,
    )
    return Transition(state, after, derived_id("mode_changed", command.command_id, after.version))


def notice_text(published: AgentVersion | None) -> str:
    if published is None or not published.handoff.notice_text.strip():
        return DEFAULT_NOTICE
    return published.handoff.notice_text


def return_notice_text(published: AgentVersion | None) -> str:
    if published is None or not published.handoff.return_notice_text.strip():
        return DEFAULT_RETURN_NOTICE
    return published.handoff.return_notice_text


def return_notice_of(state: ModeState) -> str:
    """R20: the return notice captured when this human stretch began (the default for a
    stretch begun before the text was captured)."""
    return state.return_notice or DEFAULT_RETURN_NOTICE


def ticket_id_of(command_id: str) -> str:
    """The id of the ticket a to_human command opens."""
    return derived_id("ticket", command_id)
