"""The timeout worker's ticket sweeps: pickup targets (R18) and better places in line (R16).

Both run on the shards the worker owns (the same consumer-group split as the idle timeout),
decide in Python, and write through one version-checked function call whose records go to
the shard's outbox, which the worker then publishes exactly once (worker.py). So a second
worker, a restart, or a SIGKILL between the write and the publish neither repeats nor loses
an announcement: the function refuses a ticket that changed or was already fired, and the
outbox entry waits for whoever owns the shard next.

- Pickup: each shard keeps a deadline index of queued tickets with a pickup target
  (`ho:pickup:{hN}`). A due ticket is announced (TicketChanged queued -> queued, note
  `pickup_overdue`) and its queue's `on_no_pickup` applies: `notify` sends the user a system
  message, `back_to_ai` returns the interaction to the AI (cause `timeout`) and closes the
  ticket, in the same step.
- Waiting: every `waiting_sweep_ms`, the queued tickets of the owned shards are placed in
  their queues; a user whose place improved since their last notice (the handoff notice
  counts), and who was told nothing for a minute, gets a system message with the new place
  and ETA. The sweep also re-adds open tickets to their queue's index (cheap, idempotent),
  which repairs an index write lost to a crash.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from schemas import OutboundMessage, ids_of, parse_interaction_key
from services.common import metrics
from services.common.ids import derived_id
from services.handoff.domain.events import ticket_changed
from services.handoff.domain.modes import PICKUP_ACTOR, at_ms
from services.handoff.domain.tickets import (
    QueueSettings,
    Ticket,
    Waiting,
    no_pickup_reason,
    still_waiting_text,
    waiting_line,
)
from services.handoff.service.waiting import QueueStatus, queue_status
from services.handoff.state.keys import outbox_key, shard_tag
from services.handoff.state.store import ModeStore
from services.handoff.state.ticket_store import Outputs
from services.timeout.settings import TimeoutSettings

log = structlog.get_logger()
# Open tickets per shard the waiting sweep places each time (oldest handoff first): with 64
# shards, 32,000 waiting users are told of a better place; those further back are not.
WAITING_PER_SHARD = 500


class TicketSweeps:
    def __init__(self, store: ModeStore, settings: TimeoutSettings) -> None:
        self._store = store
        self._settings = settings
        self._next_waiting_ms = 0

    async def sweep(self, shards: list[int], limit: int) -> int:
        """Runs what is due in these shards; returns how many steps it wrote."""
        if not shards:
            return 0
        now = await self._store.redis_now_ms(outbox_key(shard_tag(shards[0])))
        written = await self._pickups(shards, now, limit)
        if now >= self._next_waiting_ms:
            self._next_waiting_ms = now + self._settings.waiting_sweep_ms
            written += await self._waiting(shards, now, WAITING_PER_SHARD)
        return written

    async def _status(
        self, cache: dict[tuple[str, str], QueueStatus], ticket: Ticket, now: int
    ) -> QueueStatus:
        k = (ticket.tenant_id, ticket.queue)
        if k not in cache:
            s = self._settings
            cache[k] = await queue_status(
                self._store, k[0], k[1], now, s.minute_ms, s.teammate_online_ms
            )
        return cache[k]

    async def _settings_of(self, ticket: Ticket) -> QueueSettings:
        record = await self._store.queue(ticket.tenant_id, ticket.queue)
        return record.settings if record else QueueSettings()

    async def _message(self, ticket: Ticket, kind: str, text: str, now: int) -> OutboundMessage:
        turns = await self._store.transcript(ticket.ikey, 20)
        conversation = next(
            (c for c in (t.get("conversation_id") for t in reversed(turns)) if c), None
        )
        return OutboundMessage(
            **ids_of(parse_interaction_key(ticket.ikey)),
            event_id=derived_id(kind, ticket.ticket_id, ticket.version, now),
            conversation_id=conversation,
            sender="system",
            text=text,
            sent_at=at_ms(now),
        )

    async def _pickups(self, shards: list[int], now: int, limit: int) -> int:
        fired = 0
        cache: dict[tuple[str, str], QueueStatus] = {}
        for ticket in await self._store.due_pickups(shards, now, limit):
            if ticket.status != "queued" or ticket.pickup_overdue:
                continue  # the function drops the stale deadline
            settings = await self._settings_of(ticket)
            position = (await self._status(cache, ticket, now)).positions.get(ticket.ticket_id)
            after = replace(ticket, version=ticket.version + 1, pickup_overdue=True)
            change = ticket_changed(
                ticket, after, PICKUP_ACTOR, "pickup_overdue", now, position
            ).model_dump_json()
            outputs: Outputs = [("events", ticket.ikey, change)]
            if settings.on_no_pickup == "notify":
                message = await self._message(
                    after, "still_waiting", still_waiting_text(position), now
                )
                outputs.append(("outbound", ticket.ikey, message.model_dump_json()))
            minutes = settings.pickup_minutes or max(
                1, round((now - ticket.queued_at_ms) / self._settings.minute_ms)
            )
            result = await self._store.fire_pickup(
                ticket,
                {"pickup_overdue": "1", "version": str(after.version)},
                change,
                outputs,
                settings.on_no_pickup == "back_to_ai",
                no_pickup_reason(minutes),
            )
            if result == "fired":
                fired += 1
                metrics.PICKUP_OVERDUE.labels(tenant=ticket.tenant_id, queue=ticket.queue).inc()
                log.info(
                    "pickup_overdue",
                    ticket_id=ticket.ticket_id,
                    queue=ticket.queue,
                    policy=settings.on_no_pickup,
                )
        return fired

    async def _waiting(self, shards: list[int], now: int, limit: int) -> int:
        sent = 0
        cache: dict[tuple[str, str], QueueStatus] = {}
        tickets = await self._store.shard_open_tickets(shards, limit)
        await self._store.index_tickets(tickets)  # repair: every open ticket in its queue's index
        for ticket in tickets:
            if ticket.status != "queued":
                continue
            status = await self._status(cache, ticket, now)
            position = status.positions.get(ticket.ticket_id)
            last = ticket.notified_position
            if position is None or (last is not None and position >= last):
                continue
            if ticket.notified_at_ms and now < ticket.notified_at_ms + self._settings.minute_ms:
                continue
            text = waiting_line(
                Waiting(position, status.eta_minutes(position), None),
                await self._template(ticket),
            )
            message = await self._message(ticket, "waiting", text, now)
            outputs: Outputs = [("outbound", ticket.ikey, message.model_dump_json())]
            if await self._store.notify_position(
                ticket, position, self._settings.minute_ms, outputs
            ):
                sent += 1
                metrics.WAITING_NOTICES.inc()
        return sent

    async def _template(self, ticket: Ticket) -> str:
        ids = parse_interaction_key(ticket.ikey)
        versions, published = await self._store.agent_versions(ids.tenant_id, ids.agent_id)
        live = next((v for v in versions if v.version == published), None)
        return live.handoff.waiting_notice_text if live else ""
