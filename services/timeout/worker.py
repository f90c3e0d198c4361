"""Sweeps due deadlines and publishes each shard's outbox on Kafka exactly once: the timeout
reverts, and every record queued by a change made outside a Kafka consumer (the operator API's
switches, desk replies, agent versions and their audit records).

It also runs the ticket sweeps (pickup targets, better places in line: tickets.py), whose
records go through the same outboxes, as do the ticket actions of the operator API.

The revert itself happens in Redis, atomically with claiming the deadline (ho_expire_due) or
at routing time (ho_route): the router never waits for this worker. Each revert's records
(ModeChanged, return notice, ticket change, built in that step) are queued in its shard's
outbox under an increasing, time-based number n (never reused, even when Redis lost its data:
a reset counter would fall under the checkpoint); the reverts of one sweep step share
entries. The worker publishes outbox
entries in a Kafka transaction that also commits "shard s is published up to n" as the
consumer-group offset of partition s of the internal topic handoff.timeout-shards. A crash
before the commit aborts the events and the checkpoint together; whoever owns the shard next
starts from the checkpoint. So each revert is emitted once, also across crashes.

Claiming and publishing overlap: while the worker publishes what the outboxes hold, Redis
reverts what is due next (its claims run concurrently with the transaction), so a mass
expiry costs the larger of the two per revert rather than their sum.

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

from services.common import metrics
from services.common.kafka import GroupConsumer, GroupMetadata, KafkaWriter, Output, fatal
from services.common.tracing import NO_HEADERS, headers_of
from services.handoff.domain.events import mode_changed
from services.handoff.state.outbox import OutboxEntry, TimeoutStore
from services.timeout.settings import TimeoutSettings
from services.timeout.tickets import TicketSweeps

log = structlog.get_logger()


def within_budget(entries: list[OutboxEntry], per_shard: int) -> list[OutboxEntry]:
    """The first entries of each shard (`entries` are in order within a shard) that weigh at
    most `per_shard` together, and at least its first: an entry is published whole, and one of
    many reverts weighs as much as that many entries."""
    weights: dict[int, int] = {}
    full: set[int] = set()
    taken = []
    for e in entries:
        if e.shard in full:
            continue
        weight = weights.get(e.shard, 0) + e.weight
        if weight > per_shard and e.shard in weights:
            full.add(e.shard)
            continue
        weights[e.shard] = weight
        taken.append(e)
    return taken


class TimeoutWorker:
    def __init__(self, store: TimeoutStore, settings: TimeoutSettings) -> None:
        self._store = store
        self._settings = settings
        self._checkpoints: dict[int, int] = {}  # shard -> last published outbox number
        self._topics = settings.topics
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
        """Publishes what the owned shards' outboxes hold while Redis reverts what is due in
        them (and runs the ticket sweeps), whose records the next sweep publishes; returns how
        many entries it published and steps it wrote (0: nothing left to do).
        `group`: the membership the shards are owned under (the last poll's)."""
        s = self._settings
        shards = self._owned()
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k in shards}
        per_shard = -(-s.timeout_batch // max(1, len(shards)))  # ceiling division
        claim = asyncio.ensure_future(self._claim(shards, per_shard))
        try:
            published = await self._relay(shards, per_shard, group)
        finally:
            # Also when publishing failed: each claim is whole in Redis, its records wait in
            # the outbox for whoever publishes the shard next.
            written = await claim
        return published + written

    async def _claim(self, shards: list[int], per_shard: int) -> int:
        reverted = await self._store.expire_due(shards, per_shard)
        return reverted + await self._tickets.sweep(shards, per_shard)

    async def _relay(self, shards: list[int], per_shard: int, group: GroupMetadata) -> int:
        """Publishes each shard's next entries, up to `per_shard` reverts (or entries)."""
        after = await self._read_checkpoints(shards)
        entries = within_budget(await self._store.read_outboxes(after, per_shard), per_shard)
        if not entries:
            return 0
        await self._publish(entries, group)
        upto = {e.shard: e.seq for e in entries}  # entries are in order within a shard
        self._checkpoints.update(upto)
        await self._store.trim_outbox(upto)
        self._observe(entries)
        return len(entries)

    def _outputs(self, entry: OutboxEntry) -> list[Output]:
        topics = self._topics
        queued = [
            Output(
                topics.for_role(r), key, value.encode(), headers_of(trace) if trace else NO_HEADERS
            )
            for (r, key, value), trace in zip(entry.outputs, entry.traces, strict=True)
        ]
        if entry.legacy_change is not None:  # its ModeChanged was left to the relay
            event = mode_changed(entry.legacy_change, self._settings.minute_ms)
            return [Output.of(topics.events, entry.legacy_change["ikey"], event), *queued]
        return queued

    async def _publish(self, entries: list[OutboxEntry], group: GroupMetadata) -> None:
        topic = self._settings.topics.timeout_shards
        outputs = [output for e in entries for output in self._outputs(e)]
        offsets = {(topic, e.shard): e.seq for e in entries}
        await self._producer.transaction(outputs, offsets, group)

    def _observe(self, entries: list[OutboxEntry]) -> None:
        reverts = [r for e in entries for r in e.reverts]
        if not reverts:
            return
        now = time.time()
        lags = [now - r.due_at_ms / 1000 for r in reverts if r.due_at_ms]
        metrics.MODE_CHANGES.labels(cause="timeout").inc(len(reverts))
        for lag in lags:
            metrics.TIMEOUT_REVERT_LAG.observe(max(0.0, lag))
        for r in reverts:  # one line per revert only when debugging: a sweep can be huge
            log.debug(
                "timeout_revert_emitted",
                interaction=r.ikey,
                event_id=r.event_id,
                state_version=r.version,
            )
        log.info(
            "timeout_reverts_emitted", count=len(reverts), max_lag_s=round(max(lags, default=0), 3)
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
