"""Following topics live, from their end, outside any consumer group.

Channels (the web chat), terminals (`handoffctl chat`, `handoffctl desk watch`) and the demo
watch what happens from now on: a plain consumer without a group (each reader sees every
partition and commits nothing, so it disturbs no service), read_committed (a record shows
once its transaction commits), positioned at the end of every partition before `start`
returns, so nothing produced after `start` is missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer

from services.common.kafka import Record
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings


class Follower:
    def __init__(self, settings: CommonSettings, topics: Sequence[str], poll_ms: int = 100) -> None:
        self.topics = sorted(set(topics))
        self._poll_ms = poll_ms
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            **aiokafka_options(settings),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            fetch_max_wait_ms=poll_ms,
        )
        self.started = False

    async def start(self, wait_s: float = 30.0) -> None:
        """Connects and resolves the end offset of every partition of the topics."""
        await self._consumer.start()
        deadline = time.monotonic() + wait_s
        while {tp.topic for tp in self._consumer.assignment()} != set(self.topics):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partitions of {self.topics} after {wait_s:.0f} s")
            await asyncio.sleep(0.05)  # startup only: the metadata fetch assigns them
        partitions = sorted(self._consumer.assignment())
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the positions now, not at the first poll
            await self._consumer.position(tp)
        self.started = True

    async def stop(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int | None = None) -> list[Record]:
        """The records that arrived, each partition's in order ([] after `timeout_ms`)."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms or self._poll_ms)
        return [record for tp in sorted(batches) for record in batches[tp]]
