"""Where a queue stands (R16): positions, pickup statistics, teammates online, the ETA.

One reading of the queue serves the handoff notice, the waiting sweep and the operator API,
so the user and the operators see the same numbers. "The last hour" is 60 of the
deployment's minutes (HANDOFF_MINUTE_SECONDS); a teammate is online when seen within
HANDOFF_TEAMMATE_ONLINE_SECONDS (a ticket action, a desk stream open, a desk reply).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.handoff.domain.tickets import Ticket, eta_minutes, percentile
from services.handoff.state.ticket_store import TicketStore

HOUR_MINUTES = 60


def positions(tickets: list[Ticket]) -> dict[str, int]:
    """Ticket id -> place in line (1 = next) of the queued tickets, oldest handoff first."""
    queued = [t for t in tickets if t.status == "queued"]
    return {t.ticket_id: n for n, t in enumerate(queued, start=1)}


@dataclass(frozen=True)
class QueueStatus:
    tickets: list[Ticket]  # open, oldest handoff first
    positions: dict[str, int]
    pickup_waits_ms: list[int]  # the last hour's
    teammates_online: int
    minute_ms: int

    @property
    def waiting(self) -> int:
        return len(self.positions)

    @property
    def assigned(self) -> int:
        return sum(1 for t in self.tickets if t.status == "assigned")

    def oldest_wait_ms(self, now_ms: int) -> int | None:
        waits = [now_ms - t.created_at_ms for t in self.tickets if t.status == "queued"]
        return max(waits, default=None)

    def pickup_p50_ms(self) -> int | None:
        return percentile(self.pickup_waits_ms, 0.5)

    def pickup_p90_ms(self) -> int | None:
        return percentile(self.pickup_waits_ms, 0.9)

    def eta_minutes(self, position: int) -> int | None:
        return eta_minutes(self.pickup_waits_ms, position, self.teammates_online, self.minute_ms)


async def queue_status(
    store: TicketStore, tenant_id: str, queue: str, now_ms: int, minute_ms: int, online_ms: int
) -> QueueStatus:
    tickets = await store.queue_tickets(tenant_id, queue, now_ms)
    waits = await store.pickup_waits(tenant_id, queue, now_ms - HOUR_MINUTES * minute_ms)
    teammates = await store.teammates_online(tenant_id, now_ms - online_ms)
    return QueueStatus(tickets, positions(tickets), waits, teammates, minute_ms)


async def waiting_for_new_ticket(
    store: TicketStore, ticket: Ticket, now_ms: int, minute_ms: int, online_ms: int
) -> tuple[int, int | None]:
    """(position, ETA minutes or None) of a ticket about to be queued: behind every ticket
    queued in its queue now."""
    status = await queue_status(store, ticket.tenant_id, ticket.queue, now_ms, minute_ms, online_ms)
    ahead = sum(1 for tid in status.positions if tid != ticket.ticket_id)
    return ahead + 1, status.eta_minutes(ahead + 1)
