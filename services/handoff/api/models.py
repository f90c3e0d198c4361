"""Request and response bodies of the operator API (they make its OpenAPI document).

`HandoffSettingsBody` is also the one validation of an agent's handoff section: the CLI
(services/handoff/agents.py) validates through it too, so the rules exist once.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from schemas import Cause, Mode, TicketChanged, parse_interaction_key
from schemas.events import (
    ID_PATTERN,
    MAX_ATTACHMENTS,
    Attachment,
    EventId,
    Text,
    TranscriptTurn,
)
from services.handoff.domain import limits
from services.handoff.domain.events import mode_changed
from services.handoff.domain.modes import (
    DEFAULT_NOTICE,
    DEFAULT_RETURN_NOTICE,
    AgentVersion,
    HandoffConfig,
    ModeState,
    at_ms,
    optional_at_ms,
)
from services.handoff.domain.tickets import QueueSettings, Ticket

QueueId = Annotated[str, Field(pattern=ID_PATTERN)]


def _within(bound: limits.Bound) -> Any:
    """The request-model check of a domain bound (and its OpenAPI minimum and maximum)."""
    return Field(ge=bound.min, le=bound.max)


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
    max_length=limits.REASON_CHARS,
    description="Why, in one sentence. Kept in the history and shown to the desk.",
)
Reason = Annotated[str, _REASON, AfterValidator(_not_blank)]


class SwitchToHuman(Body):
    mode: Literal["human"] = Field(description="`human`: the agent goes silent.")
    reason: Reason
    idle_timeout_minutes: (
        Annotated[int, _within(limits.SWITCH_IDLE_TIMEOUT_MINUTES), Integral] | None
    ) = Field(
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
    idle_timeout_minutes: Annotated[int, _within(limits.IDLE_TIMEOUT_MINUTES), Integral] | None = (
        Field(
            default=None,
            description="Human mode ends this long after the user's last message; "
            "null: no timeout (an operator brings the user back).",
        )
    )
    instructions: Annotated[str, Field(max_length=limits.INSTRUCTIONS_CHARS)] = Field(
        default="", description="When the agent should hand off, in the agent's prompt."
    )
    notice_text: Annotated[
        str, Field(min_length=1, max_length=limits.NOTICE_CHARS), AfterValidator(_not_blank)
    ] = Field(default=DEFAULT_NOTICE, description="What the user is told on a handoff.")
    queues: Annotated[
        list[QueueId],
        Field(max_length=limits.QUEUES_PER_AGENT, json_schema_extra={"uniqueItems": True}),
    ] = Field(
        default=[],
        description="The queues the agent may hand to (R14), first = default; empty: "
        '`["default"]`. A handoff naming another queue is rejected `unknown_queue`.',
    )
    out_of_hours: Literal["queue", "stay_with_ai"] = Field(
        default="queue",
        description="Outside the queue's hours (R17): `queue` hands off anyway and the notice "
        "says when people are back; `stay_with_ai` rejects the agent's handoff "
        "(`out_of_hours`), the AI keeps the user, who is told when people are available.",
    )
    waiting_notice_text: Annotated[str, Field(max_length=limits.NOTICE_CHARS)] = Field(
        default="",
        description="The waiting part of the handoff notice and of a better-place notice "
        "(R16), with `{position}`, `{eta_minutes}`, `{opens_at}` (other text is kept as "
        "written). When a placeholder has no value (no estimate yet, the queue is open), the "
        "built-in sentence is used instead. Empty: the built-in sentence.",
    )
    announce_teammate: bool = Field(
        default=False,
        description="Tell the user the teammate's display name when a teammate takes the "
        "ticket (R15).",
    )
    return_notice_text: Annotated[
        str, Field(min_length=1, max_length=limits.NOTICE_CHARS), AfterValidator(_not_blank)
    ] = Field(
        default=DEFAULT_RETURN_NOTICE,
        description="What the user is told whenever the conversation returns to the AI "
        "(operator switch, resolve, idle timeout, pickup fallback). The text in force when "
        "human mode starts is the one sent at its end (R20).",
    )

    @field_validator("queues")
    @classmethod
    def _distinct(cls, queues: list[str]) -> list[str]:
        if len(set(queues)) != len(queues):
            raise ValueError("each queue may be listed once")
        return queues

    def to_config(self) -> HandoffConfig:
        # The body and the domain's HandoffConfig name the same fields: one list of them.
        return HandoffConfig(**{**self.model_dump(), "queues": tuple(self.queues)})


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
            handoff=HandoffSettingsBody.model_construct(**{**asdict(h), "queues": list(h.queues)}),
            created_at=v.created_at,
            created_by=v.created_by,
            published=v.version == published,
        )


class AgentView(Out):
    tenant_id: str
    agent_id: str
    published_version: int | None
    versions: list[AgentVersionView] = Field(description="Newest first.")


# The tenant's lists -------------------------------------------------------------------------


class AgentSummary(Out):
    agent_id: str
    published_version: int | None = Field(description="The live version; null: none yet.")
    latest_version: int = Field(
        description="The newest version (Apply); above `published_version`: not live yet."
    )
    updated_at: datetime | None = Field(description="The last Apply or Publish.")


class AgentList(Out):
    items: list[AgentSummary] = Field(description="The tenant's agents, by id.")


class UserSummary(Out):
    """One user's interaction with one agent, as the users list shows it."""

    agent_id: str
    channel: str
    external_id: str
    mode: Mode
    cause: Cause | None = Field(description="Why the mode was set; null if it never changed.")
    expires_at: datetime | None = Field(description="When human mode ends; null: no timeout.")
    state_version: int = Field(description="The interaction's state version (R9), not an agent's.")
    last_activity_at: datetime | None = Field(description="The last recorded turn.")


