"""What the analytics read of a `TicketChanged` (ARCHITECTURE.md, "The human side"): the
contract's fields this reader needs, nothing of how the tickets are stored. Other fields
(actor, note, position, ...) are ignored, like any unknown field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.events import Actor, Event, EventId, Id, InteractionIds, Timestamp

TicketStatus = Literal["queued", "assigned", "resolved", "closed"]


class TicketChangedView(InteractionIds, Event):
    type: Literal["ticket_changed"] = "ticket_changed"
    event_id: EventId
    ticket_id: EventId
    queue: Id
    from_status: TicketStatus | None
    status: TicketStatus
    assignee: Actor | None = None
    changed_at: Timestamp
    ticket_version: Annotated[int, Field(ge=1)]
