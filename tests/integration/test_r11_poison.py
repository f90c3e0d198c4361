"""R11 on Kafka's default size limits: no record stops a partition, whatever is wrong with it.

Real Kafka (the session broker: `message.max.bytes` left at Kafka's default, 1,048,588) and
real Redis. Each test runs its services on a sandbox (prefixed topics, a Redis database of its
own). Records are produced before the router starts, so that they meet in as few batches as
the consumer's fetch allows: each bad one must end as exactly one dead letter while every
other record of its batch is routed exactly once, in order.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import REGISTRY

import services.router.domain
import services.router.handlers
from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import Sandbox, opened, wait_until
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from services.common.kafka import (
    BROKER_MAX_MESSAGE_BYTES,
    MAX_VALUE_BYTES,
    BatchHandler,
    Handled,
    KafkaWriter,
    Output,
    Record,
    TransactionalProcessor,
)
from services.common.settings import CommonSettings
from services.handoff.domain.routing import RouteDecision, RouteRequest
from services.handoff.state.reader import StateClient
from services.router.handlers import InboundRouter

pytestmark = pytest.mark.timeout(180)

Opened = tuple[Sandbox, Bus, Any]
FAILED_ATTEMPTS = "handoff_partition_failed_attempts"


@pytest.fixture
async def sandbox(
    kafka: KafkaProcess, redis_server: RedisProcess, tmp_path: Path
) -> AsyncIterator[Opened]:
    async with opened(Sandbox(kafka, redis_server, tmp_path / "services")) as box:
        yield box


def sized(who: Who, size: int, field: str = "text") -> bytes:
    """A UserMessage whose JSON is exactly `size` bytes, padded in `field`."""
    message = who.message("")
    message[field] = ""
    empty = len(json.dumps(message).encode())
    message[field] = "x" * (size - empty)
    value = json.dumps(message).encode()
    assert len(value) == size
    return value


def event_id(value: bytes) -> str:
    return str(json.loads(value)["event_id"])


def letters_of(bus: Bus, topic: str) -> list[dict[str, Any]]:
    return [v for v in bus.on(bus.topics.dead_letter) if v["source_topic"] == topic]


def routed_ids(bus: Bus, who: Who) -> list[str]:
    return [
        s.value["message"]["event_id"]
        for s in bus.records
        if s.topic in (bus.topics.ai_requests, bus.topics.human_queue)
        and s.value.get("type") == "routed_message"
        and s.key == who.key
    ]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def one_letter_and_the_rest(
    bus: Bus, users: list[Who], messages: list[dict[str, Any]]
) -> None:
    """Waits for the one dead letter of chat.inbound and every other message routed."""
    await wait_until(lambda: len(letters_of(bus, bus.topics.inbound)) >= 1, 60, "the dead letter")
    await wait_until(
        lambda: sum(len(routed_ids(bus, w)) for w in users) >= len(messages) - 1,
        60,
        "the rest routed",
    )


def assert_routed_once_in_order(
    bus: Bus, users: list[Who], messages: list[dict[str, Any]], but: dict[str, Any]
) -> None:
    """Every message but `but` routed once, each user's in the order sent."""
    for who in users:
        expected = [
            m["event_id"] for m in messages if m["user"]["external_id"] == who.user and m is not but
        ]
        assert routed_ids(bus, who) == expected