class UserList(Page):
    items: list[UserSummary] = Field(description="By agent, channel and user id.")


# Desk ---------------------------------------------------------------------------------------


class DeskReply(Body):
    # "Text or files", stated in the schema too (clients and schemathesis read it there).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"minLength": 1}}},
                {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
            ]
        }
    )
    text: Text = Field(default="", description="May be empty when the reply has attachments.")
    attachments: Annotated[list[AttachmentBody], Field(max_length=MAX_ATTACHMENTS)] = Field(
        default=[], description="Files stored with `POST /v1/tenants/{t}/desk/files`."
    )
    in_reply_to: EventId | None = None
    conversation_id: EventId | None = Field(
        default=None, description="Default: the conversation of the user's latest turn."
    )

    @model_validator(mode="after")
    def _something_to_send(self) -> DeskReply:
        if not self.text and not self.attachments:
            raise ValueError("a reply needs text or a file")
        return self


class DeskReplySent(Out):
    event_id: str
    conversation_id: str | None
    sent_at: datetime
    expires_at: datetime | None = Field(
        description="The idle expiry after this reply (a teammate's reply moves it, R19); "
        "null: no idle timeout."
    )


class IdleExtend(Body):
    minutes: Annotated[int, _within(limits.EXTEND_MINUTES), Integral] | None = Field(
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


# Queues and tickets (R14-R18) -------------------------------------------------------------


class QueueSettingsBody(QueueSettings):
    """`PUT /v1/tenants/{t}/queues/{q}`: the whole settings (a field left out takes its
    default). `version`: optional optimistic check, 409 `version_conflict` if the queue is
    at another version."""

    version: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The version you read (0: the queue must not exist yet)."
    )

    def settings(self) -> QueueSettings:
        return QueueSettings.model_validate(self.model_dump(exclude={"version"}))


class QueueStatusView(Out):
    open_now: bool = Field(description="Whether the queue is inside its hours now.")
    next_opening: datetime | None = Field(
        description="When it opens next (now if open; null: no opening ahead)."
    )
    next_opening_text: str | None = Field(
        description="The same, as users are told it, in the queue's time zone."
    )
    waiting: int = Field(description="Tickets queued (no assignee).")
    assigned: int = Field(description="Open tickets with an assignee.")
    oldest_wait_seconds: float | None = Field(
        description="How long the longest-waiting queued ticket has waited since its handoff."
    )
    pickups_last_hour: int
    pickup_p50_seconds: float | None = Field(description="Median pickup wait, last hour.")
    pickup_p90_seconds: float | None = Field(description="90th percentile, last hour.")
    teammates_online: int = Field(
        description="Editors/admins seen lately (a ticket action, desk reply or open desk)."
    )
    eta_minutes_next: int | None = Field(
        description="The ETA a newly queued user would be told; null: no estimate yet."
    )


class QueueView(Out):
    queue: str
    configured: bool = Field(description="False: never PUT; these are the defaults.")
    version: int = Field(description="Settings version (0 when not configured).")
    updated_at: str | None
    updated_by: str | None
    settings: QueueSettings
    status: QueueStatusView | None = Field(
        default=None, description="Live status (on GET of one queue; null in lists)."
    )


class QueueList(Out):
    items: list[QueueView] = Field(
        description="The configured queues and `default`, by id; without status."
    )


