"""A Kafka broker and a Redis server of one's own, started side by side, stopped together:
what the fault tests and the benchmarks each need (they kill, pause and load them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess


@dataclass
class Stack:
    kafka: KafkaProcess
    redis: RedisProcess
    root: Path


@contextmanager
def local_stack(
    root: Path, kafka_props: dict[str, str] | None = None, heap: str = "512m"
) -> Iterator[Stack]:
    """Both servers under `root`, ready; Redis starts while the JVM does."""
    kafka = KafkaProcess(root / "kafka", heap=heap, extra_props=kafka_props)
    redis = RedisProcess(root / "redis")
    kafka.start()
    redis.start()
    try:
        redis.wait_ready(30)
        kafka.wait_ready(120)
        yield Stack(kafka, redis, root)
    finally:
        kafka.stop()
        redis.stop()
