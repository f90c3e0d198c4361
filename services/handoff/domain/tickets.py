"""The human side of a handoff without I/O: queues, tickets, waiting times (R14-R18).

The service layer reads a snapshot (the ticket hash, the queue's settings, the queue index),
asks these functions what should happen, and writes the answer in one version-checked
Redis step (handoff.lua `ho_ticket_step`, `ho_apply`, `ho_pickup_fire`).
"""

from __future__ import annotations

import math
import re
import statistics
import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from schemas import HandoffCommand
from schemas.events import ID_PATTERN
from services.handoff.domain.hours import OpeningHours, parse_range, zone
from services.handoff.domain.limits import NAME_CHARS, PICKUP_TARGET_MINUTES
from services.handoff.domain.modes import AgentVersion, Rejection
from services.handoff.state.keys import SHARDS, shard_of

Status = Literal["queued", "assigned", "resolved", "closed"]
NoPickup = Literal["wait", "notify", "back_to_ai"]
OPEN: tuple[Status, ...] = ("queued", "assigned")
DEFAULT_QUEUE = "default"
# An ETA needs at least this many pickups in the window; fewer: "no estimate yet".
ETA_MIN_PICKUPS = 3
TICKET_ID = re.compile(r"^tk([0-9]{1,2})-[0-9a-f]{32}$")


# Queues --------------------------------------------------------------------------------------


def _valid_zone(name: str) -> str:
    zone(name)
    return name


def _valid_range(value: str) -> str:
    parse_range(value)
    return value.replace("\u2013", "-").replace(" ", "")


# What the OpenAPI document says of a range: every string it allows is a valid range.
RANGE_PATTERN = (
    r"^\s*([01][0-9]|2[0-3]):[0-5][0-9]\s*[-\u2013]\s*(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\s*$"
)


