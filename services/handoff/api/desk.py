"""The desk's live feed: chat.human-queue and handoff.events, fanned out per tenant.

Every handoff instance runs one plain aiokafka consumer without a group (group_id=None:
each instance sees every partition), read_committed, starting at the end: the desk shows
what happens from now on, and the open-ticket index in Redis (`ModeStore.desk_ticket_opened`)
gives a desk that connects later the tickets opened before. Each connected desk (an SSE
stream, see routes.py) has a bounded queue; a desk too slow to drain it is disconnected
rather than allowed to hold memory, and its page reconnects and reloads.

Events sent to desks (SSE `event:` name, JSON `data:`):
- `ticket`: a HandoffTicket (reason, transcript);
- `message`: a user message routed in human mode, attachments included;
- `mode`: a ModeChanged (e.g. back to AI by an operator or the idle timeout);
- `activity`: an OperatorAction of the tenant (e.g. another desk replied: reload the turns);
- `ticket_changed`: a TicketChanged (R15: claimed, assigned, transferred, released, resolved,
  closed, pickup overdue): the queue views refresh from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError

from schemas import (
    HandoffTicket,
    ModeChanged,
    OperatorAction,
    RoutedMessage,
    TicketChanged,
    interaction_key,
)
from services.common import tracing
from services.common.kafka_options import aiokafka_options
from services.handoff.settings import HandoffSettings
from services.handoff.state.store import ModeStore

log = structlog.get_logger()

DESK_CLIENTS = Gauge("handoff_desk_clients", "Desk streams connected to this instance.")
_MODELS: dict[str, type[BaseModel]] = {
    "handoff_ticket": HandoffTicket,
    "routed_message": RoutedMessage,
    "mode_changed": ModeChanged,
    "operator_action": OperatorAction,
    "ticket_changed": TicketChanged,
}


@dataclass(eq=False)
class DeskClient:
    tenant: str
    queue: asyncio.Queue[str | None]
    dropped: bool = field(default=False)


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def desk_event(value: bytes | None) -> tuple[str, str, BaseModel] | None:
    """(tenant, SSE event name, model) of a record a desk cares about, else None."""
    try:
        data = json.loads(value or b"")
        model = _MODELS.get(str(data.get("type"))) if isinstance(data, dict) else None
        item = model.model_validate(data) if model else None
    except (ValueError, ValidationError):
        return None  # not ours to dead-letter: the desk only watches
    if isinstance(item, HandoffTicket):
        return item.tenant_id, "ticket", item
    if isinstance(item, RoutedMessage) and item.routing.mode == "human":
        return item.message.tenant_id, "message", item
    if isinstance(item, ModeChanged):
        return item.tenant_id, "mode", item
    if isinstance(item, OperatorAction):
        return item.tenant_id, "activity", item
    if isinstance(item, TicketChanged):
        return item.tenant_id, "ticket_changed", item
    return None


class DeskFeed:
    """A worker of the handoff service (see services/common/service.py)."""

    def __init__(self, settings: HandoffSettings, store: ModeStore) -> None:
        self._settings = settings
        self._store = store
        self._consumer: AIOKafkaConsumer | None = None
        self._clients: dict[str, set[DeskClient]] = {}
        self.healthy = False

    # Clients -------------------------------------------------------------------------------

    def connect(self, tenant: str) -> DeskClient:
        client = DeskClient(tenant, asyncio.Queue(self._settings.desk_client_buffer))
        self._clients.setdefault(tenant, set()).add(client)
        DESK_CLIENTS.inc()
        return client

    def disconnect(self, client: DeskClient) -> None:
        clients = self._clients.get(client.tenant, set())
        if client in clients:
            clients.discard(client)
            DESK_CLIENTS.dec()
        if not clients:
            self._clients.pop(client.tenant, None)

    def publish(self, tenant: str, message: str) -> None:
        for client in list(self._clients.get(tenant, ())):
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("desk_client_too_slow", tenant=tenant)
                client.dropped = True
                self.disconnect(client)

    # Worker --------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self._settings
        topics = {s.topics.human_queue, s.topics.events}
        self._consumer = AIOKafkaConsumer(
            *sorted(topics),
            **aiokafka_options(s),
            group_id=None,  # every instance reads every partition; nothing is committed
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            fetch_max_wait_ms=s.consumer_poll_ms,
        )
        await self._consumer.start()
        # Without a group, every partition of the topics is assigned once the metadata is in.
        deadline = time.monotonic() + 30
        while {tp.topic for tp in self._consumer.assignment()} != topics:
            if time.monotonic() > deadline:
                raise RuntimeError(f"desk feed: no partitions of {sorted(topics)} after 30 s")
            await asyncio.sleep(0.05)  # startup only: waiting for the metadata fetch
        partitions = sorted(self._consumer.assignment())
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now: nothing after start is missed
            await self._consumer.position(tp)
        self.healthy = True

    async def stop(self) -> None:
        self.healthy = False
        for clients in list(self._clients.values()):
            for client in list(clients):
                client.dropped = True  # ends its stream at the next heartbeat at the latest
                with contextlib.suppress(asyncio.QueueFull):
                    client.queue.put_nowait(None)
        if self._consumer is not None:
            await self._consumer.stop()

    async def run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=self._settings.consumer_poll_ms)
            for records in batches.values():
                for record in records:
                    await self._handle(record.value, record.headers)

    async def _handle(self, value: bytes | None, headers: tracing.RecordHeaders) -> None:
        found = desk_event(value)
        if found is None:
            return
        tenant, name, item = found
        if isinstance(item, HandoffTicket | RoutedMessage):
            await self._remember_trace(item, headers)
        if isinstance(item, HandoffTicket):
            opened_ms = int(item.created_at.timestamp() * 1000)
            try:
                await self._store.desk_ticket_opened(
                    tenant, interaction_key(item), opened_ms, self._settings.desk_max_tickets
                )
            except Exception:  # the live feed goes on; the index catches up on the next one
                log.exception("desk_index_failed", interaction=interaction_key(item))
        if tenant in self._clients:
            event_id = getattr(item, "event_id", None) or getattr(item, "ticket_id", None)
            if isinstance(item, RoutedMessage):
                event_id = item.message.event_id
            self.publish(tenant, sse(name, item.model_dump(mode="json"), event_id))

    async def _remember_trace(
        self, item: HandoffTicket | RoutedMessage, headers: tracing.RecordHeaders
    ) -> None:
        """A desk reply is a person's answer to what the desk was given last: its span is
        made a child of that record's trace context (service/desk_reply.py), kept here."""
        carrier = tracing.carrier_from(headers)
        if not carrier:
            return
        ikey = interaction_key(item.message if isinstance(item, RoutedMessage) else item)
        try:
            await self._store.remember_trace(ikey, carrier)
        except Exception:  # observability only: the feed goes on
            log.exception("desk_trace_failed", interaction=ikey)
