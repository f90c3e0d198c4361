"""Sweeps due deadlines and publishes each shard's outbox on Kafka exactly once: the timeout
reverts, and every record queued by a change made outside a Kafka consumer (the operator API's
switches, desk replies, agent versions and their audit records).

It also runs the ticket sweeps (pickup targets, better places in line: tickets.py), whose
records go through the same outboxes, as do the ticket actions of the operator API.

The revert itself happens in Redis, atomically with claiming the deadline (ho_expire_due) or
at routing time (ho_route): the router never waits for this worker. Each revert is queued in
its shard's outbox under an increasing, time-based number n (never reused, even when Redis
lost its data: a reset counter would fall under the checkpoint). The worker publishes outbox
entries in a Kafka transaction that also commits "shard s is published up to n" as the
consumer-group offset of partition s of the internal topic handoff.timeout-shards. A crash
before the commit aborts the events and the checkpoint together; whoever owns the shard next
starts from the checkpoint. So each revert is emitted once, also across crashes.

Which worker owns which shards is decided by Kafka: the workers form one consumer group on
handoff.timeout-shards (a topic that never holds a record), so the group's assignment splits
the shards, and a rebalance waits for the sweep in flight (the same listener as the
processors use).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition

from services.common import metrics
from services.common.kafka import (
    BROKER_MAX_MESSAGE_BYTES,
    Output,
    WaitForBatch,
    send_idempotent,
)
from services.handoff.events import mode_changed
from services.handoff.store import ModeStore, OutboxEntry
from services.timeout.settings import TimeoutSettings
from services.timeout.tickets import TicketSweeps

log = structlog.get_logger()


class TimeoutWorker:
    def __init__(self, store: ModeStore, settings: TimeoutSettings) -> None:
        self._store = store
        self._settings = settings
        self._group = settings.group_id("timeout")
        self._lock = asyncio.Lock()
        self._checkpoints: dict[int, int] = {}  # shard -> last published outbox number
        self._tickets = TicketSweeps(store, settings)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            transactional_id=settings.transactional_id("timeout"),
            transaction_timeout_ms=settings.transaction_timeout_ms,
            max_request_size=BROKER_MAX_MESSAGE_BYTES,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=self._group,
            group_instance_id=settings.transactional_id("timeout"),
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self.healthy = False

    async def start(self) -> None:
        await self._producer.start()
        self._consumer.subscribe(
            [self._settings.topics.timeout_shards], listener=WaitForBatch(self._lock)
        )
        await self._consumer.start()
        self.healthy = True

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._producer.stop()

    def _owned(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment())

    async def _checkpoint(self, shard: int) -> int:
        if shard not in self._checkpoints:
            tp = TopicPartition(self._settings.topics.timeout_shards, shard)
            self._checkpoints[shard] = (await self._consumer.committed(tp)) or 0
        return self._checkpoints[shard]

    async def sweep_once(self) -> int:
        """Reverts what is due in the owned shards and publishes their outboxes; returns
        how many reverts it published."""
        s = self._settings
        shards = self._owned()
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k in shards}
        per_shard = -(-s.timeout_batch // max(1, len(shards)))  # ceiling division
        await self._store.expire_due(shards, per_shard)
        await self._tickets.sweep(shards, per_shard)
        after = {shard: await self._checkpoint(shard) for shard in shards}
        entries = await self._store.read_outboxes(after, per_shard)
        if not entries:
            return 0
        await self._publish(entries)
        upto = {e.shard: e.seq for e in entries}  # entries are in order within a shard
        self._checkpoints.update(upto)
        await self._store.trim_outbox(upto)
        self._observe(entries)
        return len(entries)

    def _outputs(self, entry: OutboxEntry) -> list[Output]:
        topics = self._settings.topics
        queued = [
            Output(topics.for_role(r), key, value.encode()) for r, key, value in entry.outputs
        ]
        if entry.change is not None:  # a timeout revert, queued by handoff.lua (with its notice)
            event = mode_changed(entry.change, self._settings.minute_ms)
            return [Output.of(topics.events, entry.change["ikey"], event), *queued]
        return queued

    async def _publish(self, entries: list[OutboxEntry]) -> None:
        s = self._settings
        outputs = [output for e in entries for output in self._outputs(e)]
        offsets = {TopicPartition(s.topics.timeout_shards, e.shard): e.seq for e in entries}
        async with self._producer.transaction():
            await send_idempotent(self._producer, outputs)
            await self._producer.send_offsets_to_transaction(offsets, self._group)

    def _observe(self, entries: list[OutboxEntry]) -> None:
        changes = [e.change for e in entries if e.change is not None]  # the timeout reverts
        if not changes:
            return
        now = time.time()
        lags = [now - c["due_at"] / 1000 for c in changes if c.get("due_at")]
        metrics.MODE_CHANGES.labels(cause="timeout").inc(len(changes))
        for lag in lags:
            metrics.TIMEOUT_REVERT_LAG.observe(max(0.0, lag))
        for change in changes:  # one line per revert only when debugging: a sweep can be huge
            log.debug(
                "timeout_revert_emitted",
                interaction=change["ikey"],
                event_id=change["event_id"],
                state_version=change["version"],
            )
        log.info(
            "timeout_reverts_emitted", count=len(changes), max_lag_s=round(max(lags, default=0), 3)
        )

    async def run(self) -> None:
        tick_ms = self._settings.timeout_tick_ms
        while True:
            # Polling the (empty) topic keeps the group membership alive and paces the sweeps.
            await self._consumer.getmany(timeout_ms=tick_ms)
            published = 1
            while published:  # drain: a backlog is swept without waiting for the next tick
                async with self._lock:
                    try:
                        published = await self.sweep_once()
                        self.healthy = True
                    except (asyncio.CancelledError, ProducerFenced):
                        raise
                    except Exception:
                        self.healthy, published = False, 0
                        # Re-read the checkpoints from Kafka: the last commit may have failed.
                        self._checkpoints.clear()
                        log.exception("sweep_failed")
