"""Fault tests: each gets a Kafka broker and a Redis server of its own, so that it can kill,
pause and restart them without touching the shared stack of the other tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from services.handoff.store import ModeStore
from tests.support.bus import Bus
from tests.support.sandbox import Sandbox, opened

Stack = tuple[Sandbox, Bus, ModeStore]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    kafka = KafkaProcess(tmp_path / "kafka", extra_props={"message.max.bytes": "4194304"})
    redis = RedisProcess(tmp_path / "redis")
    kafka.start()
    redis.start()
    try:
        redis.wait_ready(30)
        kafka.wait_ready(120)
        async with opened(Sandbox(kafka, redis, tmp_path / "services")) as box:
            yield box
    finally:
        kafka.stop()
        redis.stop()
