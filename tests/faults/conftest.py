"""Fault tests: each gets a Kafka broker and a Redis server of its own, so that it can kill,
pause and restart them without touching the shared stack of the other tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.harness.bus import Bus
from devstack.harness.sandbox import Sandbox, opened
from devstack.stack import local_stack
from services.handoff.state.store import ModeStore

Stack = tuple[Sandbox, Bus, ModeStore]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # Kafka's default limits (message.max.bytes 1,048,588), as `make run` and compose have.
    with local_stack(tmp_path) as servers:
        async with opened(Sandbox(servers.kafka, servers.redis, tmp_path / "services")) as box:
            yield box
