"""Consume -> transform -> produce on Kafka, effectively once.

Why not a FastStream subscriber: FastStream has no Kafka transactions and its ack policies
(ACK_FIRST commits before the handler runs; reject() drops; nack() retries forever) cannot
tie "outputs written" to "input offsets committed". Here each polled batch is handled, then
its outputs and its input offsets go to Kafka in ONE transaction. A crash anywhere before the
commit aborts both, and the batch is handled again; handlers are replay-safe because the Redis
side stores each decision keyed by the input record (see services/handoff/lua/handoff.lua).

Choices made on purpose (aiokafka defaults differ):
- consumer: enable_auto_commit=False, isolation_level=read_committed, auto_offset_reset=earliest;
- producer: transactional (which implies enable_idempotence=True and acks=all);
- transactional_id = {prefix}handoff-{service}-{instance_id}: stable across restarts, so a
  restarted instance fences its predecessor and its open transaction is aborted at once;
- the same name is the consumer's group.instance.id (static membership): a restarted
  instance takes its partitions back at once, without waiting for a rebalance;
- producer max_request_size = Kafka's default broker message.max.bytes, and every dead letter
  is cut to fit under it, so that no output of ours is one the broker refuses.

No record stops a partition: a batch that fails for a reason that follows one of its records
(see `follows_record`) is split in halves, each handled and committed in its own transaction,
until the record is alone; it then becomes a `processing_failed` dead letter, committed with
its offset. A failure of the infrastructure (Redis or Kafka unreachable) retries the whole
rest of the batch, with backoff, as before: fail closed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import redis.exceptions
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.structs import TopicPartition
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, DeadLetterError
from services.common import metrics
from services.common.settings import CommonSettings

log = structlog.get_logger()

MAX_VALUE_BYTES = 1024 * 1024  # the largest input value handled; a larger one is `too_large`
# Kafka's default broker `message.max.bytes`: the largest record batch a broker accepts. The
# producers' max_request_size is this too (aiokafka checks each record's batch estimate).
BROKER_MAX_MESSAGE_BYTES = 1_048_588
# The largest key + value of one output of ours, leaving room for the batch and record headers.
MAX_OUTPUT_BYTES = BROKER_MAX_MESSAGE_BYTES - 1024
MAX_DEAD_LETTER_KEY_CHARS = 1024  # a longer source key is cut (the record keeps all of it)


class Record(Protocol):
    """What the handlers read of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Output:
    """One record to produce: handlers return these, the processor writes them."""

    topic: str
    key: str
    value: bytes

    @classmethod
    def of(cls, topic: str, key: str, event: BaseModel) -> Output:
        return cls(topic, key, event.model_dump_json().encode())