class QueueSettings(BaseModel):
    """A queue's settings (`PUT /v1/tenants/{t}/queues/{q}`); the defaults: open around the
    clock, no pickup target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: Annotated[str, Field(max_length=NAME_CHARS)] = Field(
        default="", description="How people call the queue; empty: its id."
    )
    timezone: Annotated[str, AfterValidator(_valid_zone)] = Field(
        default="UTC",
        description="IANA time zone of `hours` and `closed_dates`.",
        json_schema_extra={"enum": list[JsonValue](sorted(available_timezones()))},
    )
    hours: (
        dict[
            Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            Annotated[
                list[Annotated[str, Field(pattern=RANGE_PATTERN), AfterValidator(_valid_range)]],
                Field(max_length=12),
            ],
        ]
        | None
    ) = Field(
        default=None,
        description="Weekday -> local `HH:MM-HH:MM` ranges (an en dash works too; start "
        "inclusive, end exclusive, `24:00` = midnight). Ranges may overlap. An end before the "
        "start crosses midnight (`22:00-06:00`); start = end is 24 hours. A weekday left out "
        "is closed all day; null: open around the clock.",
    )
    closed_dates: Annotated[list[date], Field(max_length=400)] = Field(
        default=[],
        description="Local dates closed all day (a night range of the day before stops at "
        "midnight).",
    )
    pickup_minutes: (
        Annotated[int, Field(ge=PICKUP_TARGET_MINUTES.min, le=PICKUP_TARGET_MINUTES.max)] | None
    ) = Field(
        default=None,
        description="Pickup target: a ticket still queued this long after it was queued is "
        "announced once and `on_no_pickup` applies (R18); null: no target.",
    )
    on_no_pickup: NoPickup = Field(
        default="wait",
        description="`wait`: only the announcement; `notify`: the user is told again; "
        "`back_to_ai`: the AI takes the user back and the ticket closes.",
    )

    def opening_hours(self) -> OpeningHours:
        hours = None if self.hours is None else {str(d): r for d, r in self.hours.items()}
        return OpeningHours.of(self.timezone, hours, [d.isoformat() for d in self.closed_dates])


def pickup_due_ms(
    settings: QueueSettings, now_ms: int, hours_now_ms: int, minute_ms: int
) -> int | None:
    """R18: when a ticket queued now is overdue. The target counts opening time only: a
    ticket queued while the queue is closed starts counting when it opens (nobody is there
    to pick it up before, and the user was told when the team is back). None: no target,
    or a queue that never opens again. `hours_now_ms` is the clock the hours are read on."""
    if not settings.pickup_minutes:
        return None
    hours = settings.opening_hours()
    closed_for = 0
    if not hours.is_open(hours_now_ms):
        opens = hours.next_opening_ms(hours_now_ms)
        if opens is None:
            return None
        closed_for = opens - hours_now_ms
    return now_ms + closed_for + settings.pickup_minutes * minute_ms


def valid_queue_id(queue: str) -> bool:
    return re.match(ID_PATTERN, queue) is not None


def queues_of(listed: tuple[str, ...]) -> tuple[str, ...]:
    """The queues an agent version may hand to, first = default (none listed: `default`)."""
    return listed or (DEFAULT_QUEUE,)


@dataclass(frozen=True)
class QueueChoice:
    queue: str
    settings: QueueSettings


# Tickets -------------------------------------------------------------------------------------


def ticket_id_for(ikey: str, *parts: object) -> str:
    """A ticket id that names its shard (`tk{shard}-{hex}`), so the API finds the ticket's
    hash in one step without a cross-slot index; stable for the same parts (replays)."""
    name = "\x1f".join([ikey, *(str(p) for p in parts)])
    digest = uuid.uuid5(uuid.UUID("0b4b1f0e-5d6c-4a51-8f57-7469636b6574"), name).hex
    return f"tk{shard_of(ikey)}-{digest}"


def shard_of_ticket(ticket_id: str) -> int | None:
    match = TICKET_ID.match(ticket_id)
    if not match or int(match.group(1)) >= SHARDS:
        return None
    return int(match.group(1))


@dataclass(frozen=True)
class Ticket:
    """One ticket as stored in its hash (`ho:ticket:{hN}:{ticket_id}`)."""

    ticket_id: str
    ikey: str
    tenant_id: str
    queue: str
    status: Status
    version: int
    created_at_ms: int  # the handoff: orders the queue, so a transfer or release keeps one's place
    queued_at_ms: int  # when it last became queued: pickup wait and target count from here
    reason: str = ""
    cause: str = ""
    assignee: str | None = None
    assignee_name: str | None = None
    assigned_at_ms: int | None = None
    ended_at_ms: int | None = None
    resolution_note: str | None = None
    pickup_overdue: bool = False
    notified_position: int | None = None
    notified_at_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @classmethod
    def from_redis(cls, raw: dict[str, str]) -> Ticket | None:
        if not raw.get("ticket_id"):
            return None

        def opt_int(name: str) -> int | None:
            value = raw.get(name, "")
            return int(value) if value else None

        status = raw.get("status", "closed")
        return cls(
            ticket_id=raw["ticket_id"],
            ikey=raw["ikey"],
            tenant_id=raw["tenant_id"],
            queue=raw["queue"],
            status=status if status in ("queued", "assigned", "resolved") else "closed",  # type: ignore[arg-type]
            version=int(raw.get("version") or 0),
            created_at_ms=int(raw["created_at"]),
            queued_at_ms=int(raw.get("queued_at") or raw["created_at"]),
            reason=raw.get("reason", ""),
            cause=raw.get("cause", ""),
            assignee=raw.get("assignee") or None,
            assignee_name=raw.get("assignee_name") or None,
            assigned_at_ms=opt_int("assigned_at"),
            ended_at_ms=opt_int("ended_at"),
            resolution_note=raw.get("resolution_note") or None,
            pickup_overdue=raw.get("pickup_overdue") == "1",
            notified_position=opt_int("notified_position"),
            notified_at_ms=opt_int("notified_at"),
        )

    def to_redis(self) -> dict[str, str]:
        def s(value: object) -> str:
            return "" if value is None else str(value)

        return {
            "ticket_id": self.ticket_id,
            "ikey": self.ikey,
            "tenant_id": self.tenant_id,
            "queue": self.queue,
            "status": self.status,
            "version": str(self.version),
            "created_at": str(self.created_at_ms),
            "queued_at": str(self.queued_at_ms),
            "reason": self.reason,
            "cause": self.cause,
            "assignee": s(self.assignee),
            "assignee_name": s(self.assignee_name),
            "assigned_at": s(self.assigned_at_ms),
            "ended_at": s(self.ended_at_ms),
            "resolution_note": s(self.resolution_note),
            "pickup_overdue": "1" if self.pickup_overdue else "",
            "notified_position": s(self.notified_position),
            "notified_at": s(self.notified_at_ms),
        }

    def to_new_redis(self) -> dict[str, str]:
        """The hash of a ticket written whole (opened, or restored by a rebuild): the fields
        with a value only, as a missing field reads as empty (`from_redis`); ~90 B less
        (bench/memory.py). A step writes what it changed, an emptied field as ''."""
        return {k: v for k, v in self.to_redis().items() if v}


@dataclass(frozen=True)
class Refusal:
    """Why a ticket action cannot happen: an HTTP status and a stable code."""

    status: int
    code: str
    detail: str


@dataclass(frozen=True)
class TicketStep:
    """A ticket action's outcome: the ticket after it, and what its TicketChanged says."""

    before: Ticket
    after: Ticket
    note: str | None = None

    @property
    def picked_up(self) -> bool:
        """A queued ticket got an owner: a pickup, whose wait feeds the ETA (R16)."""
        return self.before.status == "queued" and self.after.status == "assigned"