async def test_r11_oversize_and_compressed_records_each_end_as_one_dead_letter(
    sandbox: Opened,
) -> None:
    box, bus, _ = sandbox
    who = Who("acme", "support", user="big")
    topic = bus.topics.inbound
    # Compressed, a record is small on the broker whatever its value decompresses to.
    gzip = AIOKafkaProducer(
        bootstrap_servers=bus.bootstrap, compression_type="gzip", max_request_size=64 << 20
    )
    # Uncompressed, as large as Kafka's default broker limit lets a record be.
    plain = AIOKafkaProducer(
        bootstrap_servers=bus.bootstrap, max_request_size=BROKER_MAX_MESSAGE_BYTES
    )
    largest_plain = BROKER_MAX_MESSAGE_BYTES - 200
    bad: dict[str, tuple[AIOKafkaProducer, bytes, str]] = {
        "1.05 MB": (gzip, sized(who, 1_050_000), "too_large"),
        "3 MiB": (gzip, sized(who, 3 << 20), "too_large"),
        "50 MiB": (gzip, sized(who, 50 << 20), "too_large"),
        "just over": (gzip, sized(who, MAX_VALUE_BYTES + 1), "too_large"),
        "just under": (gzip, sized(who, MAX_VALUE_BYTES), "schema_invalid"),  # text > 32 KiB
        "broker's largest": (plain, b"{" * largest_plain, "invalid_json"),
    }
    # Valid, and just under the limit: unknown fields are ignored, so this one is routed.
    large_valid = sized(who, MAX_VALUE_BYTES, field="padding")
    good: list[str] = []
    sent: dict[str, tuple[int, int]] = {}  # name -> (partition, offset)
    await gzip.start()
    await plain.start()
    try:
        for name, (producer, value, _) in bad.items():
            message = who.message(f"before {name}")
            good.append(message["event_id"])
            await bus.send(topic, message, key=who.key)
            meta = await producer.send_and_wait(topic, value, key=who.key.encode())
            sent[name] = (meta.partition, meta.offset)
        await gzip.send_and_wait(topic, large_valid, key=who.key.encode())
        good.append(event_id(large_valid))
        last = who.message("after all")
        await bus.send(topic, last, key=who.key)
        good.append(last["event_id"])
        # The broker under test has Kafka's default limit: one byte over it is refused.
        with pytest.raises(MessageSizeTooLargeError):
            await plain.send_and_wait(topic, b"{" * (largest_plain + 200), key=b"k")
    finally:
        await gzip.stop()
        await plain.stop()

    router = box.service("services.router", "r1")
    await wait_until(lambda: len(routed_ids(bus, who)) >= len(good), 120, "the good records")
    await wait_until(lambda: len(letters_of(bus, topic)) >= len(bad), 60, "the dead letters")

    assert routed_ids(bus, who) == good  # each once, in order
    letters = {(v["partition"], v["offset"]): v for v in letters_of(bus, topic)}
    assert len(letters) == len(letters_of(bus, topic)) == len(bad)  # one each, no more
    for name, (_, value, kind) in bad.items():
        letter = letters[sent[name]]
        assert letter["error"]["kind"] == kind, name
        assert letter["key"] == who.key
        assert letter["raw_size"] == len(value), name
        assert letter["raw_truncated"] is True, name  # base64 of ~1 MiB is over the limit
        raw = base64.b64decode(letter["raw"])
        assert value.startswith(raw) and len(raw) > 700_000, name
    status, body = readyz(router.url)
    assert (status, body["stuck"]) == (200, [])


def crashing(who: Who) -> tuple[str, bytes]:
    """A record any Kafka client can send that made a handler raise: a JSON number of over
    4,300 digits, which pydantic's parser refuses and Python's json.loads raises on (not a
    JSONDecodeError), while finding out why the record is invalid."""
    message = who.message("big number")
    return message["event_id"], json.dumps(message)[:-1].encode() + b', "n": 1' + b"0" * 5000 + b"}"


