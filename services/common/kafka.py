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
  instance takes its partitions back at once, without waiting for a rebalance.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import ProducerFenced
from aiokafka.structs import TopicPartition
from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, DeadLetterError
from services.common import metrics
from services.common.settings import CommonSettings

log = structlog.get_logger()

MAX_VALUE_BYTES = 1024 * 1024


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
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key,
        error=DeadLetterError.model_validate({"kind": kind, "detail": detail[:2000]}),
        raw=base64.b64encode(record.value or b"").decode(),
        received_at=datetime.now(UTC),
    )


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


def output_for_dead_letter(topic: str, letter: DeadLetter) -> Output:
    metrics.DEAD_LETTERS.labels(kind=letter.error.kind, source_topic=letter.source_topic).inc()
    log.warning(
        "dead_lettered",
        source_topic=letter.source_topic,
        partition=letter.partition,
        offset=letter.offset,
        kind=letter.error.kind,
    )
    return Output.of(topic, letter.key or "", letter)


BatchHandler = Callable[[Sequence[Record]], Awaitable[list[Output]]]


class WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in flight is committed or aborted."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            log.info("partitions_revoked", partitions=[f"{t.topic}-{t.partition}" for t in revoked])

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
        # False until started and while the last batch failed: readiness reports it.
        self.healthy = False

    async def start(self) -> None:
        s = self._settings
        if s.exactly_once:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=s.kafka_bootstrap,
                transactional_id=s.transactional_id(self._service),
                transaction_timeout_ms=s.transaction_timeout_ms,
                max_request_size=2 * MAX_VALUE_BYTES,
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
        self._consumer.subscribe(self._topics, listener=WaitForBatch(self._lock))
        await self._consumer.start()
        self.healthy = True

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def run(self) -> None:
        """Polls forever. A failing batch is retried from its first record, with backoff."""
        assert self._consumer is not None
        backoff = 0.1
        while True:
            batches = await self._consumer.getmany(timeout_ms=self._settings.consumer_poll_ms)
            if not batches:
                self.healthy = True
                continue
            async with self._lock:
                try:
                    await self._process(batches)
                    self.healthy, backoff = True, 0.1
                except (asyncio.CancelledError, ProducerFenced):
                    raise  # fenced: another live instance has our transactional id; stop
                except Exception:
                    self.healthy = False
                    log.exception("batch_failed", service=self._service, retry_in_s=backoff)
                    self._rewind(batches)
                    await asyncio.sleep(backoff)  # backoff before the retry, not synchronisation
                    backoff = min(backoff * 2, 5.0)

    async def _process(self, batches: dict[TopicPartition, list[Record]]) -> None:
        assert self._producer is not None
        records = [
            r for tp in sorted(batches, key=lambda t: (t.topic, t.partition)) for r in batches[tp]
        ]
        metrics.BATCH_SIZE.labels(service=self._service).observe(len(records))
        outputs = await self._handler(records)
        offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batches.items()}
        if self._settings.exactly_once:
            async with self._producer.transaction():
                await send_idempotent(self._producer, outputs)
                await self._producer.send_offsets_to_transaction(offsets, self._group_id)
        else:  # at least once: commit once every output is acknowledged
            assert self._consumer is not None
            await send_idempotent(self._producer, outputs)
            await self._consumer.commit(offsets)
        self._report_lag(offsets)

    def _report_lag(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        for tp, position in offsets.items():
            end = self._consumer.highwater(tp)
            if end is not None:
                labels = (self._service, tp.topic, str(tp.partition))
                metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - position))

    def _rewind(self, batches: dict[TopicPartition, list[Record]]) -> None:
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        for tp, msgs in batches.items():
            if tp in assignment:
                self._consumer.seek(tp, msgs[0].offset)


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
        max_request_size=2 * MAX_VALUE_BYTES,
    )
