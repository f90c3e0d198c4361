"""The environment of a stack started for tests and benchmarks: the services' settings."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from devstack.kafka import KafkaProcess
from services.common.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
# HANDOFF_TEST_REDIS_CLUSTER=1: the stack's Redis is a three-master Redis Cluster (see the
# Makefile's `test` target, which runs the rule tests that way too).
CLUSTER = os.environ.get("HANDOFF_TEST_REDIS_CLUSTER") == "1"
# The operator API's HS256 secret for this run (tests sign their tokens with it).
API_JWT_SECRET = secrets.token_urlsafe(48)


def service_env(kafka: KafkaProcess, redis_url: str, prefix: str = "") -> dict[str, str]:
    return {
        "HANDOFF_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "HANDOFF_REDIS_URL": redis_url,
        "HANDOFF_REDIS_CLUSTER": "true" if CLUSTER else "false",
        "HANDOFF_TOPIC_PREFIX": prefix,
        "HANDOFF_TOPIC_PARTITIONS": "3",
        "HANDOFF_MINUTE_SECONDS": "1",  # an idle-timeout "minute" lasts one second in tests
        "HANDOFF_TIMEOUT_TICK_MS": "50",
        "HANDOFF_CONSUMER_POLL_MS": "50",
        "HANDOFF_LOG_LEVEL": os.environ.get("HANDOFF_TEST_LOG_LEVEL", "INFO"),
        "HANDOFF_API_JWT_SECRET": API_JWT_SECRET,
        # R17's tests pick a weekday and time per tenant (tests/support/tickets.py set_clock).
        "HANDOFF_TEST_CLOCK": "true",
        "HANDOFF_WAITING_SWEEP_MS": "200",
        "PYTHONPATH": str(ROOT),
        "PATH": os.environ.get("PATH", ""),
    }


def settings_for(env: dict[str, str]) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap=env["HANDOFF_KAFKA_BOOTSTRAP"],
        redis_url=env["HANDOFF_REDIS_URL"],
        topic_prefix=env["HANDOFF_TOPIC_PREFIX"],
        topic_partitions=int(env["HANDOFF_TOPIC_PARTITIONS"]),
    )
