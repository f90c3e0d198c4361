"""Consume -> transform -> produce on Kafka, effectively once.

Why not a FastStream subscriber: FastStream has no Kafka transactions and its ack policies
(ACK_FIRST commits before the handler runs; reject() drops; nack() retries forever) cannot
tie "outputs written" to "input offsets committed". Here each polled batch is handled, then
its outputs and its input offsets go to Kafka in ONE transaction. A crash anywhere before the
commit aborts both, and the batch is handled again; handlers are replay-safe because the Redis
side stores each decision keyed by the input record (see services/handoff/state/lua/handoff.lua).

The core runs on librdkafka (confluent-kafka); the edge producers stay on aiokafka
(services/common/aiokafka_edge.py). Choices made on purpose (librdkafka's defaults differ):
- consumer: enable.auto.commit=false, isolation.level=read_committed,
  auto.offset.reset=earliest, partition.assignment.strategy=cooperative-sticky (a rebalance
  moves only the partitions that change owner; the others keep being processed);
- producer: transactional (which implies enable.idempotence and acks=all), partitioner
  murmur2_random (Java's and aiokafka's partitioning of keys, not librdkafka's CRC32);
- KIP-447 fencing: the offsets go into the transaction with the consumer's group metadata
  (generation, member id) of the poll that fetched the records, so an instance frozen past
  its session timeout (a "zombie") cannot commit a last transaction for partitions that moved:
  the broker refuses its offsets and the transaction is aborted;
- transactional.id = {prefix}handoff-{service}-{instance_id}: stable across restarts, so a
  restarted instance fences its predecessor and its open transaction is aborted at once;
- the same name is the consumer's group.instance.id (static membership): a restarted
  instance takes its partitions back at once, without waiting for a rebalance;
- producer message.max.bytes = Kafka's default broker message.max.bytes, and every dead
  letter is cut to fit under it, so that no output of ours is one the broker refuses;
- librdkafka's calls block: each client has a thread of its own for them, so the event loop
  (the handlers, their Redis calls, the HTTP endpoints) never waits on Kafka.

No record stops a partition: a batch that fails for a reason that follows one of its records
(see `follows_record`) is split in halves, each handled and committed in its own transaction,
until the record is alone; it then becomes a `processing_failed` dead letter, committed with
its offset. A failure of the infrastructure (Redis or Kafka unreachable) retries the whole
rest of the batch, with backoff, as before: fail closed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import redis.exceptions
import structlog
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from schemas import DeadLetter, DeadLetterError
from services.common import metrics
from services.common.kafka_options import librdkafka_options
from services.common.settings import CommonSettings
from services.common.tracing import NO_HEADERS, Headers, RecordHeaders

log = structlog.get_logger()

MAX_VALUE_BYTES = 1024 * 1024  # the largest input value handled; a larger one is `too_large`
# Kafka's default broker `message.max.bytes`: the largest record batch a broker accepts. The
# producers' own `message.max.bytes` is this too (librdkafka refuses a larger record, and
# never builds a larger batch; the edge's aiokafka producers have it as max_request_size).
BROKER_MAX_MESSAGE_BYTES = 1_048_588
# The largest key + value of one output of ours, leaving room for the batch and record headers.
MAX_OUTPUT_BYTES = BROKER_MAX_MESSAGE_BYTES - 1024
MAX_DEAD_LETTER_KEY_CHARS = 1024  # a longer source key is cut (the record keeps all of it)


class Record(Protocol):
    """What the handlers read of a consumed record."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders | None  # the trace context travels here (tracing.py)


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Output:
    """One record to produce: handlers return these, the processor writes them."""

    topic: str
    key: str
    value: bytes
    headers: Headers = NO_HEADERS  # the trace context of the span that made it

    @classmethod
    def of(cls, topic: str, key: str, event: BaseModel, headers: Headers = NO_HEADERS) -> Output:
        return cls(topic, key, event.model_dump_json().encode(), headers)


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


class OutputRefusedError(Exception):
    """Kafka refuses this one output (the producer before sending, or the broker): it would
    again, so the record that made it is at fault."""


