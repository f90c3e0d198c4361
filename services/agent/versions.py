"""The agent learns its versions from the log: `agent_version_applied` (a version's `handoff`
block) and `agent_version_published` (which version is live) on handoff.events.

An edge consumer on aiokafka in a consumer group of its own (`handoff-agent-versions`) folds
them into the agent's own keys (services/agent/store.py) and commits its offsets after the
Redis write: a crash in between reads those records again, and folding them again changes
nothing (versions are immutable; a publish counts only when later in the log than the one in
force). handoff.events also carries every interaction's events (ModeChanged, tickets, ...),
keyed by the interaction key; the agents' records are keyed `{tenant_id}:{agent_id}`, the
only keys with one colon (ids cannot hold one), so the rest are skipped unread.

Catching up: at start the follower notes the end of every partition of the topic, and is
`caught_up` once the group has read them all (its own partitions by their position, those of
another instance of the agent by the offsets that instance committed, so after its Redis
write). Until then the agent does not consume chat.ai-requests and /readyz says not ready:
a fresh agent never answers "no version" only because it has not read the log yet.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from schemas import AgentVersionApplied, AgentVersionPublished, DeadLetter
from services.agent.domain import PublishedVersion
from services.agent.store import AgentStore, Applied, Fold, Published
from services.common.kafka import Record, dead_letter, decode
from services.common.kafka_options import aiokafka_options
from services.common.service import Worker
from services.common.settings import CommonSettings

log = structlog.get_logger()

GROUP = "agent-versions"  # the service name of the group: `{prefix}handoff-agent-versions`
APPLIED = b"agent_version_applied"  # only records holding these are parsed
PUBLISHED = b"agent_version_published"
CHECK_OTHERS_S = 1.0  # how often the offsets other instances committed are asked for
MAX_BACKOFF_S = 5.0


def fold_of(record: Record) -> Fold | None:
    """What an agent's record on handoff.events says, or None for any other record. A record
    that claims to be an agent's version and is not readable is logged and skipped: it is
    the handoff service's own output, kept in the log forever, and the agent cannot fix it."""
    if record.key is None or record.key.count(b":") != 1:
        return None  # an interaction's event
    value = record.value or b""
    if APPLIED in value:
        applied = decode(record, AgentVersionApplied)
        if isinstance(applied, DeadLetter):
            _unreadable(record, applied)
            return None
        try:
            version = PublishedVersion.of(applied.version, applied.handoff)
        except ValueError as exc:
            _unreadable(record, dead_letter(record, "schema_invalid", str(exc)))
            return None
        return Applied(applied.tenant_id, applied.agent_id, version)
    if PUBLISHED in value:
        published = decode(record, AgentVersionPublished)
        if isinstance(published, DeadLetter):
            _unreadable(record, published)
            return None
        tenant, agent = published.tenant_id, published.agent_id
        return Published(tenant, agent, published.version, record.offset)
    return None  # the agent's other records (audit records)


def _unreadable(record: Record, why: DeadLetter) -> None:
    if why.error.kind != "unknown_type":  # another record naming a version event's type
        log.warning(
            "agent_version_unreadable",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            kind=why.error.kind,
            detail=why.error.detail[:200],
        )


class VersionFollower:
    """Folds the agents' version records of handoff.events into the agent's store."""

    def __init__(self, settings: CommonSettings, store: AgentStore, poll_ms: int = 200) -> None:
        self.topic = settings.topics.events
        self._store = store
        self._poll_ms = poll_ms
        self._consumer = AIOKafkaConsumer(
            self.topic,
            **aiokafka_options(settings),
            group_id=settings.group_id(GROUP),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        self._targets: dict[TopicPartition, int] = {}  # the ends seen at start, not yet reached
        self._committed: dict[TopicPartition, int] = {}
        self._others_checked = 0.0
        self.caught_up = asyncio.Event()
        self.healthy = False  # caught up, and the last batch folded

    async def start(self, wait_s: float = 30.0) -> None:
        """Connects and notes the end offset of every partition of handoff.events."""
        await self._consumer.start()
        deadline = time.monotonic() + wait_s
        while not (partitions := self._consumer.partitions_for_topic(self.topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partitions of {self.topic} after {wait_s:.0f} s")
            await asyncio.sleep(0.05)  # startup only: the metadata fetch finds them
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        ends = await self._consumer.end_offsets(tps)
        self._targets = {tp: end for tp, end in ends.items() if end > 0}
        log.info("agent_versions_catching_up", records=sum(self._targets.values()))

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        backoff = 0.1
        while True:
            if not self.caught_up.is_set():
                await self._check_caught_up()
            batches = await self._consumer.getmany(timeout_ms=self._poll_ms, max_records=500)
            try:
                await self._store.fold(
                    [f for tp in sorted(batches) for r in batches[tp] if (f := fold_of(r))]
                )
                await self._commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.healthy = False
                log.exception("agent_versions_fold_failed", retry_in_s=backoff)
                for tp, records in batches.items():  # read them again
                    self._consumer.seek(tp, records[0].offset)
                await asyncio.sleep(backoff)  # backoff before the retry, not synchronisation
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.1
            self.healthy = self.caught_up.is_set()

    async def _positions(self) -> dict[TopicPartition, int]:
        """Where this instance has read (and folded) each partition it owns."""
        positions = {}
        for tp in self._consumer.assignment():
            try:
                positions[tp] = await self._consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
        return positions

    async def _commit(self) -> None:
        """Commits how far this instance folded (after the Redis write). Also a position
        moved only past transaction markers is committed, so that other instances see the
        partition caught up."""
        positions = await self._positions()
        offsets: dict[TopicPartition, int] = {
            tp: at for tp, at in positions.items() if self._committed.get(tp) != at
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:  # the group rebalanced: the new owner folds them again
            log.info("agent_versions_commit_skipped", reason="rebalanced")
            return
        self._committed.update(offsets)

    async def _check_caught_up(self) -> None:
        positions = await self._positions()
        for tp, end in list(self._targets.items()):
            if positions.get(tp, -1) >= end:
                del self._targets[tp]
        others = [tp for tp in self._targets if tp not in positions]
        if others and time.monotonic() - self._others_checked >= CHECK_OTHERS_S:
            self._others_checked = time.monotonic()
            for tp in others:  # owned by another instance: what it committed (after Redis)
                if (await self._consumer.committed(tp) or 0) >= self._targets[tp]:
                    del self._targets[tp]
        if not self._targets:
            self.caught_up.set()
            self.healthy = True
            log.info("agent_versions_caught_up")


class AfterCatchUp:
    """A worker that starts only once the agent has caught up with its versions, so it never
    consumes a message before it could know the version to answer it with. Until then it is
    not healthy (so /readyz is 503) and owns no partition of its topics."""

    def __init__(self, inner: Worker, versions: VersionFollower) -> None:
        self._inner = inner
        self._versions = versions
        self._started = False

    @property
    def healthy(self) -> bool:
        return self._started and self._inner.healthy

    async def start(self) -> None:
        pass  # in `run`, once caught up

    async def run(self) -> None:
        await self._versions.caught_up.wait()
        await self._inner.start()
        self._started = True
        await self._inner.run()

    async def stop(self) -> None:
        if self._started:
            await self._inner.stop()

    def stuck_partitions(self) -> list[dict[str, Any]]:
        stuck = getattr(self._inner, "stuck_partitions", None)
        return list(stuck()) if self._started and stuck is not None else []
