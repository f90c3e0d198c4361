"""Fixtures of the integration tests beyond the session's stack (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.harness.bus import Bus
from devstack.harness.sandbox import Sandbox, opened
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from services.handoff.state.store import ModeStore


@pytest.fixture
async def sandbox(
    kafka: KafkaProcess, redis_server: RedisProcess, tmp_path: Path
) -> AsyncIterator[tuple[Sandbox, Bus, ModeStore]]:
    async with opened(Sandbox(kafka, redis_server, tmp_path)) as opened_box:
        yield opened_box
