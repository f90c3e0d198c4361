"""Sweeps due deadlines and publishes the timeout reverts from the outbox.

The revert itself happens in Redis, atomically with the claim (ho_expire_due) or at routing
time (ho_route): the router never waits for this worker. The worker only turns each revert
into a ModeChanged on handoff.events: publish (acks=all, idempotent), then acknowledge it in
the outbox. A worker that dies in between leaves the entry pending, and another worker takes
it over after timeout_reclaim_idle_ms: the event is then published again, with the same
event_id, so consumers can drop the repeat.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from services.common import metrics
from services.common.kafka import Output, idempotent_producer, send_idempotent
from services.handoff.events import mode_changed
from services.handoff.store import ModeStore
from services.timeout.settings import TimeoutSettings

log = structlog.get_logger()


class TimeoutWorker:
    def __init__(self, store: ModeStore, settings: TimeoutSettings) -> None:
        self._store = store
        self._producer = idempotent_producer(settings)
        self._settings = settings
        self.healthy = False

    async def start(self) -> None:
        await self._producer.start()
        await self._store.ensure_outbox_groups()
        self.healthy = True

    async def stop(self) -> None:
        await self._producer.stop()

    async def sweep_once(self) -> int:
        """Reverts what is due, publishes what the outbox holds; returns how many it published."""
        s = self._settings
        await self._store.expire_due(s.timeout_batch)
        entries = await self._store.read_outbox(
            s.instance_id, s.timeout_batch, s.timeout_reclaim_idle_ms
        )
        if not entries:
            return 0
        events = [mode_changed(e.change, s.minute_ms) for e in entries]
        await send_idempotent(
            self._producer,
            [
                Output.of(s.topics.events, e.change["ikey"], ev)
                for e, ev in zip(entries, events, strict=True)
            ],
        )
        await self._store.ack_outbox(entries)
        now = time.time()
        for entry, event in zip(entries, events, strict=True):
            metrics.MODE_CHANGES.labels(cause="timeout").inc()
            if entry.change.get("due_at"):
                metrics.TIMEOUT_REVERT_LAG.observe(max(0.0, now - entry.change["due_at"] / 1000))
            log.info(
                "timeout_revert_emitted",
                interaction=entry.change["ikey"],
                event_id=event.event_id,
                state_version=event.state_version,
            )
        return len(entries)

    async def run(self) -> None:
        while True:
            try:
                published = await self.sweep_once()
                self.healthy = True
            except asyncio.CancelledError:
                raise
            except Exception:
                self.healthy, published = False, 0
                log.exception("sweep_failed")
            if not published:
                await asyncio.sleep(self._settings.timeout_tick_ms / 1000)  # the sweep period