class TicketView(Out):
    ticket_id: str
    tenant_id: str
    agent_id: str
    channel: str
    external_id: str
    interaction: str = Field(description="The interaction key.")
    queue: str
    status: Literal["queued", "assigned", "resolved", "closed"]
    assignee: str | None = Field(description="The teammate's `sub`, or null.")
    assignee_name: str | None
    ticket_version: int
    reason: str
    cause: str
    created_at: datetime = Field(description="The handoff; orders the queue.")
    queued_at: datetime = Field(description="When it last became queued.")
    assigned_at: datetime | None
    ended_at: datetime | None
    resolution_note: str | None
    pickup_overdue: bool
    position: int | None = Field(description="Place in its queue (1 = next) while queued.")
    waiting_seconds: float | None = Field(
        description="Since the handoff, while the ticket is open; null once it ended."
    )

    @classmethod
    def of(cls, t: Ticket, position: int | None, now_ms: int) -> TicketView:
        ids = parse_interaction_key(t.ikey)
        return cls(
            ticket_id=t.ticket_id,
            tenant_id=t.tenant_id,
            agent_id=ids.agent_id,
            channel=ids.user.channel,
            external_id=ids.user.external_id or "",
            interaction=t.ikey,
            queue=t.queue,
            status=t.status,
            assignee=t.assignee,
            assignee_name=t.assignee_name,
            ticket_version=t.version,
            reason=t.reason,
            cause=t.cause,
            created_at=at_ms(t.created_at_ms),
            queued_at=at_ms(t.queued_at_ms),
            assigned_at=optional_at_ms(t.assigned_at_ms),
            ended_at=optional_at_ms(t.ended_at_ms),
            resolution_note=t.resolution_note,
            pickup_overdue=t.pickup_overdue,
            position=position,
            waiting_seconds=(now_ms - t.created_at_ms) / 1000 if t.open else None,
        )


class TicketDetail(TicketView):
    history: list[TicketChanged] = Field(description="Its TicketChanged events, oldest first.")


class QueueTickets(Out):
    queue: str
    items: list[TicketView] = Field(
        description="Open tickets (queued and assigned), oldest handoff first."
    )


_NOTE = Annotated[str, Field(min_length=1, max_length=limits.NOTE_CHARS)]
_NAME = Annotated[str, Field(min_length=1, max_length=limits.NAME_CHARS)]
_VERSION = Field(
    default=None,
    description="Optional: the ticket_version you acted on; 409 `version_conflict` if "
    "the ticket changed meanwhile.",
)


class ClaimBody(Body):
    display_name: _NAME | None = Field(
        default=None, description="How the user may be told your name; default: your `sub`."
    )
    ticket_version: int | None = _VERSION


class AssignBody(Body):
    assignee: Annotated[str, Field(min_length=1, max_length=limits.NAME_CHARS)] = Field(
        description="The teammate's operator id (`sub`)."
    )
    display_name: _NAME | None = None
    ticket_version: int | None = _VERSION


class TransferBody(Body):
    queue: QueueId = Field(description="The queue to move the ticket to (back to `queued`).")
    note: _NOTE | None = None
    ticket_version: int | None = _VERSION


class ReleaseBody(Body):
    note: _NOTE | None = None
    ticket_version: int | None = _VERSION


class ResolveBody(Body):
    note: _NOTE | None = Field(
        default=None,
        description="The resolution note: kept on the ticket (`resolution_note`) and given to "
        "the AI when it resumes (R20).",
    )
    return_to_ai: bool = Field(
        default=True,
        description="Return the interaction to the AI (ModeChanged, cause `operator`); "
        "false: the ticket is resolved and the user stays in human mode.",
    )
    ticket_version: int | None = _VERSION


# The reply box (api/compose.py) -------------------------------------------------------------


class ComposingBody(Body):
    display_name: _NAME | None = Field(
        default=None, description="How teammates see you; default: your `sub`."
    )


class ComposingTeammate(Out):
    sub: str
    display_name: str
    activity: Literal["composing", "replied"] = Field(
        description="`composing`: typing a reply now; `replied`: sent one a moment ago."
    )
    at: datetime = Field(description="When it was last seen.")


class Composing(Out):
    teammates: list[ComposingTeammate] = Field(
        description="The other teammates composing a reply to this user, or who just "
        "replied, the latest first (never the caller)."
    )


class CannedReplyBody(Body):
    title: Annotated[str, Field(min_length=1, max_length=120), AfterValidator(_not_blank)]
    text: Annotated[Text, Field(min_length=1), AfterValidator(_not_blank)]


class CannedReplyView(Out):
    id: str
    title: str
    text: str
    updated_at: str
    updated_by: str


class CannedReplies(Out):
    items: list[CannedReplyView]