async def test_r11_records_that_crash_the_router_are_dead_lettered_and_the_rest_routed_once(
    sandbox: Opened,
) -> None:
    box, bus, _ = sandbox
    users = [Who("acme", "support", user=f"c{n}") for n in range(6)]  # over the 3 partitions
    good: dict[str, list[str]] = {who.key: [] for who in users}
    crashes: dict[tuple[int, int], str] = {}  # (partition, offset) -> event id
    for n in range(40):
        who = users[n % len(users)]
        if n in (7, 23):
            eid, value = crashing(who)
            meta = await bus._producer.send_and_wait(
                bus.topics.inbound, value, key=who.key.encode()
            )
            crashes[(meta.partition, meta.offset)] = eid
            continue
        message = who.message(f"m{n}")
        good[who.key].append(message["event_id"])
        await bus.send(bus.topics.inbound, message, key=who.key)

    router = box.service("services.router", "r1")
    await wait_until(
        lambda: sum(len(routed_ids(bus, w)) for w in users) >= 38, 60, "the good records"
    )
    await wait_until(lambda: len(letters_of(bus, bus.topics.inbound)) >= 2, 60, "dead letters")

    for who in users:
        assert routed_ids(bus, who) == good[who.key]  # each once, in order
    letters = letters_of(bus, bus.topics.inbound)
    assert {(v["partition"], v["offset"]) for v in letters} == set(crashes) and len(letters) == 2
    for letter in letters:
        assert letter["error"]["kind"] == "processing_failed"
        assert letter["error"]["detail"].startswith("ValueError: Exceeds the limit")
        assert crashes[(letter["partition"], letter["offset"])].encode() in base64.b64decode(
            letter["raw"]
        )
    status, body = readyz(router.url)
    assert (status, body["stuck"]) == (200, [])


@asynccontextmanager
async def in_process_router(
    box: Sandbox,
    state: StateClient,
    overlap: bool,
    handler: BatchHandler | None = None,
    max_records: int = 500,
) -> AsyncIterator[TransactionalProcessor]:
    """The router's processor in this process; `overlap` as the router runs it (True), and
    without (the default of every other service)."""
    tuning = {"consumer_poll_ms": 50, "consumer_max_records": max_records}
    settings: CommonSettings = box.settings.model_copy(update=tuning)
    handler = handler or InboundRouter(state, settings.topics)
    topics = [settings.topics.inbound]
    processor = TransactionalProcessor(settings, "router", topics, handler, overlap=overlap)
    await processor.start()
    task = asyncio.create_task(processor.run())
    try:
        yield processor
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await processor.stop()


async def produce_for(bus: Bus, users: list[Who], rounds: int) -> list[dict[str, Any]]:
    messages = []
    for n in range(rounds):
        for who in users:
            message = who.message(f"m{n}")
            messages.append(message)
            await bus.send(bus.topics.inbound, message, key=who.key)
    return messages


@pytest.mark.parametrize("overlap", [False, True], ids=["in_turn", "overlapped"])
async def test_r11_a_record_that_crashes_the_handler_ends_as_one_processing_failed_dead_letter(
    sandbox: Opened,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    overlap: bool,
) -> None:
    box, bus, _ = sandbox
    users = [Who("acme", "support", user=f"u{n}") for n in range(6)]  # over the 3 partitions
    messages = await produce_for(bus, users, 5)
    crashing = messages[13]
    real_routed_record = services.router.domain.routed_record

    def crashes_on_one(raw: bytes, message: Any, decision: RouteDecision, room: int) -> bytes:
        if message.event_id == crashing["event_id"]:  # a bug only this record triggers
            raise ValueError(f"cannot route {message.text!r}")
        return real_routed_record(raw, message, decision, room)

    monkeypatch.setattr(services.router.handlers, "routed_record", crashes_on_one)
    routed_before = counted("handoff_messages_routed_total", mode="ai")
    failed_before = counted(
        "handoff_dead_letters_total", kind="processing_failed", source_topic=bus.topics.inbound
    )
    state = StateClient.from_settings(box.settings)
    try:
        async with in_process_router(box, state, overlap):
            await one_letter_and_the_rest(bus, users, messages)
    finally:
        await state.close()

    assert_routed_once_in_order(bus, users, messages, but=crashing)
    [letter] = letters_of(bus, bus.topics.inbound)
    assert letter["error"]["kind"] == "processing_failed"
    assert letter["error"]["detail"] == f"ValueError: cannot route {crashing['text']!r}"
    assert json.loads(base64.b64decode(letter["raw"]))["event_id"] == crashing["event_id"]
    assert letter["raw_truncated"] is False
    # Counted once, when committed, however many times the bisection handled them.
    assert counted("handoff_messages_routed_total", mode="ai") - routed_before == len(messages) - 1
    assert (
        counted(
            "handoff_dead_letters_total",
            kind="processing_failed",
            source_topic=bus.topics.inbound,
        )
        - failed_before
        == 1
    )
    logged = capsys.readouterr()
    assert "cannot route" not in logged.out + logged.err  # the error's text is not logged


