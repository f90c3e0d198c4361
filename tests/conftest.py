"""Session fixtures: a real Kafka (KRaft, from the Maven jars) and a real redis-server on free
ports in a temp dir, the topics, and the three services running against them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devstack.harness.bus import Bus
from devstack.harness.env import CLUSTER, service_env, settings_for
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from devstack.redis_cluster import RedisClusterProcesses
from devstack.services import ServiceProcess
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics
from services.handoff.state.store import ModeStore


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def kafka(stack_dir: Path) -> Iterator[KafkaProcess]:
    broker = KafkaProcess(stack_dir / "kafka", extra_props={"num.partitions": "3"})
    broker.start()
    broker.wait_ready(120)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[RedisProcess]:
    if CLUSTER:
        cluster = RedisClusterProcesses(stack_dir / "redis-cluster")
        cluster.start()
        yield cluster.nodes[0]  # its url reaches the cluster; the tests that kill one skip
        cluster.stop()
        return
    server = RedisProcess(stack_dir / "redis")
    server.start()
    server.wait_ready(30)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def env(kafka: KafkaProcess, redis_server: RedisProcess, stack_dir: Path) -> dict[str, str]:
    # The files teammates attach to desk replies (the web chat's store) stay in the temp dir.
    return {
        **service_env(kafka, redis_server.url),
        "HANDOFF_WEBCHAT_DATA_DIR": str(stack_dir / "webchat"),
    }


@pytest.fixture(scope="session")
def settings(env: dict[str, str]) -> CommonSettings:
    return settings_for(env)


@pytest.fixture(scope="session")
async def topics_ready(settings: CommonSettings) -> None:
    await ensure_topics(settings)


@pytest.fixture(scope="session")
def services(
    topics_ready: None, env: dict[str, str], stack_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    """Router, handoff and TWO timeout workers, so every timeout test also proves 'once'."""
    procs = {
        "router": ServiceProcess("services.router", env, stack_dir / "services", "r1"),
        "handoff": ServiceProcess("services.handoff", env, stack_dir / "services", "h1"),
        "timeout-1": ServiceProcess("services.timeout", env, stack_dir / "services", "t1"),
        "timeout-2": ServiceProcess("services.timeout", env, stack_dir / "services", "t2"),
    }
    for proc in procs.values():
        proc.start()
    for proc in procs.values():
        proc.wait_ready(60)
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.fixture(scope="session")
async def bus(services: dict[str, ServiceProcess], settings: CommonSettings) -> AsyncIterator[Bus]:
    b = Bus(settings.kafka_bootstrap, settings.topics)
    await b.start()
    yield b
    await b.stop()


@pytest.fixture(scope="session")
async def store(redis_server: RedisProcess) -> AsyncIterator[ModeStore]:
    s = ModeStore.from_url(redis_server.url, cluster=CLUSTER)
    await s.load_functions()
    yield s
    await s.close()


@pytest.fixture(scope="session")
def api_url(services: dict[str, ServiceProcess]) -> str:
    """The handoff service: the operator API and the console."""
    return services["handoff"].url


@pytest.fixture(scope="session")
def jwt_secret(env: dict[str, str]) -> str:
    return env["HANDOFF_API_JWT_SECRET"]


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests share the stack, never an interaction."""
    return f"t{uuid.uuid4().hex[:10]}"
