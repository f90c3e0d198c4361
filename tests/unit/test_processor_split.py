"""What the TransactionalProcessor does with a failing batch, without a broker: which errors
follow a record (`follows_record`), the bisection that isolates it (`handle_or_split`), and the
dead letter that always fits in one record on Kafka's default limits (`dead_letter`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import redis.exceptions
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import Counter
from pydantic import ValidationError

from schemas import DeadLetter, UserMessage
from services.common.kafka import (
    BROKER_MAX_MESSAGE_BYTES,
    MAX_VALUE_BYTES,
    Handled,
    OutputRefusedError,
    dead_letter,
    follows_record,
    handle_or_split,
)

KAFKA_DEFAULT_MESSAGE_MAX_BYTES = 1048588  # the broker's message.max.bytes out of the box


def caused_by(outer: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception as inner:
            raise outer from inner
    except Exception as exc:
        return exc


def a_validation_error() -> ValidationError:
    try:
        UserMessage.model_validate({})
    except ValidationError as exc:
        return exc
    raise AssertionError("validated")


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a handler bug one record triggers"),
        KeyError("field"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        redis.exceptions.ResponseError("ERR user_function:12: attempt to index a nil value"),
        OutputRefusedError("MSG_SIZE_TOO_LARGE"),  # the producer or the broker refuses it
        RuntimeError("state kept changing, gave up"),
    ],
    ids=type,
)
def test_errors_that_follow_a_record(exc: Exception) -> None:
    assert follows_record(exc)


@pytest.mark.parametrize(
    "exc",
    [
        redis.exceptions.ConnectionError("Connection refused"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        redis.exceptions.BusyLoadingError("LOADING"),
        redis.exceptions.ClusterDownError("CLUSTERDOWN"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        TimeoutError(),  # asyncio.wait_for around a Redis call
        ConnectionRefusedError(),
        KafkaException(KafkaError(KafkaError._TRANSPORT)),  # the broker unreachable
        KafkaException(KafkaError(KafkaError._TIMED_OUT)),
        KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)),
        KafkaException(KafkaError(KafkaError.INVALID_PRODUCER_EPOCH)),  # our txn aborted
        KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID)),  # fenced (KIP-447)
        caused_by(RuntimeError("wrapped"), redis.exceptions.ConnectionError("down")),
    ],
    ids=type,
)
def test_errors_of_the_infrastructure_do_not(exc: Exception) -> None:
    assert not follows_record(exc)


def test_a_validation_error_follows_its_record() -> None:
    assert follows_record(a_validation_error())


class PoisonError(ValueError):
    pass


class Split:
    """Records the attempts of handle_or_split; `poison` records make an attempt fail."""

    def __init__(self, poison: set[int], down_at: int | None = None) -> None:
        self.poison = poison
        self.down_at = down_at  # the attempt at which the infrastructure goes away
        self.attempts: list[list[int]] = []
        self.committed: list[int] = []
        self.isolated: list[int] = []

    async def attempt(self, records: Sequence[int]) -> None:
        self.attempts.append(list(records))
        if self.down_at is not None and len(self.attempts) >= self.down_at:
            raise redis.exceptions.ConnectionError("Redis went away")
        if self.poison & set(records):
            raise PoisonError("record at fault")
        self.committed += records

    async def alone(self, record: int, exc: Exception) -> None:
        assert isinstance(exc, PoisonError)
        self.isolated.append(record)
        self.committed.append(record)  # its dead letter, committed with its offset

    async def run(self, records: list[int]) -> None:
        await handle_or_split(records, self.attempt, self.alone)


async def test_a_good_batch_is_one_attempt() -> None:
    split = Split(poison=set())
    await split.run(list(range(8)))
    assert split.attempts == [list(range(8))] and split.isolated == []


@pytest.mark.parametrize("poison", [{0}, {5}, {15}, {3, 4}, {0, 15}, {2, 9, 10}])
async def test_each_poison_record_is_isolated_and_everything_else_committed_once_in_order(
    poison: set[int],
) -> None:
    split = Split(poison)
    await split.run(list(range(16)))
    assert split.isolated == sorted(poison)
    assert split.committed == list(range(16))  # each record once, in the batch's order
    # Bisection: a handful of attempts per poison record, not one per record.
    assert len(split.attempts) <= 1 + 2 * len(poison) * 4


async def test_a_batch_of_one_poison_record_is_isolated_at_once() -> None:
    split = Split(poison={7})
    await split.run([7])
    assert split.attempts == [[7]] and split.isolated == [7]


async def test_every_record_failing_means_every_record_dead_lettered_in_order() -> None:
    split = Split(poison=set(range(6)))
    await split.run(list(range(6)))
    assert split.isolated == list(range(6)) == split.committed


async def test_the_infrastructure_failing_mid_split_stops_it_with_what_is_committed_kept() -> None:
    split = Split(poison={6}, down_at=3)  # the whole batch, its first half, then Redis is down
    with pytest.raises(redis.exceptions.ConnectionError):
        await split.run(list(range(8)))
    assert split.committed == [0, 1, 2, 3]  # the processor rewinds to record 4, not to 0
    assert split.isolated == []


async def test_an_infrastructure_failure_of_the_whole_batch_is_not_split() -> None:
    split = Split(poison={1}, down_at=1)
    with pytest.raises(redis.exceptions.ConnectionError):
        await split.run(list(range(8)))
    assert split.attempts == [list(range(8))] and split.committed == []


@dataclass
class FakeRecord:
    value: bytes | None
    key: bytes | None = b"acme:support:web:alice"
    topic: str = "chat.inbound"
    partition: int = 2
    offset: int = 41
    timestamp: int = 0


def record_size(letter: DeadLetter) -> int:
    """What the producer checks against max_request_size, and the broker against
    message.max.bytes: the size of a record batch holding this one record."""
    value = letter.model_dump_json().encode()
    key = (letter.key or "").encode()
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def test_our_limit_is_kafkas_default() -> None:
    assert BROKER_MAX_MESSAGE_BYTES == KAFKA_DEFAULT_MESSAGE_MAX_BYTES


@pytest.mark.parametrize(
    "size",
    [0, 10, 700_000, 786_000, 787_000, MAX_VALUE_BYTES - 1, MAX_VALUE_BYTES + 1, 3 << 20, 50 << 20],
)
@pytest.mark.parametrize("filler", [b"x", b"\x00\xff"])
def test_a_dead_letter_always_fits_in_one_record(size: int, filler: bytes) -> None:
    value = (filler * size)[:size]
    letter = dead_letter(FakeRecord(value), "too_large", "detail " * 400)
    assert record_size(letter) <= KAFKA_DEFAULT_MESSAGE_MAX_BYTES
    raw = base64.b64decode(letter.raw)
    assert letter.raw_size == size
    assert value.startswith(raw)
    assert letter.raw_truncated == (len(raw) < size)
    if letter.raw_truncated:  # as much as fits: within a few bytes of the limit
        assert record_size(letter) > KAFKA_DEFAULT_MESSAGE_MAX_BYTES - 1100


def test_a_small_value_is_kept_whole() -> None:
    letter = dead_letter(FakeRecord(b"\xff\xfe"), "undecodable", "not UTF-8")
    assert (letter.raw_truncated, letter.raw_size, base64.b64decode(letter.raw)) == (
        False,
        2,
        b"\xff\xfe",
    )


def test_a_huge_key_is_cut_too() -> None:
    letter = dead_letter(FakeRecord(b"v" * 2_000_000, key=b"\x01" * 900_000), "too_large", "d")
    assert record_size(letter) <= KAFKA_DEFAULT_MESSAGE_MAX_BYTES
    assert letter.key == "\x01" * 1024 and letter.raw_truncated


def test_old_dead_letters_still_parse() -> None:
    old = dead_letter(FakeRecord(b"x"), "invalid_json", "d").model_dump(mode="json")
    del old["raw_truncated"], old["raw_size"]
    parsed = DeadLetter.model_validate_json(json.dumps(old))
    assert (parsed.raw_truncated, parsed.raw_size) == (False, None)


def test_handled_counts_only_when_committed() -> None:
    counter = Counter("test_handled_total", "a counter of this test", ["x"], registry=None)
    handled = Handled()
    handled.count(counter.labels(x="a"), 3)
    handled.dead_letter("chat.dead-letter", dead_letter(FakeRecord(b"x"), "invalid_json", "d"))
    assert counter.labels(x="a")._value.get() == 0  # type: ignore[attr-defined]
    assert [o.topic for o in handled.outputs] == ["chat.dead-letter"]
    handled.committed()
    assert counter.labels(x="a")._value.get() == 3  # type: ignore[attr-defined]