@pytest.mark.parametrize("overlap", [False, True], ids=["in_turn", "overlapped"])
async def test_r11_a_record_whose_output_the_producer_refuses_ends_as_one_dead_letter(
    sandbox: Opened, overlap: bool
) -> None:
    box, bus, _ = sandbox
    users = [Who("acme", "support", user=f"o{n}") for n in range(6)]
    messages = await produce_for(bus, users, 4)
    oversize = messages[9]
    state = StateClient.from_settings(box.settings)
    router = InboundRouter(state, box.settings.topics)

    async def with_one_oversize_output(records: Sequence[Record]) -> Handled:
        """The router, plus a 2 MB output for one record (as a ticket with a long transcript
        could be): over Kafka's default limit, so the producer refuses it."""
        handled = await router(records)
        if any(r.value and oversize["event_id"].encode() in r.value for r in records):
            handled.emit(Output(box.settings.topics.outbound, "k", b"x" * 2_000_000))
        return handled

    try:
        async with in_process_router(box, state, overlap, with_one_oversize_output):
            await one_letter_and_the_rest(bus, users, messages)
    finally:
        await state.close()

    assert_routed_once_in_order(bus, users, messages, but=oversize)
    [letter] = letters_of(bus, bus.topics.inbound)
    assert letter["error"]["kind"] == "processing_failed"
    assert letter["error"]["detail"].startswith("OutputRefusedError: MSG_SIZE_TOO_LARGE")
    assert json.loads(base64.b64decode(letter["raw"]))["event_id"] == oversize["event_id"]
    assert not [s for s in bus.records if s.key == "k"]  # the aborted output is not visible


