"""Request and response bodies of the operator API (they make its OpenAPI document).

`HandoffSettingsBody` is also the one validation of an agent's handoff section: the CLI
(services/handoff/agents.py) validates through it too, so the rules exist once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from schemas.events import (
    MAX_ATTACHMENTS,
    Attachment,
    EventId,
    Text,
    TranscriptTurn,
)
from services.handoff.domain import (
    DEFAULT_NOTICE,
    DEFAULT_RETURN_NOTICE,
    AgentVersion,
    HandoffConfig,
    ModeState,
    optional_at_ms,
)
from services.handoff.events import mode_changed

MAX_IDLE_MINUTES = 10080  # one week
Mode = Literal["ai", "human"]
Cause = Literal["agent", "operator", "timeout"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class Body(BaseModel):
    # Strict: a JSON string is never a number or a boolean here ("5", "true", 5.0, 1).
    model_config = ConfigDict(extra="forbid", strict=True)


def _integral(value: object) -> object:
    # JSON Schema's `integer` includes 1.0; strings and booleans stay refused (strict).
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Constraints go before the validator: after it, pydantic writes them raw (`ge`) into the schema.
Integral = BeforeValidator(_integral)


class AttachmentBody(Attachment):
    """An attachment in a request body: the event's model, strictly typed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    size: Annotated[int, Field(ge=0), Integral]


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Session(Out):
    sub: str
    tenant: str
    role: Literal["viewer", "editor", "admin"]
    can_write: bool = Field(description="Whether the role may switch modes, apply and reply.")
    expires_at: datetime


# Mode ---------------------------------------------------------------------------------------


_REASON = Field(
    min_length=1,
    max_length=280,
    description="Why, in one sentence. Kept in the history and shown to the desk.",
)
Reason = Annotated[str, _REASON, AfterValidator(_not_blank)]


class SwitchToHuman(Body):
    mode: Literal["human"] = Field(description="`human`: the agent goes silent.")
    reason: Reason
    idle_timeout_minutes: Annotated[int, Field(ge=0, le=MAX_IDLE_MINUTES), Integral] | None = Field(
        default=None,
        description="Overrides the published idle timeout; 0 = no timeout; null = the "
        "published version's setting.",
    )


class SwitchToAi(Body):
    mode: Literal["ai"] = Field(description="`ai`: the agent answers again.")
    reason: Reason
    idle_timeout_minutes: None = Field(default=None, description="Only for a switch to human.")


ModeSwitch = Annotated[SwitchToHuman | SwitchToAi, Field(discriminator="mode")]


class RoutingState(Out):
    """One interaction's mode (R8). `state_version` 0: never changed, on AI."""

    mode: Mode
    cause: Cause | None = Field(description="Why the mode was set; null if it never changed.")
    actor: str | None = Field(description="e.g. `agent:support@3`, `operator:jane`.")
    reason: str | None
    changed_at: datetime | None
    human_since: datetime | None
    expires_at: datetime | None = Field(
        description="When human mode ends unless the user writes again; null: no timeout."
    )
    idle_timeout_minutes: int | None
    state_version: int
    command_id: str | None = None

    @classmethod
    def of(cls, state: ModeState, minute_ms: int) -> RoutingState:
        return cls(
            mode=state.mode,
            cause=state.cause,
            actor=state.actor or None,
            reason=state.reason or None,
            changed_at=optional_at_ms(state.changed_at_ms),
            human_since=optional_at_ms(state.human_since_ms),
            expires_at=optional_at_ms(state.expires_at_ms),
            idle_timeout_minutes=round(state.idle_ms / minute_ms) if state.idle_ms else None,
            state_version=state.version,
            command_id=state.command_id,
        )


class AgentHandoff(Out):
    published_version: int | None
    enabled: bool = Field(description="Whether the published version has handoff enabled.")


class AgentRouting(RoutingState):
    agent_id: str
    handoff: AgentHandoff


class UserView(Out):
    tenant_id: str
    channel: str
    external_id: str
    agents: list[AgentRouting]


class ModeChangedView(RoutingState):
    """The state a mode switch produced."""

    agent_id: str
    from_mode: Mode


