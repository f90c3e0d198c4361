"""A test's view of the topics: produce plain JSON like any Kafka client, and watch outputs.

`Bus.send` produces raw JSON dicts (what kcat would send), keyed by the interaction key.
A background consumer (read_committed, from the beginning) collects every record of the
output topics; `wait_for` waits on a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.settings import Topics


@dataclass(frozen=True)
class Seen:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any  # decoded JSON, or the raw bytes when not JSON
    timestamp_ms: int  # the record's CreateTime: when its producer sent it
    headers: tuple[tuple[str, bytes], ...] = ()  # e.g. the trace context (traceparent)


class Bus:
    def __init__(
        self, bootstrap: str, topics: Topics, options: dict[str, Any] | None = None
    ) -> None:
        """`options`: how to connect (services/common/kafka_options.py `aiokafka_options`),
        for a broker that needs TLS and SASL; the default is PLAINTEXT to `bootstrap`."""
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: list[Seen] = []
        self._changed = asyncio.Event()
        kafka = options or {"bootstrap_servers": bootstrap}
        self._producer = AIOKafkaProducer(**kafka, enable_idempotence=True, acks="all")
        self._consumer = AIOKafkaConsumer(
            topics.ai_requests,
            topics.human_queue,
            topics.outbound,
            topics.events,
            topics.dead_letter,
            **kafka,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()
        await self._producer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    try:
                        value = json.loads(r.value)
                    except ValueError:
                        value = r.value
                    key = r.key.decode() if r.key is not None else None
                    seen = Seen(
                        r.topic, r.partition, r.offset, key, value, r.timestamp, tuple(r.headers)
                    )
                    self.records.append(seen)
            if batches:
                self._changed.set()

    async def send(self, topic: str, value: dict[str, Any] | bytes, key: str | None = None) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self._producer.send_and_wait(
            topic, raw, key=key.encode() if key is not None else None
        )

    def on(self, topic: str, where: Callable[[Any], bool] = lambda v: True) -> list[Any]:
        return [s.value for s in self.seen(topic, where)]

    def seen(self, topic: str, where: Callable[[Any], bool] = lambda v: True) -> list[Seen]:
        """The records of `topic` matching `where`, with their position and headers."""
        return [s for s in self.records if s.topic == topic and where(s.value)]

    async def wait_for(
        self, topic: str, where: Callable[[Any], bool], count: int = 1, timeout: float = 20.0
    ) -> list[Any]:
        """The records of `topic` matching `where`, once there are at least `count` of them."""
        return [s.value for s in await self.wait_for_seen(topic, where, count, timeout)]

    async def wait_for_seen(
        self, topic: str, where: Callable[[Any], bool], count: int = 1, timeout: float = 20.0
    ) -> list[Seen]:
        """As `wait_for`, with each record's position and headers."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.seen(topic, where)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(found)}/{count} records on {topic} after {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))

    def routed(self, event_id: str) -> list[tuple[str, Any]]:
        """(topic, value) of every routed copy of a user message."""
        return [
            (s.topic, s.value)
            for s in self.records
            if s.topic in (self.topics.ai_requests, self.topics.human_queue)
            and isinstance(s.value, dict)
            and s.value.get("type") == "routed_message"
            and s.value["message"]["event_id"] == event_id
        ]

    async def wait_routed(self, event_id: str, timeout: float = 20.0) -> tuple[str, Any]:
        """The (topic, RoutedMessage) of one user message, once it is routed."""
        deadline = time.monotonic() + timeout
        while not self.routed(event_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"{event_id} not routed after {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=0.5)
        return self.routed(event_id)[0]
