"""End-to-end fixtures: the whole system with the reference agent and the web chat gateway.

The session's Kafka broker, but a stack of this package's own: prefixed topics, a Redis
server of its own (its timeout worker must not claim the leases of the session's stack, nor
the other way round) and its own router, handoff service, timeout worker, agent and web chat.
The agent answers every message on its chat.ai-requests, so it must not see the other
packages' traffic (tests/integration counts the records of its interactions).
An idle-timeout minute lasts HANDOFF_MINUTE_SECONDS=3 here: long enough for a test to send
two follow-ups within one, short enough for the demo's timeout path.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from playwright.async_api import Browser

from devstack.harness.bus import Bus
from devstack.harness.env import service_env, settings_for
from devstack.kafka import KafkaProcess
from devstack.ports import free_port
from devstack.redis import RedisProcess
from devstack.services import ServiceProcess
from services.common.settings import Topics
from services.common.topics import ensure_topics
from services.handoff.state.store import ModeStore
from tests.support.browser import chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "webchat"
MINUTE_SECONDS = "3"


class WideBus(Bus):
    """The tests' Bus, also watching what the agent writes: agent.replies, handoff.commands."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        super().__init__(bootstrap, topics)
        self._consumer = AIOKafkaConsumer(
            topics.ai_requests, topics.human_queue, topics.agent_replies, topics.outbound,
            topics.commands, topics.events, topics.dead_letter,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )  # fmt: skip


@dataclass
class Stack:
    env: dict[str, str]
    bus: WideBus
    store: ModeStore
    procs: dict[str, ServiceProcess]
    data: Path

    @property
    def webchat_url(self) -> str:
        return self.procs["webchat"].url

    def cli(self, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`handoffctl ARGS` against this stack (run where no `.run/handoff.env` is)."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env={**self.env, "COLUMNS": "200", "TERM": "dumb"},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, *args],
            env={**self.env, "COLUMNS": "200", "TERM": "dumb"},
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@pytest.fixture(scope="package")
async def stack(kafka: KafkaProcess, stack_dir: Path) -> AsyncIterator[Stack]:
    root = stack_dir / "e2e"
    redis = RedisProcess(root / "redis")
    redis.start()
    redis.wait_ready(30)
    webchat_port = free_port()
    env = {
        **service_env(kafka, redis.url, f"e2e{uuid.uuid4().hex[:6]}."),
        "HANDOFF_MINUTE_SECONDS": MINUTE_SECONDS,
        "HANDOFF_WEBCHAT_DATA_DIR": str(root / "webchat"),
        "HANDOFF_WEBCHAT_HTTP_PORT": str(webchat_port),
        # The tests name users with ?user= (off by default) and act as an https proxy.
        "HANDOFF_WEBCHAT_QUERY_USER": "true",
        "HANDOFF_WEBCHAT_TRUST_PROXY": "true",
    }
    settings = settings_for(env)
    await ensure_topics(settings)
    bus = WideBus(settings.kafka_bootstrap, settings.topics)
    store = ModeStore.from_url(redis.url)
    await store.load_functions()
    await bus.start()
    procs = {
        name: ServiceProcess(module, env, root, f"e2e-{name}", http_port=port)
        for name, module, port in [
            ("router", "services.router", None),
            ("handoff", "services.handoff", None),
            ("timeout", "services.timeout", None),
            ("agent", "services.agent", None),
            ("webchat", "services.webchat", webchat_port),
        ]
    }
    try:
        for proc in procs.values():
            proc.start()
        for proc in procs.values():
            proc.wait_ready(60)
        yield Stack(env, bus, store, procs, root)
    finally:
        for proc in procs.values():
            proc.stop()
        await bus.stop()
        await store.close()
        redis.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """Where the CLI and the demo run: no `.run/handoff.env` of a developer's stack here."""
    yield tmp_path


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as b:
        yield b