def dead_letter(record: Record, kind: str, detail: str) -> DeadLetter:
    """The DeadLetter of `record`, never larger than MAX_OUTPUT_BYTES as an output: `raw`
    keeps as many of the value's first bytes as fit (`raw_truncated` says when not all)."""
    value = record.value or b""
    key = None
    if record.key is not None:
        key = record.key.decode("utf-8", "replace")[:MAX_DEAD_LETTER_KEY_CHARS]
    letter = DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        error=DeadLetterError.model_validate({"kind": kind, "detail": detail[:2000]}),
        raw="",
        received_at=datetime.now(UTC),
        raw_size=len(value),
    )
    # Everything but `raw` (with "false", longer than "true"), and the output's key.
    room = MAX_OUTPUT_BYTES - len(letter.model_dump_json()) - len((key or "").encode())
    if 4 * -(-len(value) // 3) <= room:  # base64: 4 characters per 3 bytes, padded
        return letter.model_copy(update={"raw": base64.b64encode(value).decode()})
    kept = value[: max(0, room) // 4 * 3]
    return letter.model_copy(update={"raw": base64.b64encode(kept).decode(), "raw_truncated": True})


def decode(record: Record, model: type[M]) -> M | DeadLetter:
    """The record as `model`, or the DeadLetter that says why it is not one."""
    raw = record.value or b""
    if len(raw) > MAX_VALUE_BYTES:
        return dead_letter(record, "too_large", f"{len(raw)} bytes > {MAX_VALUE_BYTES}")
    try:  # the fast path, in pydantic's own JSON parser; only bad records take the slow one
        return model.model_validate_json(raw)
    except ValidationError:
        return _why_invalid(record, raw, model)


def _why_invalid(record: Record, raw: bytes, model: type[M]) -> M | DeadLetter:
    """The DeadLetter of a record that did not validate: which of the kinds it is."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dead_letter(record, "undecodable", f"not UTF-8: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return dead_letter(record, "invalid_json", str(exc))
    except RecursionError:  # a small record can still nest deeper than the parser goes
        return dead_letter(record, "invalid_json", "JSON nested too deeply")
    expected = model.model_fields["type"].default if "type" in model.model_fields else None
    if isinstance(data, dict) and expected and data.get("type", expected) != expected:
        return dead_letter(record, "unknown_type", f"type {data.get('type')!r}, want {expected!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        return dead_letter(record, "schema_invalid", errors)


@dataclass
class Handled:
    """What a handler made of a batch: the records to produce, and what to count and say once
    they are committed. Counted then, not while handling: a batch that fails and is handled
    again is counted once."""

    outputs: list[Output] = field(default_factory=list)
    counts: list[tuple[Counter, float]] = field(default_factory=list)  # labelled counters
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def emit(self, output: Output) -> None:
        self.outputs.append(output)

    def count(self, counter: Counter, amount: float = 1) -> None:
        self.counts.append((counter, amount))

    def dead_letter(self, topic: str, letter: DeadLetter) -> None:
        self.outputs.append(Output.of(topic, letter.key or "", letter))
        self.dead_letters.append(letter)

    def extend(self, other: Handled) -> None:
        self.outputs += other.outputs
        self.counts += other.counts
        self.dead_letters += other.dead_letters

    def committed(self) -> None:
        """Called once the outputs are written and the offsets committed."""
        for counter, amount in self.counts:
            counter.inc(amount)
        for letter in self.dead_letters:
            kind = letter.error.kind
            metrics.DEAD_LETTERS.labels(kind=kind, source_topic=letter.source_topic).inc()
            log.warning(
                "dead_lettered",
                source_topic=letter.source_topic,
                partition=letter.partition,
                offset=letter.offset,
                kind=kind,
                raw_truncated=letter.raw_truncated,
            )


BatchHandler = Callable[[Sequence[Record]], Awaitable[Handled]]

# The broker (or the producer, before sending) refuses this one output: it would again.
RECORD_REJECTED: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidMessageError,
    CorruptRecordException,
    InvalidTimestampError,
)
# Redis or Kafka unreachable, slow, failing over, or our transaction aborted by them: not the
# records' fault. Any other Kafka error is the infrastructure's too.
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    KafkaError,
    redis.exceptions.ConnectionError,  # BusyLoadingError (a restarting Redis) included
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,  # ClusterDownError, MasterDownError
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    TimeoutError,  # asyncio's, e.g. HANDOFF_REDIS_TIMEOUT_SECONDS
    OSError,  # connection refused or reset
)


def follows_record(exc: BaseException) -> bool:
    """Whether handling the same records again would fail the same way, so the record at
    fault must be found and dead-lettered (True), or the failure is the infrastructure's and
    the batch is retried later (False). An exception caused by (raised while handling) an
    infrastructure error is the infrastructure's."""
    if isinstance(exc, RECORD_REJECTED):
        return True
    return not any(isinstance(e, INFRASTRUCTURE) for e in _causes(exc))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


R = TypeVar("R")


async def handle_or_split(
    records: Sequence[R],
    attempt: Callable[[Sequence[R]], Awaitable[None]],
    isolated: Callable[[R, Exception], Awaitable[None]],
) -> None:
    """`attempt(records)` (handle and commit them); when that fails because of one of them
    (`follows_record`), bisects: each half on its own attempt, first half first, down to the
    record at fault alone, which goes to `isolated`. The records are in partition then offset
    order, so committing them in this order keeps every partition's order. An
    infrastructure failure is raised: the caller retries what is not committed."""
    try:
        await attempt(records)
    except Exception as exc:
        if not follows_record(exc):
            raise
        if len(records) == 1:
            await isolated(records[0], exc)
            return
        log.warning("batch_split", records=len(records), error=_name(exc))
        middle = len(records) // 2
        await handle_or_split(records[:middle], attempt, isolated)
        await handle_or_split(records[middle:], attempt, isolated)


@dataclass
class Stuck:
    """A partition whose batch keeps failing: since when, how many attempts, the last error."""

    since: float  # time.monotonic()
    attempts: int
    error: str  # the exception's class: no message text


class WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in flight is committed or aborted."""

    def __init__(
        self, lock: asyncio.Lock, forget: Callable[[list[TopicPartition]], None] | None = None
    ) -> None:
        self._lock = lock
        self._forget = forget  # what to drop of the partitions given up

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            log.info("partitions_revoked", partitions=[f"{t.topic}-{t.partition}" for t in revoked])
            if self._forget is not None:
                self._forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=[f"{t.topic}-{t.partition}" for t in assigned])


class TransactionalProcessor:
    """Runs `handler` on batches of `topics` and commits outputs + offsets in one transaction."""

    def __init__(
        self,
        settings: CommonSettings,
        service: str,
        topics: list[str],
        handler: BatchHandler,
    ) -> None:
        self._settings = settings
        self._service = service
        self._topics = topics
        self._handler = handler
        self._group_id = settings.group_id(service)
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stuck: dict[TopicPartition, Stuck] = {}
        # False until started and while the last batch failed: readiness reports it.
        self.healthy = False

    async def start(self) -> None:
        s = self._settings
        if s.exactly_once:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=s.kafka_bootstrap,
                transactional_id=s.transactional_id(self._service),
                transaction_timeout_ms=s.transaction_timeout_ms,
                max_request_size=BROKER_MAX_MESSAGE_BYTES,
            )
        else:
            self._producer = idempotent_producer(s)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self._group_id,
            group_instance_id=s.transactional_id(self._service),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=s.consumer_max_records,
            fetch_max_wait_ms=s.consumer_poll_ms,
        )
        await self._producer.start()
        listener = WaitForBatch(self._lock, forget=self._unstick_all)
        self._consumer.subscribe(self._topics, listener=listener)
        await self._consumer.start()
        self.healthy = True

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    def stuck_partitions(self) -> list[dict[str, Any]]:
        """The partitions whose batch keeps failing, for /readyz."""
        now = time.monotonic()
        return [
            {
                "service": self._service,
                "topic": tp.topic,
                "partition": tp.partition,
                "failed_attempts": st.attempts,
                "stuck_seconds": round(now - st.since, 1),
                "error": st.error,
            }
            for tp, st in sorted(self._stuck.items(), key=lambda i: (i[0].topic, i[0].partition))
        ]

    async def run(self) -> None:
        """Polls forever. A batch failing for the infrastructure is retried from its first
        uncommitted record, with backoff; one failing for a record is split (handle_or_split)."""
        assert self._consumer is not None
        backoff = 0.1
        while True:
            batches = await self._consumer.getmany(timeout_ms=self._settings.consumer_poll_ms)
            if not batches:
                self.healthy = True
                continue
            async with self._lock:
                committed: dict[TopicPartition, int] = {}  # the next offset, once committed
                try:
                    await self._process(batches, committed)
                    self.healthy, backoff = True, 0.1
                except (asyncio.CancelledError, ProducerFenced):
                    raise  # fenced: another live instance has our transactional id; stop
                except Exception as exc:
                    self.healthy = False
                    log.exception("batch_failed", service=self._service, retry_in_s=backoff)
                    self._rewind(batches, committed, exc)
                    await asyncio.sleep(backoff)  # backoff before the retry, not synchronisation
                    backoff = min(backoff * 2, 5.0)

    async def _process(
        self, batches: dict[TopicPartition, list[Record]], committed: dict[TopicPartition, int]
    ) -> None:
        # In partition order, each partition's records in offset order: any prefix of this
        # list, committed first, keeps every partition's order.
        records = [
            r for tp in sorted(batches, key=lambda t: (t.topic, t.partition)) for r in batches[tp]
        ]
        metrics.BATCH_SIZE.labels(service=self._service).observe(len(records))

        async def attempt(part: Sequence[Record]) -> None:
            await self._commit(await self._handler(part), part, committed)

        async def isolated(record: Record, exc: Exception) -> None:
            await self._dead_letter(record, exc, committed)

        await handle_or_split(records, attempt, isolated)
        for tp in batches:
            self._unstick(tp)

    async def _dead_letter(
        self, record: Record, exc: BaseException, committed: dict[TopicPartition, int]
    ) -> None:
        """The record fails alone: its `processing_failed` dead letter and its offset, in one
        transaction. The error's text goes in the dead letter, never in the log."""
        log.warning(
            "record_failed",
            service=self._service,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=_name(exc),
        )
        handled = Handled()
        letter = dead_letter(record, "processing_failed", f"{_name(exc)}: {exc}")
        handled.dead_letter(self._settings.topics.dead_letter, letter)
        await self._commit(handled, [record], committed)

    async def _commit(
        self, handled: Handled, records: Sequence[Record], committed: dict[TopicPartition, int]
    ) -> None:
        assert self._producer is not None
        offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
        if self._settings.exactly_once:
            async with self._producer.transaction():
                await send_idempotent(self._producer, handled.outputs)
                await self._producer.send_offsets_to_transaction(offsets, self._group_id)
        else:  # at least once: commit once every output is acknowledged
            assert self._consumer is not None
            await send_idempotent(self._producer, handled.outputs)
            await self._consumer.commit(offsets)
        committed.update(offsets)
        handled.committed()
        for tp, position in offsets.items():
            self._report_lag(tp, position)

    def _report_lag(self, tp: TopicPartition, position: int) -> None:
        assert self._consumer is not None
        end = self._consumer.highwater(tp)
        if end is not None:
            labels = (self._service, tp.topic, str(tp.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - position))

    def _rewind(
        self,
        batches: dict[TopicPartition, list[Record]],
        committed: dict[TopicPartition, int],
        exc: BaseException,
    ) -> None:
        """Back to each partition's first record not committed, and marks those stuck."""
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        for tp, msgs in batches.items():
            position = committed.get(tp, msgs[0].offset)
            if position > msgs[-1].offset:
                self._unstick(tp)
                continue
            if tp in assignment:
                self._consumer.seek(tp, position)
            self._report_lag(tp, position)
            st = self._stuck.setdefault(tp, Stuck(time.monotonic(), 0, ""))
            st.attempts, st.error = st.attempts + 1, _name(exc)
            labels = (self._service, tp.topic, str(tp.partition))
            metrics.PARTITION_FAILED_ATTEMPTS.labels(*labels).set(st.attempts)
            metrics.PARTITION_STUCK_SECONDS.labels(*labels).set(time.monotonic() - st.since)

    def _unstick_all(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._unstick(tp)

    def _unstick(self, tp: TopicPartition) -> None:
        if self._stuck.pop(tp, None) is not None:
            labels = (self._service, tp.topic, str(tp.partition))
            metrics.PARTITION_FAILED_ATTEMPTS.labels(*labels).set(0)
            metrics.PARTITION_STUCK_SECONDS.labels(*labels).set(0)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


async def send_idempotent(producer: AIOKafkaProducer, outputs: Sequence[Output]) -> None:
    """Sends in order and waits for every ack: with acks=all on an idempotent (or
    transactional) producer, each record is written once, in order."""
    futures = [await producer.send(o.topic, o.value, key=o.key.encode()) for o in outputs]
    await asyncio.gather(*futures)


def idempotent_producer(settings: CommonSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_idempotence=True,
        acks="all",
        max_request_size=BROKER_MAX_MESSAGE_BYTES,
    )
