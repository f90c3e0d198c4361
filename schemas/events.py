"""The events of the Handoff contract, one pydantic model each.

Every service imports these models: they are the single source of the wire format, and
`make schemas` generates the checked-in JSON Schema files from them. Field names and limits
follow ../shared/design/ARCHITECTURE.md. Unknown fields are ignored (not rejected) so that a
producer on a newer minor version of the contract does not dead-letter on older consumers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_TEXT_BYTES = 32 * 1024
MAX_ATTACHMENTS = 20


def _utf8_at_most_32_kib(text: str) -> str:
    # The limit is on the encoded size that travels on Kafka, not on code points.
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise ValueError(f"text is longer than {MAX_TEXT_BYTES} bytes in UTF-8")
    return text


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must hold printable characters only")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_printable)
]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=280)]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, AfterValidator(_utf8_at_most_32_kib)]
# RFC 3339: an offset is required (a naive time would be read in the host's time zone).
Timestamp = Annotated[AwareDatetime, AfterValidator(_as_utc)]
Mode = Literal["ai", "human"]
Cause = Literal["agent", "operator", "timeout"]
Sender = Literal["system", "ai", "human"]
TicketStatus = Literal["queued", "assigned", "resolved", "closed"]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Event(Model):
    """Every value on a topic opens with its model's name and the contract's version."""

    type: str
    schema_version: Literal[1] = 1


class EndUser(Model):
    """An external person on a channel; `external_id` is null for an anonymous user."""

    channel: Id
    external_id: ExternalId | None = None


class Attachment(Model):
    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    size: Annotated[int, Field(ge=0)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class InteractionIds(Model):
    """The (tenant, agent, end user) triple that owns a mode."""

    tenant_id: Id
    agent_id: Id
    user: EndUser


class UserMessage(InteractionIds, Event):
    type: Literal["user_message"] = "user_message"
    event_id: EventId
    conversation_id: EventId | None = None
    live_test: bool = False
    text: Text = ""
    attachments: Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)] = []
    sent_at: Timestamp


class TranscriptTurn(Model):
    """One recorded turn of an interaction, attachments kept on the turn they came with."""

    event_id: EventId
    conversation_id: EventId | None = None
    role: Literal["user", "ai", "system", "human"]
    text: Text
    attachments: list[Attachment] = []
    at: Timestamp


class ReturnContext(Model):
    """What happened while a person had the user (R20), on the first message to the AI after
    a human stretch: the handoff's `reason`, who handled it (`handled_by`: the ticket's
    assignee, a teammate id, or null; `handled_by_name` their display name), the
    `resolution_note` of a resolve (or null), the stretch's last `turns` (oldest first,
    capped) and `ended_by`: the cause of the return (`operator` for a switch or a resolve,
    `timeout` for the idle timeout or a pickup fallback)."""

    ticket_id: str | None = None
    reason: str = ""
    handled_by: str | None = None
    handled_by_name: str | None = None
    resolution_note: str | None = None
    turns: list[TranscriptTurn] = []
    ended_by: Cause


class Routing(Model):
    mode: Mode
    cause: Cause | None
    state_version: Annotated[int, Field(ge=0)]
    decided_at: Timestamp
    human_since: Timestamp | None
    expires_at: Timestamp | None
    # R14: the interaction's open ticket and its queue, in human mode; null on AI.
    ticket_id: EventId | None = None
    queue: Id | None = None
    # Only on the first message routed to the AI after a human stretch (R20), once.
    context: ReturnContext | None = None


class RoutedMessage(Event):
    type: Literal["routed_message"] = "routed_message"
    message: UserMessage
    routing: Routing


class HandoffTicket(InteractionIds, Event):
    type: Literal["handoff_ticket"] = "handoff_ticket"
    ticket_id: EventId
    cause: Cause
    actor: Actor
    reason: Reason
    created_at: Timestamp
    expires_at: Timestamp | None
    state_version: Annotated[int, Field(ge=0)]
    command_id: EventId | None = None
    # R14: the queue the ticket waits in and its status when this record was written.
    queue: Id = "default"
    status: TicketStatus = "queued"
    transcript: list[TranscriptTurn]


class HandoffCommand(InteractionIds, Event):
    type: Literal["handoff_command"] = "handoff_command"
    command_id: EventId
    action: Literal["to_human", "to_ai"]
    source: Literal["agent", "operator"]
    actor: Actor
    reason: Reason
    live_test: bool = False
    # Operators only. 0 means "no timeout" for this handoff; null means the published default.
    idle_timeout_minutes: Annotated[int, Field(ge=0, le=10080)] | None = None
    # R14: the queue to hand to; one the published version lists. Null: the version's first.
    queue: Id | None = None
    requested_at: Timestamp


class ModeChanged(InteractionIds, Event):
    type: Literal["mode_changed"] = "mode_changed"
    event_id: EventId
    from_mode: Mode
    to_mode: Mode
    cause: Cause
    actor: Actor
    reason: Reason
    changed_at: Timestamp
    expires_at: Timestamp | None
    # The idle timeout in force after the change, so the event carries the whole state.
    idle_timeout_minutes: int | None = None
    state_version: Annotated[int, Field(ge=1)]
    command_id: EventId | None


class CommandRejected(InteractionIds, Event):
    type: Literal["command_rejected"] = "command_rejected"
    event_id: EventId
    command_id: EventId
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    detail: str
    rejected_at: Timestamp


class TicketChanged(InteractionIds, Event):
    """One change of a ticket (R15): a status change, an owner change or an announcement.

    `from_status` is null when the ticket is created. `ticket_version` strictly increases per
    ticket; `position` is the ticket's place in its queue (1 = next) when `queued`, else null.
    `note` is null, a teammate's note, or one of the announcements `pickup_overdue` (R18),
    `transferred`, `released`, `mode_returned` (the interaction left human mode).
    """

    type: Literal["ticket_changed"] = "ticket_changed"
    event_id: EventId
    ticket_id: EventId
    queue: Id
    from_status: TicketStatus | None
    status: TicketStatus
    assignee: Actor | None
    actor: Actor
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    changed_at: Timestamp
    ticket_version: Annotated[int, Field(ge=1)]
    position: Annotated[int, Field(ge=1)] | None = None


class AgentReply(InteractionIds, Event):
    type: Literal["agent_reply"] = "agent_reply"
    reply_id: EventId
    conversation_id: EventId | None = None
    in_reply_to: EventId
    text: Text
    state_version: Annotated[int, Field(ge=0)]


class OutboundMessage(InteractionIds, Event):
    type: Literal["outbound_message"] = "outbound_message"
    event_id: EventId
    conversation_id: EventId | None = None
    sender: Sender
    text: Text
    attachments: Annotated[list[Attachment], Field(max_length=MAX_ATTACHMENTS)] = []
    in_reply_to: EventId | None = None
    sent_at: Timestamp


class DeadLetterError(Model):
    kind: Literal[
        "undecodable",
        "invalid_json",
        "schema_invalid",
        "too_large",
        "unknown_type",
        "processing_failed",
    ]
    detail: str


class DeadLetter(Event):
    type: Literal["dead_letter"] = "dead_letter"
    source_topic: str
    partition: int
    offset: int
    key: str | None
    error: DeadLetterError
    raw: str  # the original value bytes, base64; only their start when raw_truncated
    received_at: Timestamp
    # A dead letter fits in one Kafka record: a longer value keeps its first bytes only (the
    # whole record stays on source_topic at partition/offset until the topic's retention).
    raw_truncated: bool = False
    raw_size: Annotated[int, Field(ge=0)] | None = None  # the original value's bytes


class OperatorAction(Event):
    """The audit record of one state-changing operator call, on handoff.events (R22).

    Who (`actor`, `role`, `token_id`: the token's `jti`, or null when it has none), what
    (`action` on `target`: an interaction key, `{agent_id}` / `{agent_id}@v{n}`, `queue:{q}`,
    `canned_reply:{id}`), when
    (`at`), through what (`via`) and how it ended (`outcome`: `accepted`, a rejection code,
    `applied`, `published`, `sent`, `deleted`). It never carries message text or reasons.

    `via` is `api` for the operator API, whose `actor` and `role` come from the verified
    token; or the Kafka topic a HandoffCommand came on, with `role` null: on
    handoff.operator-commands the `actor` is the record's (the topic's ACLs vouch for its
    writers); on handoff.commands, which grants agent authority only, a record claiming
    operator authority is rejected and audited with `actor` `kafka:{topic}` (all that is
    known: someone who may write that topic) and the untrusted claim in `claimed_actor`.
    """

    type: Literal["operator_action"] = "operator_action"
    event_id: EventId
    tenant_id: Id
    actor: Actor
    role: Literal["viewer", "editor", "admin"] | None = None
    token_id: Annotated[str, StringConstraints(max_length=256)] | None = None
    action: Literal[
        "mode_switch",
        "agent_apply",
        "agent_publish",
        "desk_reply",
        "idle_extend",
        "queue_update",
        "ticket_claim",
        "ticket_assign",
        "ticket_transfer",
        "ticket_release",
        "ticket_resolve",
        "canned_reply_update",
        "canned_reply_delete",
    ]
    target: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    command_id: EventId | None = None
    via: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "api"
    claimed_actor: Actor | None = None
    at: Timestamp


class AgentVersionApplied(Event):
    """Apply: a new immutable version of an agent's settings (on handoff.events, keyed
    `{tenant_id}:{agent_id}`). With AgentVersionPublished, the log holds every version, so
    Redis' copy can be rebuilt from it."""

    type: Literal["agent_version_applied"] = "agent_version_applied"
    event_id: EventId
    tenant_id: Id
    agent_id: Id
    version: Annotated[int, Field(ge=1)]
    # The version's `handoff` block, as the operator API's AgentVersionBody takes it.
    handoff: dict[str, Any]
    created_at: Timestamp
    created_by: Actor


class AgentVersionPublished(Event):
    """Publish: `version` is the agent's live version from `published_at` on."""

    type: Literal["agent_version_published"] = "agent_version_published"
    event_id: EventId
    tenant_id: Id
    agent_id: Id
    version: Annotated[int, Field(ge=1)]
    published_at: Timestamp
    published_by: Actor


EVENT_MODELS: tuple[type[Model], ...] = (
    UserMessage,
    RoutedMessage,
    HandoffTicket,
    HandoffCommand,
    ModeChanged,
    CommandRejected,
    TicketChanged,
    AgentReply,
    OutboundMessage,
    DeadLetter,
    OperatorAction,
    AgentVersionApplied,
    AgentVersionPublished,
)
