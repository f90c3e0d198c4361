"""The figures of R21 as a fold over the public events, without I/O.

Each record of `handoff.events` (ModeChanged, TicketChanged) or `chat.outbound` (a human's
OutboundMessage) moves one interaction's `Journey` (what is open: the handoff, its ticket)
and yields `Effect`s: a count or a sample in an hour bucket of a tenant's queue. The store
applies a record's effects and its new journey together, once (see store.py).

How each figure is computed (the README's "Analytics" section says the same to operators):
- a **handoff** is a ModeChanged to `human`, counted (by cause and by reason) in the hour of
  its `changed_at`, in the queue of the ticket it opened (the TicketChanged that creates it,
  `from_status` null);
- **pickup wait**: from the ticket's creation to its first `assigned`, in the hour and queue
  of that assignment;
- **time to first human reply**: from the handoff to the first `chat.outbound` record with
  `sender: "human"` after it, in the hour of the reply;
- **handle time**: from the ticket's first `assigned` to `resolved` or `closed`, in the hour
  and queue where it ended (tickets never assigned have none);
- a **return to AI** is a ModeChanged to `ai`, by cause, in the queue of the ticket it ends;
- a **bounce-back** is a handoff less than 24 h after the interaction's last return to AI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

HOUR_MS = 3_600_000
BOUNCE_BACK_MS = 24 * HOUR_MS
DEFAULT_QUEUE = "default"
# Human replies seen before the handoff they answer (the two topics are read side by side,
# not in one order): kept until that handoff is read, at most this many.
EARLY_REPLIES_KEPT = 20

CountKind = Literal["handoffs", "returns", "bounce_backs"]
SampleKind = Literal["pickup", "first_reply", "handle"]
SAMPLE_KINDS: tuple[SampleKind, ...] = ("pickup", "first_reply", "handle")


def hour_of(ms: int) -> int:
    """The start (epoch ms) of the hour bucket that holds `ms`."""
    return ms - ms % HOUR_MS


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass(frozen=True)
class Count:
    hour: int
    queue: str
    kind: CountKind
    sub: str = ""  # the cause, for handoffs and returns


@dataclass(frozen=True)
class Reason:
    hour: int
    queue: str
    reason: str


@dataclass(frozen=True)
class Sample:
    hour: int
    queue: str
    kind: SampleKind
    member: str  # what it measures (a ticket or handoff id): a sample is stored once
    seconds: float


Effect = Count | Reason | Sample


@dataclass(frozen=True)
class Journey:
    """What the analytics remember of one interaction between its records."""

    handoff_id: str | None = None  # the open handoff's ModeChanged event_id
    handoff_at: int | None = None
    cause: str = ""
    reason: str = ""
    counted: bool = False  # joined with its ticket and counted
    replied: bool = False  # its first human reply measured
    ticket_id: str | None = None
    created_at: int | None = None
    queue: str | None = None
    joined: bool = False  # the ticket belongs to a counted handoff
    assigned_at: int | None = None  # the ticket's first assignment
    returned_at: int | None = None  # the interaction's last return to AI
    early_replies: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class Step:
    journey: Journey
    effects: list[Effect]


# The records, reduced to what the fold reads --------------------------------------------------


@dataclass(frozen=True)
class ModeChange:
    event_id: str
    to_mode: str
    cause: str
    reason: str
    at: int


@dataclass(frozen=True)
class TicketChange:
    ticket_id: str
    queue: str
    from_status: str | None
    status: str
    at: int


@dataclass(frozen=True)
class HumanReply:
    at: int


Fact = ModeChange | TicketChange | HumanReply


def fold(journey: Journey, fact: Fact) -> Step:
    if isinstance(fact, ModeChange):
        return _mode(journey, fact)
    if isinstance(fact, TicketChange):
        return _ticket(journey, fact)
    return _reply(journey, fact)


def _mode(j: Journey, f: ModeChange) -> Step:
    if f.to_mode == "human":
        opened = replace(
            j,
            handoff_id=f.event_id,
            handoff_at=f.at,
            cause=f.cause,
            reason=f.reason,
            counted=False,
            replied=False,
        )
        if opened.ticket_id is not None and not opened.joined:
            return _join(opened)  # its ticket was read first
        return Step(opened, [])
    queue = j.queue or DEFAULT_QUEUE
    back = replace(
        j, handoff_id=None, handoff_at=None, counted=False, replied=False, returned_at=f.at
    )
    return Step(back, [Count(hour_of(f.at), queue, "returns", f.cause)])


def _ticket(j: Journey, f: TicketChange) -> Step:
    if f.from_status is None:  # created by a handoff
        opened = replace(
            j, ticket_id=f.ticket_id, created_at=f.at, queue=f.queue, joined=False, assigned_at=None
        )
        if opened.handoff_id is not None and not opened.counted:
            return _join(opened)
        return Step(opened, [])
    if j.ticket_id != f.ticket_id:  # its creation was never read (older than the data kept)
        j = replace(j, ticket_id=f.ticket_id, created_at=None, joined=True, assigned_at=None)
    j = replace(j, queue=f.queue)
    effects: list[Effect] = []
    if f.status == "assigned" and j.assigned_at is None:
        j = replace(j, assigned_at=f.at)
        if j.created_at is not None:
            wait = _seconds(f.at - j.created_at)
            effects.append(Sample(hour_of(f.at), f.queue, "pickup", f.ticket_id, wait))
    elif f.status in ("resolved", "closed"):
        if j.assigned_at is not None:
            handle = _seconds(f.at - j.assigned_at)
            effects.append(Sample(hour_of(f.at), f.queue, "handle", f.ticket_id, handle))
        j = replace(j, ticket_id=None, created_at=None, joined=False, assigned_at=None)
    return Step(j, effects)


def _join(j: Journey) -> Step:
    """The handoff and the ticket it opened are both known: count the handoff."""
    handoff_id, handoff_at = j.handoff_id, j.handoff_at
    assert handoff_id is not None and handoff_at is not None
    queue = j.queue or DEFAULT_QUEUE
    hour = hour_of(handoff_at)
    effects: list[Effect] = [Count(hour, queue, "handoffs", j.cause), Reason(hour, queue, j.reason)]
    if j.returned_at is not None and 0 <= handoff_at - j.returned_at < BOUNCE_BACK_MS:
        effects.append(Count(hour, queue, "bounce_backs"))
    later = [r for r in j.early_replies if r >= handoff_at]
    if later:
        first = min(later)
        seconds = _seconds(first - handoff_at)
        effects.append(Sample(hour_of(first), queue, "first_reply", handoff_id, seconds))
    j = replace(j, counted=True, joined=True, replied=bool(later), early_replies=())
    return Step(j, effects)


def _reply(j: Journey, f: HumanReply) -> Step:
    if j.counted and j.handoff_at is not None and j.handoff_id is not None:
        if j.replied or f.at < j.handoff_at:
            return Step(j, [])
        seconds = _seconds(f.at - j.handoff_at)
        queue = j.queue or DEFAULT_QUEUE
        sample = Sample(hour_of(f.at), queue, "first_reply", j.handoff_id, seconds)
        return Step(replace(j, replied=True), [sample])
    # No counted handoff yet: the reply may answer one not read yet; keep it for the join.
    kept = (*j.early_replies, f.at)[-EARLY_REPLIES_KEPT:]
    return Step(replace(j, early_replies=kept), [])


def _seconds(ms: int) -> float:
    return max(0, ms) / 1000


# Reading the figures back -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in (0, 1]): the smallest value with at least q of the
    values at or below it. None for no values: never a made-up figure."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def hours_between(start_ms: int, end_ms: int) -> list[int]:
    """The hour buckets that overlap [start_ms, end_ms)."""
    if end_ms <= start_ms:
        return []
    return list(range(hour_of(start_ms), end_ms, HOUR_MS))