Action = Literal["claim", "assign", "transfer", "release", "resolve"]


def _closed(ticket: Ticket) -> Refusal:
    return Refusal(409, "ticket_closed", f"The ticket is {ticket.status}; nothing can change it.")


def _queued_again(ticket: Ticket, now_ms: int) -> Ticket:
    """Back in line with nobody on it (a transfer or a release): the pickup clock restarts."""
    return replace(
        ticket,
        status="queued",
        assignee=None,
        assignee_name=None,
        assigned_at_ms=None,
        queued_at_ms=now_ms,
        pickup_overdue=False,
    )


def plan_action(
    ticket: Ticket,
    action: Action,
    actor: str,
    now_ms: int,
    *,
    assignee: str | None = None,
    display_name: str | None = None,
    queue: str | None = None,
    note: str | None = None,
    expected_version: int | None = None,
) -> TicketStep | Refusal:
    """R15: the one rule of each ticket action. `assignee` is the teammate who gets the
    ticket (the caller's `sub` for a claim)."""
    if expected_version is not None and expected_version != ticket.version:
        return Refusal(
            409,
            "version_conflict",
            f"The ticket is at version {ticket.version}, not {expected_version}.",
        )
    if not ticket.open:
        return _closed(ticket)
    bumped = replace(ticket, version=ticket.version + 1)
    if action in ("claim", "assign"):
        if ticket.status == "assigned" and (action == "claim" or ticket.assignee == assignee):
            return Refusal(
                409, "already_assigned", f"The ticket is assigned to {ticket.assignee} already."
            )
        after = replace(
            bumped,
            status="assigned",
            assignee=assignee,
            assignee_name=display_name or assignee,
            assigned_at_ms=now_ms,
        )
        return TicketStep(ticket, after)
    if action == "transfer":
        assert queue is not None
        if queue == ticket.queue and ticket.status == "queued":
            return Refusal(409, "same_queue", f"The ticket is queued in {queue} already.")
        # Another queue: a new place in line, so its position is told afresh (R16).
        after = replace(
            _queued_again(bumped, now_ms), queue=queue, notified_position=None, notified_at_ms=None
        )
        return TicketStep(ticket, after, note or "transferred")
    if action == "release":
        if ticket.status != "assigned":
            return Refusal(409, "not_assigned", "The ticket has no assignee to release.")
        return TicketStep(ticket, _queued_again(bumped, now_ms), note or "released")
    # resolve
    after = replace(bumped, status="resolved", ended_at_ms=now_ms, resolution_note=note or None)
    return TicketStep(ticket, after, note or None)


def new_ticket(
    ticket_id: str,
    ikey: str,
    tenant_id: str,
    queue: str,
    now_ms: int,
    reason: str,
    cause: str,
) -> Ticket:
    return Ticket(
        ticket_id=ticket_id,
        ikey=ikey,
        tenant_id=tenant_id,
        queue=queue,
        status="queued",
        version=1,
        created_at_ms=now_ms,
        queued_at_ms=now_ms,
        reason=reason,
        cause=cause,
    )