# librdkafka's error codes of an output refused for itself (size, format, timestamp).
REFUSED_OUTPUT_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
    }
)
# Redis or Kafka unreachable, slow, failing over, or our transaction aborted by them: not the
# records' fault. Any other Kafka error is the infrastructure's too.
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    KafkaException,
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
    if isinstance(exc, OutputRefusedError):
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


class SaslAuthenticationFailedError(Exception):
    """The broker refused our credentials: nothing works until they are fixed, so the service
    stops and says why (librdkafka itself would retry forever)."""


def _refused(err: KafkaError) -> SaslAuthenticationFailedError:
    return SaslAuthenticationFailedError(f"{err.name()}: {err.str()}")


TP = tuple[str, int]  # (topic, partition)
# A consumer's group membership as librdkafka serialises it (group, generation, member id).
GroupMetadata = object


@dataclass(slots=True)
class Consumed:
    """A consumed record, as the handlers read it (`Record`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders | None


@dataclass
class Polled:
    """What one poll returned: the records of the partitions still assigned, in partition
    then offset order, and the group membership they were fetched under. The offsets are
    committed with that membership (KIP-447): if the group has moved on since (this instance
    was frozen past its session timeout), the broker refuses the commit, the transaction is
    aborted, and the records are left to the partitions' new owner."""

    records: list[Consumed]
    group: GroupMetadata


def _headers(m: Message) -> RecordHeaders | None:
    # A consumed record's headers are a list of (str, bytes | None); librdkafka's stub types
    # them as what produce() also accepts.
    return cast(RecordHeaders | None, m.headers())


def _executor(name: str) -> ThreadPoolExecutor:
    # One thread per librdkafka client: its blocking calls never block the event loop, and
    # never run two at a time (close() cannot overlap a poll still in flight).
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)


