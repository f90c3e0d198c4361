"""The local stack is real: Kafka transactions, crash recovery and Redis AOF all hold.

These run the genuine servers (no Docker here), so they double as the check that a fresh
machine can bring the stack up at all. Waits are bounded polls on conditions, never sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack import (
    KafkaProcess,
    PortInUseError,
    RedisNotInstalledError,
    RedisProcess,
    kafka_jars_dir,
)
from devstack.kafka import api_versions_ok
from devstack.kafka_jars import JARS_ENV, MARKER, POM_PATH, JarsFetchError

REPO = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProcess]:
    broker = KafkaProcess(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        broker.wait_ready(120)
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        server.wait_ready(30)
        yield server
    finally:
        server.stop()


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def read_values(bootstrap: str, topic: str, count: int, within: float = 30) -> list[bytes]:
    """Read ``count`` committed records from the start of ``topic``, for at most ``within`` s."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + within
        while len(values) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [rec.value for recs in batches.values() for rec in recs]
    finally:
        await consumer.stop()
    return values


async def test_transactional_produce_and_consume(kafka: KafkaProcess) -> None:
    topic = f"devstack-txn-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka.bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, transactional_id=f"devstack-test-{topic}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed", key=b"k")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"k")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"after-abort", key=b"k")
    finally:
        await producer.stop()
    assert await read_values(kafka.bootstrap, topic, 2) == [b"committed", b"after-abort"]


async def test_record_survives_kafka_sigkill(kafka: KafkaProcess) -> None:
    topic = f"devstack-crash-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka.bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"survivor")
    finally:
        await producer.stop()
    cluster_id = kafka.cluster_id

    kafka.kill()
    assert not kafka.is_running()
    assert not api_versions_ok("127.0.0.1", kafka.port)
    kafka.restart(120)

    assert kafka.cluster_id == cluster_id  # storage was reused, not reformatted
    assert await read_values(kafka.bootstrap, topic, 1) == [b"survivor"]


def test_redis_write_survives_sigkill(redis_server: RedisProcess) -> None:
    with redis_server.client() as conn:
        conn.set("devstack:survivor", "yes")
    aof_dir = redis_server.data_dir / "appendonlydir"
    # appendfsync everysec: once the command is in the AOF file the OS has it, which is
    # all a process crash (as opposed to a power cut) needs.
    wait_until(
        lambda: any(b"devstack:survivor" in f.read_bytes() for f in aof_dir.glob("*.aof")),
        timeout=5,
        what="the write to reach the AOF",
    )
    redis_server.kill()
    assert not redis_server.is_running()
    redis_server.restart(30)
    with redis_server.client() as conn:
        assert conn.get("devstack:survivor") == b"yes"


def test_redis_pause_and_resume(redis_server: RedisProcess) -> None:
    redis_server.pause()
    assert redis_server.paused
    with redis_server.client(timeout=0.3) as conn, pytest.raises(redis.TimeoutError):
        conn.ping()
    redis_server.resume()
    with redis_server.client() as conn:
        assert conn.ping()
    redis_server.pause()
    redis_server.stop(10)  # stop must also work on a paused server
    assert not redis_server.is_running()


def test_taken_port_fails_with_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)):
            RedisProcess(tmp_path / "r", port=port).start()
        with pytest.raises(PortInUseError, match=str(port)):
            KafkaProcess(tmp_path / "k", port=port).start()


def test_missing_redis_server_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devstack.redis.shutil.which", lambda *_a, **_k: None)
    with pytest.raises(RedisNotInstalledError, match="make deps"):
        RedisProcess(tmp_path).start()


def test_jars_cache_with_marker_skips_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "kafka-fake.jar").write_bytes(b"")
    monkeypatch.setenv(JARS_ENV, str(jars))
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn reachable: a fetch would fail loudly
    with pytest.raises(JarsFetchError, match="make deps"):
        kafka_jars_dir()  # jars but no marker = a half-finished fetch: must be redone
    (jars / MARKER).write_text(hashlib.sha256(POM_PATH.read_bytes()).hexdigest())
    assert kafka_jars_dir() == jars
    (jars / MARKER).write_text("stale-pom-hash")
    with pytest.raises(JarsFetchError):
        kafka_jars_dir()


def test_up_command_publishes_env_and_stops_cleanly(tmp_path: Path) -> None:
    from devstack.ports import free_port

    kafka_port, controller_port, redis_port = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "devstack", "up", "--data", str(tmp_path)]
    cmd += ["--kafka-port", str(kafka_port), "--kafka-controller-port", str(controller_port)]
    cmd += ["--redis-port", str(redis_port)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    env_file = tmp_path / "stack.env"
    try:
        wait_until(lambda: env_file.exists() or proc.poll() is not None, 120, "stack.env")
        assert env_file.read_text().splitlines() == [
            f"HANDOFF_KAFKA_BOOTSTRAP=127.0.0.1:{kafka_port}",
            f"HANDOFF_REDIS_URL=redis://127.0.0.1:{redis_port}/0",
        ]
        assert api_versions_ok("127.0.0.1", kafka_port)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert f"127.0.0.1:{kafka_port}" in out
    assert not env_file.exists()
    assert not api_versions_ok("127.0.0.1", kafka_port)
