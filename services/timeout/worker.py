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
the shards, and a rebalance waits for the sweep in flight: the worker is on the same
librdkafka clients as the processors (services/common/kafka.py), whose consumer is polled
only between sweeps. The checkpoint is committed with the group metadata of that poll
(KIP-447): a worker frozen past its session timeout cannot publish a shard that moved.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from services.common import metrics, tracing
from services.common.kafka import GroupConsumer, GroupMetadata, KafkaWriter, Output, fatal
from services.handoff.domain.events import mode_changed
from services.handoff.state.store import ModeStore, OutboxEntry
from services.timeout.settings import TimeoutSettings
from services.timeout.tickets import TicketSweeps

log = structlog.get_logger()


class TimeoutWorker:
    def __init__(self, store: ModeStore, settings: TimeoutSettings) -> None:
        self._store = store
        self._settings = settings
        self._checkpoints: dict[int, int] = {}  # shard -> last published outbox number
        self._tickets = TicketSweeps(store, settings)
        self._producer = KafkaWriter(settings, "timeout", transactional=True)
        self._consumer = GroupConsumer(settings, "timeout", [settings.topics.timeout_shards])
        self.healthy = False

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()
        self.healthy = True

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._producer.stop()

    def _owned(self) -> list[int]:
        return sorted(partition for _, partition in self._consumer.assignment())

    async def _read_checkpoints(self, shards: list[int]) -> dict[int, int]:
        topic = self._settings.topics.timeout_shards
        unknown = [(topic, shard) for shard in shards if shard not in self._checkpoints]
        if unknown:
            for (_, shard), offset in (await self._consumer.committed(unknown)).items():
                self._checkpoints[shard] = offset or 0
        return {shard: self._checkpoints[shard] for shard in shards}

    async def sweep_once(self, group: GroupMetadata) -> int:
        """Reverts what is due in the owned shards and publishes their outboxes; returns
        how many reverts it published. `group`: the membership the shards are owned under
        (the last poll's)."""
        s = self._settings
        shards = self._owned()
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k in shards}
        per_shard = -(-s.timeout_batch // max(1, len(shards)))  # ceiling division
        await self._store.expire_due(shards, per_shard)
        await self._tickets.sweep(shards, per_shard)
        after = await self._read_checkpoints(shards)
        entries = await self._store.read_outboxes(after, per_shard)
        if not entries:
            return 0
        await self._publish(entries, group)
        upto = {e.shard: e.seq for e in entries}  # entries are in order within a shard
        self._checkpoints.update(upto)
        await self._store.trim_outbox(upto)
        self._observe(entries)
        return len(entries)

    def _outputs(self, entry: OutboxEntry) -> list[Output]:
        topics = self._settings.topics
        queued = [
            Output(topics.for_role(r), key, value.encode(), tracing.headers_of(trace))
            for (r, key, value), trace in zip(entry.outputs, entry.traces, strict=True)
        ]
        if entry.change is not None:  # a timeout revert, queued by handoff.lua (with its notice)
            event = mode_changed(entry.change, self._settings.minute_ms)
            return [Output.of(topics.events, entry.change["ikey"], event), *queued]
        return queued

    async def _publish(self, entries: list[OutboxEntry], group: GroupMetadata) -> None:
        topic = self._settings.topics.timeout_shards
        outputs = [output for e in entries for output in self._outputs(e)]
        offsets = {(topic, e.shard): e.seq for e in entries}
        await self._producer.transaction(outputs, offsets, group)

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
            # Polling the (empty) topic serves the rebalances (only here, between sweeps)
            # and paces the sweeps.
            group = (await self._consumer.poll(1, tick_ms / 1000)).group
            published = 1
            while published:  # drain: a backlog is swept without waiting for the next tick
                try:
                    published = await self.sweep_once(group)
                    self.healthy = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if fatal(exc):
                        raise  # e.g. fenced by a live instance with our transactional id
                    self.healthy, published = False, 0
                    # Re-read the checkpoints from Kafka: the last commit may have failed.
                    self._checkpoints.clear()
                    log.exception("sweep_failed")