class GroupConsumer:
    """A librdkafka consumer in a consumer group: read_committed, offsets committed only by
    us (in the producer's transaction, or after the outputs are acknowledged), cooperative
    rebalancing, static membership.

    A rebalance waits for the batch in flight: librdkafka runs the rebalance callbacks only
    inside poll(), and the caller polls only between batches, so a partition is given up
    only once the batch holding its records is committed or aborted."""

    def __init__(
        self,
        settings: CommonSettings,
        service: str,
        topics: list[str],
        forget: Callable[[list[TP]], None] | None = None,
        fetch_wait_ms: int = 100,
    ) -> None:
        self._topics = topics
        self._forget = forget  # what to drop of the partitions given up
        self._executor = _executor(f"{service}-consumer")
        self._config = {
            **librdkafka_options(settings),
            "group.id": settings.group_id(service),
            # Static membership: a restarted instance takes its partitions back at once.
            "group.instance.id": settings.transactional_id(service),
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": fetch_wait_ms,
            # A fatal consumer error reaches only this callback (called inside poll()).
            "error_cb": self._on_error,
        }
        self._fatal: KafkaError | None = None
        self._auth_error: KafkaError | None = None
        self._consumer = Consumer(self._config)

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        self._subscribe()

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            self._topics, on_assign=self._assigned, on_revoke=self._given_up, on_lost=self._lost
        )

    async def stop(self) -> None:
        # Static membership: close() does not leave the group; the partitions wait for this
        # instance's restart (or its session timeout), as before.
        await self._call(self._consumer.close)
        self._executor.shutdown(wait=False)

    async def poll(self, max_records: int, timeout_s: float) -> Polled:
        return await self._call(self._poll, max_records, timeout_s)

    def _poll(self, max_records: int, timeout_s: float) -> Polled:
        # poll() returns at the first record (consume() would wait out its timeout for a
        # full batch); consume(…, 0) then takes what has been fetched already.
        try:
            first = self._consumer.poll(timeout_s)
            messages = [first] if first is not None else []
            if first is not None and max_records > 1:
                messages += self._consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            if not exc.args[0].fatal():
                raise
            return self._renew(exc.args[0])
        if self._fatal is not None:
            return self._renew(self._fatal)
        if self._auth_error is not None:
            raise _refused(self._auth_error)
        owned = self.assignment()  # a partition revoked inside this poll keeps no records
        records = []
        for m in messages:
            err = m.error()
            if err is not None:
                if err.fatal() or err.code() == KafkaError._FATAL:
                    return self._renew(err)
                log.warning("consumer_error", code=err.name(), retriable=err.retriable())
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None and partition is not None and offset is not None
            if (topic, partition) in owned:
                records.append(
                    Consumed(
                        topic, partition, offset, m.timestamp()[1], m.key(), m.value(), _headers(m)
                    )
                )
        records.sort(key=lambda r: (r.topic, r.partition))  # stable: offsets stay in order
        return Polled(records, self._consumer.consumer_group_metadata())

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        elif err.code() == KafkaError._AUTHENTICATION:
            self._auth_error = err
        else:  # librdkafka retries these itself (a broker down, a timeout)
            log.debug("kafka_error", code=err.name())

    def _renew(self, err: KafkaError) -> Polled:
        """A fatal consumer error is librdkafka's static member fenced by the same
        group.instance.id: seen when the group coordinator moved or restarted while this member
        rejoined (its older member id is then fenced by its own newer one). The instance id is
        ours alone, so this client is replaced by a new one, which takes the membership back;
        its partitions are given up meanwhile. (A second live instance with our id would be
        fenced by our transactional id too, and that one is fatal for the service.)"""
        log.warning("consumer_renewed", code=err.name())
        if self._forget is not None:
            self._forget(list(self.assignment()))
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()
        self._fatal = None
        self._consumer = Consumer(self._config)
        self._subscribe()
        return Polled([], self._consumer.consumer_group_metadata())

    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def seek(self, tp: TP, offset: int) -> None:
        try:
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
        except KafkaException as exc:  # given up meanwhile: its next owner starts over
            log.info("seek_skipped", partition=f"{tp[0]}-{tp[1]}", code=exc.args[0].name())

    def highwater(self, tp: TP) -> int | None:
        _, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        return int(high) if high is not None and high >= 0 else None

    async def committed(self, tps: list[TP]) -> dict[TP, int | None]:
        def read() -> list[TopicPartition]:
            return list(self._consumer.committed([TopicPartition(*tp) for tp in tps], 30))

        return {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
            for tp in await self._call(read)
        }

    async def commit(self, offsets: dict[TP, int]) -> None:
        """At least once: commits outside a transaction (once every output is acknowledged)."""
        positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        await self._call(lambda: self._consumer.commit(offsets=positions, asynchronous=False))

    def _assigned(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=[f"{t.topic}-{t.partition}" for t in partitions])

    def _given_up(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions_revoked", partitions=[f"{t.topic}-{t.partition}" for t in partitions])
        if self._forget is not None:
            self._forget([(t.topic, t.partition) for t in partitions])

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions_lost", partitions=[f"{t.topic}-{t.partition}" for t in partitions])
        self._given_up(consumer, partitions)


TRANSACTION_CALL_TIMEOUT_S = 10.0  # a blocking librdkafka call gives up after this long
INIT_TIMEOUT_S = 30.0  # connecting (and fencing our predecessor) at start
# A write (a few such calls) that has not returned after this long is librdkafka hung.
HUNG_CALL_S = 60.0
COMMIT_ATTEMPTS = 3  # commit_transaction resumed after a timeout, within HUNG_CALL_S
TRANSACTION_RETRY_BACKOFF_MS = 10


class _Deliveries:
    """Collects the delivery reports of one write: the errors of the outputs not written."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError | None, _: Message) -> None:
        if err is not None:
            self.errors.append(err)

    def raise_first(self) -> None:
        for err in self.errors:
            if err.code() in REFUSED_OUTPUT_CODES:
                raise OutputRefusedError(err.name())
        if self.errors:
            raise KafkaException(self.errors[0])


class KafkaWriter:
    """A librdkafka producer that writes outputs with input offsets in one transaction
    (exactly once), or acknowledged by every replica, idempotent (at least once).

    Keys are partitioned with murmur2, as Kafka's Java client and aiokafka do (librdkafka's
    own default is CRC32): an interaction's records land on the same partition whichever
    client wrote them. Batches and records stay under Kafka's default broker limit."""

    def __init__(self, settings: CommonSettings, service: str, transactional: bool) -> None:
        self.transactional = transactional
        self._name = f"{service}-producer"
        self._executor = _executor(self._name)
        config: dict[str, Any] = {
            **librdkafka_options(settings),
            "partitioner": "murmur2_random",
            "message.max.bytes": BROKER_MAX_MESSAGE_BYTES,
            "error_cb": self._on_error,
            # Only a failed output calls back into Python (_Deliveries): a report per output
            # took the GIL from the handler once per record, on the producer's thread.
            "delivery.report.only.error": True,
        }
        self._auth_error: KafkaError | None = None
        self._timeout_s = settings.transaction_timeout_ms / 1000
        self._begun_at: float | None = None  # time.monotonic() of the open transaction's begin
        if transactional:  # implies enable.idempotence=true and acks=all
            config["transactional.id"] = settings.transactional_id(service)
            config["transaction.timeout.ms"] = settings.transaction_timeout_ms
            # A transaction begun right after the last one finds the coordinator still
            # writing that one's markers (CONCURRENT_TRANSACTIONS) and retries after this:
            # librdkafka's 100 ms default was most of each batch's commit. It grows up to
            # retry.backoff.max.ms (1 s) while Kafka keeps failing.
            config["retry.backoff.ms"] = TRANSACTION_RETRY_BACKOFF_MS
        else:
            config |= {"enable.idempotence": True, "acks": "all"}
        self._config = config
        self._producer = Producer(config)
        self._abort_pending = False  # an abort that failed (Kafka down): retried first
        self._broken = False  # a fatal error that was not a fencing: a new producer first

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self._call(self._init)

    def _init(self) -> None:
        """Connects, and with transactions fences our predecessor and aborts what it left
        open. Refused credentials end it at once (librdkafka would retry them forever)."""
        deadline = time.monotonic() + INIT_TIMEOUT_S
        while True:
            try:
                if self.transactional:
                    self._producer.init_transactions(1)
                else:
                    self._producer.list_topics(timeout=1)
                return
            except KafkaException as exc:
                self._producer.poll(0)  # serves error_cb
                if self._auth_error is not None:
                    raise _refused(self._auth_error) from exc
                if exc.args[0].fatal() or time.monotonic() > deadline:
                    raise

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            self._auth_error = err

    def _renew(self) -> None:
        """A new producer in place of one a fatal error left unusable. librdkafka makes some
        errors fatal that are not a fencing (INVALID_TXN_STATE when the broker restarted
        mid-transaction); a new producer with our transactional id takes over from it, and
        its open transaction is aborted. Fenced by a newer instance is never renewed: that
        one stops the service (see `fatal`)."""
        self._producer = Producer(self._config)
        self._abort_pending = False
        self._init()
        self._broken = False

    async def stop(self) -> None:
        await self._call(self._producer.flush, TRANSACTION_CALL_TIMEOUT_S)
        self._executor.shutdown(wait=False)

    async def transaction(
        self, outputs: Sequence[Output], offsets: dict[TP, int], group: GroupMetadata
    ) -> None:
        """Writes `outputs` and commits `offsets` for `group` in one transaction, or raises
        (the transaction aborted: none of it visible to read_committed consumers)."""
        await self._watched(self._transaction, outputs, offsets, group)

    async def send(self, outputs: Sequence[Output]) -> None:
        """At least once: returns when every output is acknowledged."""
        await self._watched(self._send, outputs)

    async def _watched(self, write: Callable[..., None], *args: Any) -> None:
        """Runs `write` on the producer's thread, and gives up on it when librdkafka does not
        return (seen: send_offsets_to_transaction far past its own timeout after a broker
        restart). That producer and its thread are left behind; a new producer with our
        transactional id is made before the next write, and fences the old one."""
        try:
            await asyncio.wait_for(self._call(write, self._producer, *args), HUNG_CALL_S)
        except TimeoutError:
            log.warning("producer_abandoned", after_s=HUNG_CALL_S)
            self._executor.shutdown(wait=False)
            self._executor = _executor(self._name)
            self._broken = True
            err = KafkaError(KafkaError._TIMED_OUT, "a producer call hung: producer renewed")
            raise KafkaException(err) from None

    def _produce(self, p: Producer, outputs: Sequence[Output]) -> _Deliveries:
        deliveries = _Deliveries()
        deadline = time.monotonic() + TRANSACTION_CALL_TIMEOUT_S
        for o in outputs:
            while True:
                try:
                    if o.headers:
                        p.produce(
                            o.topic, o.value, o.key.encode(), on_delivery=deliveries,
                            headers=list(o.headers),
                        )  # fmt: skip
                    else:
                        p.produce(o.topic, o.value, o.key.encode(), on_delivery=deliveries)
                    break
                except BufferError as exc:  # the local queue is full: let deliveries drain it
                    if time.monotonic() > deadline:  # Kafka not taking any: fail the batch
                        err = KafkaError(KafkaError._QUEUE_FULL, "outputs not taken")
                        raise KafkaException(err) from exc
                    p.poll(0.1)
                except KafkaException as exc:
                    if exc.args[0].code() in REFUSED_OUTPUT_CODES:
                        raise OutputRefusedError(exc.args[0].name()) from exc
                    raise
        return deliveries

    def _send(self, p: Producer, outputs: Sequence[Output]) -> None:
        with self._renewed_on_fatal(p) as p:
            deliveries = self._produce(p, outputs)
            left = p.flush(TRANSACTION_CALL_TIMEOUT_S)
            deliveries.raise_first()
        if left:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{left} not acknowledged"))

    def _transaction(
        self, p: Producer, outputs: Sequence[Output], offsets: dict[TP, int], group: GroupMetadata
    ) -> None:
        with self._renewed_on_fatal(p) as p:
            if self._abort_pending:
                self._abort(p)
            p.begin_transaction()
            self._begun_at = time.monotonic()
            try:
                deliveries = self._produce(p, outputs)
                positions = [TopicPartition(t, part, o) for (t, part), o in offsets.items()]
                p.send_offsets_to_transaction(positions, group, TRANSACTION_CALL_TIMEOUT_S)
                try:
                    self._commit_resumed(p)
                except KafkaException:
                    deliveries.raise_first()  # an output refused: say which
                    raise
                self._begun_at = None
            except BaseException as exc:
                if not (isinstance(exc, KafkaException) and exc.args[0].fatal()):
                    self._abort(p)  # a fatal error leaves nothing to abort: a new producer
                raise

    @contextlib.contextmanager
    def _renewed_on_fatal(self, p: Producer) -> Iterator[Producer]:
        """Renews a producer that a fatal error left unusable, before its next use; the
        error is raised as one the caller retries after. Fenced (`fatal`) is raised as is.
        Yields the producer to write with (`p`, or the new one); a write left behind by
        `_watched` marks nothing on the producer that replaced it."""
        if self._broken and p is self._producer:
            self._renew()
            p = self._producer
        try:
            yield p
        except KafkaException as exc:
            err = exc.args[0]
            if not err.fatal() or (fatal(exc) and not self._outlived_its_timeout()):
                raise
            log.warning("producer_renewed", code=err.name())
            if p is self._producer:
                self._broken = True
            raise KafkaException(KafkaError(err.code(), f"producer renewed: {err.str()}")) from exc

    def _outlived_its_timeout(self) -> bool:
        """Whether the transaction that failed was open longer than transaction.timeout.ms
        (the process was frozen meanwhile, or its host was): the coordinator then aborts it
        and bumps our epoch, and librdkafka calls that fenced, though no newer instance
        exists. Renewing takes the epoch back; were there one, its own transaction would be
        young, and it would stop rather than renew (`fatal`): no ping-pong."""
        begun, self._begun_at = self._begun_at, None
        return begun is not None and time.monotonic() - begun > self._timeout_s

    @staticmethod
    def _commit_resumed(p: Producer) -> None:
        """commit_transaction, called again while it fails retriably (it timed out: slow
        Kafka, or the process was frozen): the coordinator may have the commit under way,
        and librdkafka resumes it rather than let it be aborted (an abort would conflict
        with it, and leave its outcome unknown). Its result is then final either way."""
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                p.commit_transaction(TRANSACTION_CALL_TIMEOUT_S)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == COMMIT_ATTEMPTS - 1:
                    raise

    def _abort(self, p: Producer) -> None:
        # Kafka unreachable: the abort fails too, and is tried again before the next begin.
        self._abort_pending = True
        try:
            p.abort_transaction(TRANSACTION_CALL_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._CONFLICT:
                # A commit that gave up on our side is still in progress in librdkafka, and
                # blocks every abort: a new producer with our id ends it on the coordinator.
                self._broken = True
            raise
        self._abort_pending = False


# A newer producer with our transactional id exists: this instance is the stale one.
FENCED_PRODUCER_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


def fatal(exc: BaseException) -> bool:
    """Fenced by a newer instance with our transactional id: this instance must stop (and
    be restarted) rather than fence it back. librdkafka's other fatal errors renew the client
    (`KafkaWriter._renew`, `GroupConsumer._renew`) and are retried."""
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0]
    return bool(err.fatal()) and err.code() in FENCED_PRODUCER_CODES