class HistoryEntry(Out):
    event_id: str
    from_mode: Mode
    to_mode: Mode
    cause: Cause
    actor: str
    reason: str
    changed_at: datetime
    expires_at: datetime | None
    idle_timeout_minutes: int | None
    state_version: int
    command_id: str | None

    @classmethod
    def of(cls, change: dict[str, Any], minute_ms: int) -> HistoryEntry:
        """A change record of the history, as the ModeChanged it was, without the ids."""
        event = mode_changed(change, minute_ms)
        return cls.model_validate(event.model_dump(include=set(cls.model_fields)))


class Page(Out):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: end.")
    next: str | None = Field(description="The next page's URL (path and query), or null.")


class HistoryPage(Page):
    items: list[HistoryEntry] = Field(description="Mode changes, newest first.")


class TranscriptPage(Page):
    items: list[TranscriptTurn] = Field(description="Turns, oldest first; `next` goes older.")


# Agents -------------------------------------------------------------------------------------


class HandoffSettingsBody(Body):
    """The handoff section of an agent version."""

    enabled: bool = Field(description="Whether the agent's handoff tool works (R2).")
    idle_timeout_minutes: Annotated[int, Field(ge=1, le=MAX_IDLE_MINUTES), Integral] | None = Field(
        default=None,
        description="Human mode ends this long after the user's last message; "
        "null: no timeout (an operator brings the user back).",
    )
    instructions: Annotated[str, Field(max_length=2000)] = Field(
        default="", description="When the agent should hand off, in the agent's prompt."
    )
    notice_text: Annotated[
        str, Field(min_length=1, max_length=1000), AfterValidator(_not_blank)
    ] = Field(default=DEFAULT_NOTICE, description="What the user is told on a handoff.")
    return_notice_text: Annotated[
        str, Field(min_length=1, max_length=1000), AfterValidator(_not_blank)
    ] = Field(
        default=DEFAULT_RETURN_NOTICE,
        description="What the user is told whenever the conversation returns to the AI "
        "(operator switch, resolve, idle timeout, pickup fallback). The text in force when "
        "human mode starts is the one sent at its end (R20).",
    )

    def to_config(self) -> HandoffConfig:
        return HandoffConfig(
            self.enabled,
            self.idle_timeout_minutes,
            self.instructions,
            self.notice_text,
            self.return_notice_text,
        )


class AgentVersionBody(Body):
    handoff: HandoffSettingsBody


class AgentVersionView(Out):
    version: int
    handoff: HandoffSettingsBody
    created_at: str
    created_by: str
    published: bool

    @classmethod
    def of(cls, v: AgentVersion, published: int | None) -> AgentVersionView:
        h = v.handoff
        return cls(
            version=v.version,
            handoff=HandoffSettingsBody.model_construct(
                enabled=h.enabled,
                idle_timeout_minutes=h.idle_timeout_minutes,
                instructions=h.instructions,
                notice_text=h.notice_text,
                return_notice_text=h.return_notice_text,
            ),
            created_at=v.created_at,
            created_by=v.created_by,
            published=v.version == published,
        )


class AgentView(Out):
    tenant_id: str
    agent_id: str
    published_version: int | None
    versions: list[AgentVersionView] = Field(description="Newest first.")


# Desk ---------------------------------------------------------------------------------------


class DeskReply(Body):
    text: Annotated[Text, Field(min_length=1)]
    attachments: Annotated[list[AttachmentBody], Field(max_length=MAX_ATTACHMENTS)] = []
    in_reply_to: EventId | None = None
    conversation_id: EventId | None = Field(
        default=None, description="Default: the conversation of the user's latest turn."
    )


class DeskReplySent(Out):
    event_id: str
    conversation_id: str | None
    sent_at: datetime
    expires_at: datetime | None = Field(
        description="The idle expiry after this reply (a teammate's reply moves it, R19); "
        "null: no idle timeout."
    )


class IdleExtend(Body):
    minutes: Annotated[int, Field(ge=1, le=MAX_IDLE_MINUTES), Integral] | None = Field(
        default=None,
        description="Human mode lasts at least this many minutes from now; default: the "
        "interaction's idle timeout. Never shortens the current expiry.",
    )


class IdleExtended(Out):
    expires_at: datetime = Field(description="The idle expiry now.")
    state_version: int


class DeskTicket(Out):
    """An interaction in human mode, as the desk lists it."""

    interaction: str
    agent_id: str
    channel: str
    external_id: str
    opened_at: datetime
    state: RoutingState


class DeskTickets(Out):
    items: list[DeskTicket] = Field(description="Open tickets, newest first.")