async def test_r11_overlapped_batches_commit_in_turn_and_a_failed_commit_retries_both(
    sandbox: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router handles a batch while the one before commits. Each commit starts after the
    last ended; when one fails (Kafka), it and the batch handled meanwhile are handled again
    from the first record not committed: everything routed once, in order, counted once."""
    box, bus, _ = sandbox
    users = [Who("acme", "support", user=f"w{n}") for n in range(6)]
    messages = await produce_for(bus, users, 40)
    events: list[str] = []  # "handle", "begin", "end", in the order they happened
    real_transaction = KafkaWriter.transaction

    async def traced_transaction(self: KafkaWriter, *args: Any) -> None:
        events.append("begin")
        try:
            if events.count("begin") == 3:
                raise KafkaException(KafkaError(KafkaError._TRANSPORT, "broker went away"))
            await real_transaction(self, *args)
        finally:
            events.append("end")

    monkeypatch.setattr(KafkaWriter, "transaction", traced_transaction)
    state = StateClient.from_settings(box.settings)
    router = InboundRouter(state, box.settings.topics)

    async def traced_router(records: Sequence[Record]) -> Handled:
        events.append("handle")
        return await router(records)

    routed_before = counted("handoff_messages_routed_total", mode="ai")
    try:
        async with in_process_router(box, state, True, traced_router, max_records=10):
            await wait_until(
                lambda: sum(len(routed_ids(bus, w)) for w in users) >= len(messages),
                60,
                "everything routed",
            )
    finally:
        await state.close()

    assert box.settings.exactly_once
    for who in users:
        expected = [m["event_id"] for m in messages if m["user"]["external_id"] == who.user]
        assert routed_ids(bus, who) == expected
    assert counted("handoff_messages_routed_total", mode="ai") - routed_before == len(messages)
    trail = "".join({"handle": "h", "begin": "[", "end": "]"}[e] for e in events)
    assert "[[" not in trail and "]]" not in trail  # one commit at a time
    assert "[h]" in trail  # a batch was handled while the one before committed


@pytest.mark.parametrize("overlap", [False, True], ids=["in_turn", "overlapped"])
async def test_r11_a_batch_that_fails_once_for_redis_is_retried_whole_and_counted_once(
    sandbox: Opened, monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    box, bus, _ = sandbox
    users = [Who("acme", "support", user=f"v{n}") for n in range(6)]
    messages = await produce_for(bus, users, 5)
    real_route_batch = StateClient.route_batch
    calls: list[set[str]] = []  # the inbound records (topic/partition/offset) of each call
    stuck_seen: list[dict[str, Any]] = []
    processors: list[TransactionalProcessor] = []

    async def down_once(self: StateClient, requests: list[RouteRequest]) -> list[RouteDecision]:
        calls.append({r.src for r in requests})
        if len(calls) == 1:
            raise redis.exceptions.ConnectionError("Redis went away")
        if len(calls) == 2:
            stuck_seen.extend(processors[0].stuck_partitions())
        return await real_route_batch(self, requests)

    monkeypatch.setattr(StateClient, "route_batch", down_once)
    routed_before = counted("handoff_messages_routed_total", mode="ai")
    state = StateClient.from_settings(box.settings)
    try:
        async with in_process_router(box, state, overlap) as processor:
            processors.append(processor)
            await wait_until(
                lambda: sum(len(routed_ids(bus, w)) for w in users) >= len(messages),
                60,
                "everything routed",
            )
            await wait_until(lambda: not processor.stuck_partitions(), 10, "nothing stuck")
    finally:
        await state.close()

    for who in users:
        expected = [m["event_id"] for m in messages if m["user"]["external_id"] == who.user]
        assert routed_ids(bus, who) == expected
    assert letters_of(bus, bus.topics.inbound) == []  # not the records' fault: none split off
    # The whole batch again, not a half (with what was fetched since, when the poll has more).
    assert calls[0] <= calls[1]
    assert counted("handoff_messages_routed_total", mode="ai") - routed_before == len(messages)
    assert stuck_seen and all(
        s["failed_attempts"] == 1 and s["error"] == "ConnectionError" for s in stuck_seen
    )


async def test_r11_readyz_names_the_partition_stuck_while_redis_is_paused(
    kafka: KafkaProcess, tmp_path: Path
) -> None:
    own_redis = RedisProcess(tmp_path / "redis")  # paused here, so not the session's
    own_redis.start()
    own_redis.wait_ready(30)
    try:
        async with opened(Sandbox(kafka, own_redis, tmp_path / "services")) as (box, bus, _):
            router = box.service("services.router", "r1")
            who = Who("acme", "support", user="stuck")
            await bus.send(bus.topics.inbound, who.message("first"), key=who.key)
            await bus.wait_for(bus.topics.ai_requests, lambda v: v["message"]["text"] == "first")
            own_redis.pause()
            try:
                meta = await bus._producer.send_and_wait(
                    bus.topics.inbound,
                    json.dumps(who.message("while paused")).encode(),
                    key=who.key.encode(),
                )

                def stuck() -> list[dict[str, Any]]:
                    status, body = readyz(router.url)
                    return list(body["stuck"]) if status == 503 else []

                await wait_until(
                    lambda: asyncio.to_thread(stuck), 30, "/readyz to name a stuck partition"
                )
                [entry] = [s for s in await asyncio.to_thread(stuck) if s["service"] == "router"]
                assert (entry["topic"], entry["partition"]) == (bus.topics.inbound, meta.partition)
                assert entry["failed_attempts"] >= 1
                assert entry["error"] in ("TimeoutError", "ConnectionError")
                assert metric_of(router.url, FAILED_ATTEMPTS, bus.topics.inbound, meta.partition)
            finally:
                own_redis.resume()
            await bus.wait_for(
                bus.topics.ai_requests, lambda v: v["message"]["text"] == "while paused"
            )
            await wait_until(lambda: readyz(router.url)[0] == 200, 30, "ready again")
            assert metric_of(router.url, FAILED_ATTEMPTS, bus.topics.inbound, meta.partition) == 0
    finally:
        own_redis.stop()


def metric_of(url: str, name: str, topic: str, partition: int) -> float:
    """The router's `name` sample for `topic`'s `partition`, from its /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        labels = ('service="router"', f'topic="{topic}"', f'partition="{partition}"')
        if line.startswith(name + "{") and all(label in line for label in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