# Waiting (R16) -------------------------------------------------------------------------------


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile (q in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def eta_minutes(
    pickup_waits_ms: list[int], position: int, teammates_online: int, minute_ms: int
) -> int | None:
    """The honest ETA of a queued ticket, in minutes, or None ("no estimate yet").

    The median pickup wait of the queue's recent pickups (the last hour's) is what a user at
    the head of the line waited; a user at `position` waits for `position` pickups, shared by
    the teammates online: median x position / max(1, teammates), rounded up, at least 1.
    With fewer than ETA_MIN_PICKUPS pickups there is nothing honest to say."""
    if len(pickup_waits_ms) < ETA_MIN_PICKUPS:
        return None
    median = statistics.median(pickup_waits_ms)
    return max(1, math.ceil(median * position / max(1, teammates_online) / minute_ms))


@dataclass(frozen=True)
class Waiting:
    position: int
    eta_minutes: int | None
    opens_at: str | None  # the next opening, described; None while the queue is open


PLACEHOLDERS = ("position", "eta_minutes", "opens_at", "teammate")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def render(template: str, values: dict[str, object | None]) -> str | None:
    """The template with its placeholders filled in (any other text, braces included, stays
    as written), or None when it needs a value that is unknown: then the caller says it with
    the built-in text instead of printing a made-up or empty value."""
    needed = set(_PLACEHOLDER.findall(template))
    if any(values.get(name) is None for name in needed):
        return None
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def waiting_line(waiting: Waiting, template: str = "") -> str:
    """The waiting part of a notice: the version's `waiting_notice_text` if it can be filled,
    else the built-in sentence."""
    if template:
        filled = render(
            template,
            {
                "position": waiting.position,
                "eta_minutes": waiting.eta_minutes,
                "opens_at": waiting.opens_at,
            },
        )
        if filled is not None:
            return filled
    place = f"You're number {waiting.position} in line."
    if waiting.opens_at is not None:
        return f"Our team is away right now and back {waiting.opens_at}. {place}"
    if waiting.eta_minutes is None:
        return f"{place} We don't have a wait estimate yet."
    unit = "minute" if waiting.eta_minutes == 1 else "minutes"
    return f"{place} The expected wait is about {waiting.eta_minutes} {unit}."


def away_text(opens_at: str | None) -> str:
    """R17 `stay_with_ai`: what the user is told when no person can take over now."""
    if opens_at is None:
        return "Our team isn't available right now, so I'll keep helping you here."
    return (
        f"Our team isn't available right now; people are back {opens_at}. "
        "Until then I'll keep helping you here."
    )


def teammate_text(name: str) -> str:
    """R15 `announce_teammate`: the user learns who took the conversation."""
    return f"{name} from our team has joined the conversation."


def still_waiting_text(position: int | None) -> str:
    """R18 `notify`: the pickup target passed and nobody is free yet."""
    place = f" You're still number {position} in line." if position else ""
    return f"Thanks for waiting, everyone on our team is still busy.{place} We'll be with you soon."


def no_pickup_reason(minutes: int) -> str:
    return f"No teammate picked up within {minutes} minutes."


def plan_queue(
    command: HandoffCommand,
    published: AgentVersion,
    queues: dict[str, QueueSettings],
    hours_now_ms: int,
) -> QueueChoice | Rejection:
    """R14 and R17: the queue an accepted to_human puts its ticket in, or why it cannot.

    The command's queue must be one the published version lists; none named: the version's
    first. Unconfigured queues have the default settings (always open). Out of hours with
    `out_of_hours: stay_with_ai`, an agent's handoff is refused and the AI keeps the user; an
    operator's switch is a person's decision and always goes through."""
    listed = queues_of(published.handoff.queues)
    if command.queue is not None and command.queue not in listed:
        return Rejection(
            "unknown_queue",
            f"Queue {command.queue!r} is not one of version {published.version}'s queues: "
            f"{', '.join(listed)}.",
        )
    queue = command.queue or listed[0]
    settings = queues.get(queue, QueueSettings())
    hours = settings.opening_hours()
    if (
        command.source == "agent"
        and published.handoff.out_of_hours == "stay_with_ai"
        and not hours.is_open(hours_now_ms)
    ):
        next_ms = hours.next_opening_ms(hours_now_ms)
        opens_at = hours.describe(next_ms) if next_ms is not None else None
        return Rejection(
            "out_of_hours",
            f"Queue {queue!r} is closed"
            + (f" until {opens_at}." if opens_at else " with no opening ahead."),
            notice=away_text(opens_at),
        )
    return QueueChoice(queue, settings)