@dataclass
class InFlight:
    """A batch whose outputs and offsets are being committed while the next is handled."""

    records: Sequence[Record]
    commit: asyncio.Future[None]


class TransactionalProcessor:
    """Runs `handler` on batches of `topics` and commits outputs + offsets in one transaction."""

    def __init__(
        self,
        settings: CommonSettings,
        service: str,
        topics: list[str],
        handler: BatchHandler,
        overlap: bool = False,
    ) -> None:
        """`overlap`: the next batch is polled and handled while the last one commits. Only
        for handlers whose Redis step is replay-safe per record (it answers a record seen
        before with the outputs it gave then, as the router's do): when the commit fails,
        both batches are handled again from the first record not committed."""
        self._settings = settings
        self._service = service
        self._topics = topics
        self._handler = handler
        self._overlap = overlap
        self._in_flight: InFlight | None = None
        self._consumer: GroupConsumer | None = None
        self._producer: KafkaWriter | None = None
        self._stuck: dict[TP, Stuck] = {}
        # False until started and while the last batch failed: readiness reports it.
        self.healthy = False

    async def start(self) -> None:
        s = self._settings
        self._producer = KafkaWriter(s, self._service, transactional=s.exactly_once)
        self._consumer = GroupConsumer(
            s, self._service, self._topics, self._unstick_all, s.consumer_poll_ms
        )
        await self._producer.start()
        await self._consumer.start()
        self.healthy = True

    async def stop(self) -> None:
        await self._unsettled()  # the last commit ends (or fails) before the clients close
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
                "topic": tp[0],
                "partition": tp[1],
                "failed_attempts": st.attempts,
                "stuck_seconds": round(now - st.since, 1),
                "error": st.error,
            }
            for tp, st in sorted(list(self._stuck.items()))  # list(): one atomic copy
        ]

    async def run(self) -> None:
        """Polls forever. A batch failing for the infrastructure is retried from its first
        uncommitted record, with backoff; one failing for a record is split (handle_or_split)."""
        assert self._consumer is not None
        s = self._settings
        backoff = 0.1
        while True:
            polled = await self._consumer.poll(s.consumer_max_records, s.consumer_poll_ms / 1000)
            committed: dict[TP, int] = {}  # the next offset, once committed
            try:
                if not polled.records:
                    await self._settle()
                elif self._overlap and not self._stuck and self._backlogged(polled):
                    await self._process_overlapped(polled, committed)
                else:
                    await self._settle()
                    await self._process(polled, committed)
                self.healthy, backoff = True, 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if fatal(exc):
                    raise  # e.g. fenced: another live instance has our transactional id; stop
                self.healthy = False
                log.exception("batch_failed", service=self._service, retry_in_s=backoff)
                uncommitted = [*await self._unsettled(), *polled.records]
                self._rewind(uncommitted, committed, exc)
                await asyncio.sleep(backoff)  # backoff before the retry, not synchronisation
                backoff = min(backoff * 2, 5.0)

    def _backlogged(self, polled: Polled) -> bool:
        """A full batch: records are waiting, and throughput is what counts. A batch that
        is not full commits before the next poll: with the overlap, back-to-back commits of
        a few records each tripled the latency at 500 msg/s (bench/route_latency.py)."""
        return len(polled.records) >= self._settings.consumer_max_records

    async def _process_overlapped(self, polled: Polled, committed: dict[TP, int]) -> None:
        """Handles the batch while the previous one commits, then commits it in the
        background once that one has. The partitions' order holds: batches are handled in
        turn, and each commit starts after the one before it ended. A record at fault in
        the handler takes `_process`'s way at once; one whose output Kafka refuses fails
        the commit, so both batches are retried, without overlap while a partition is stuck."""
        try:
            handled = await self._handler(polled.records)
        except Exception as exc:
            if not follows_record(exc):
                raise
            await self._settle()
            await self._process(polled, committed)  # observes the batch's size itself
            return
        metrics.BATCH_SIZE.labels(service=self._service).observe(len(polled.records))
        await self._settle()
        commit = self._commit(handled, polled.records, polled, {})
        self._in_flight = InFlight(polled.records, asyncio.ensure_future(commit))

    async def _settle(self) -> None:
        """Waits for the batch in flight to commit; raises what made it fail."""
        if self._in_flight is not None:
            await asyncio.shield(self._in_flight.commit)
            self._in_flight = None

    async def _unsettled(self) -> list[Record]:
        """The records of the batch in flight if its commit failed (once it has ended)."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return []
        with contextlib.suppress(Exception):
            await asyncio.shield(flight.commit)
            return []
        return list(flight.records)

    async def _process(self, polled: Polled, committed: dict[TP, int]) -> None:
        # In partition order, each partition's records in offset order: any prefix of this
        # list, committed first, keeps every partition's order.
        records: Sequence[Record] = polled.records
        metrics.BATCH_SIZE.labels(service=self._service).observe(len(records))

        async def attempt(part: Sequence[Record]) -> None:
            await self._commit(await self._handler(part), part, polled, committed)

        async def isolated(record: Record, exc: Exception) -> None:
            await self._dead_letter(record, exc, polled, committed)

        await handle_or_split(records, attempt, isolated)
        for tp in {(r.topic, r.partition) for r in records}:
            self._unstick(tp)

    async def _dead_letter(
        self, record: Record, exc: BaseException, polled: Polled, committed: dict[TP, int]
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
        await self._commit(handled, [record], polled, committed)

    async def _commit(
        self,
        handled: Handled,
        records: Sequence[Record],
        polled: Polled,
        committed: dict[TP, int],
    ) -> None:
        assert self._producer is not None and self._consumer is not None
        offsets = {(r.topic, r.partition): r.offset + 1 for r in records}
        if self._producer.transactional:
            await self._producer.transaction(handled.outputs, offsets, polled.group)
        else:  # at least once: commit once every output is acknowledged
            await self._producer.send(handled.outputs)
            await self._consumer.commit(offsets)
        committed.update(offsets)
        handled.committed()
        for tp, position in offsets.items():
            self._report_lag(tp, position)

    def _report_lag(self, tp: TP, position: int) -> None:
        assert self._consumer is not None
        end = self._consumer.highwater(tp)
        if end is not None:
            labels = (self._service, tp[0], str(tp[1]))
            metrics.CONSUMER_LAG.labels(*labels).set(max(0, end - position))

    def _rewind(
        self, records: Sequence[Record], committed: dict[TP, int], exc: BaseException
    ) -> None:
        """Back to each partition's first record not committed, and marks those stuck."""
        assert self._consumer is not None
        first: dict[TP, int] = {}
        last: dict[TP, int] = {}
        for r in records:
            first.setdefault((r.topic, r.partition), r.offset)
            last[(r.topic, r.partition)] = r.offset
        assignment = self._consumer.assignment()
        for tp, offset in first.items():
            position = committed.get(tp, offset)
            if position > last[tp]:
                self._unstick(tp)
                continue
            if tp in assignment:
                self._consumer.seek(tp, position)
            self._report_lag(tp, position)
            st = self._stuck.setdefault(tp, Stuck(time.monotonic(), 0, ""))
            st.attempts, st.error = st.attempts + 1, _name(exc)
            labels = (self._service, tp[0], str(tp[1]))
            metrics.PARTITION_FAILED_ATTEMPTS.labels(*labels).set(st.attempts)
            metrics.PARTITION_STUCK_SECONDS.labels(*labels).set(time.monotonic() - st.since)

    def _unstick_all(self, partitions: list[TP]) -> None:
        for tp in partitions:
            self._unstick(tp)

    def _unstick(self, tp: TP) -> None:
        if self._stuck.pop(tp, None) is not None:
            labels = (self._service, tp[0], str(tp[1]))
            metrics.PARTITION_FAILED_ATTEMPTS.labels(*labels).set(0)
            metrics.PARTITION_STUCK_SECONDS.labels(*labels).set(0)


def _name(exc: BaseException) -> str:
    return type(exc).__name__
