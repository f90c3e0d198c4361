"""End-to-end latency inbound → routed, at 25%, 50% and 90% of the router's measured maximum
throughput, beside the passthrough baseline at the same rates.

    .venv/bin/python -m bench.route_latency [--max-rate N] [--seconds 15]

Latency = when a routed record is read (read_committed, so after its transaction committed)
minus its inbound record's CreateTime, both on this machine's clock. --max-rate defaults to
the router's exactly-once figure in bench/results/route_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import RESULTS, ROOT, local_stack, percentile, save
from bench.route_throughput import INTERACTIONS, PARTITIONS, interaction, message, seed_human
from devstack.ports import free_port
from devstack.stack import Stack
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics


async def measure(stack: Stack, router: bool, rate: float, seconds: float) -> dict[str, Any]:
    prefix = f"lat-{uuid.uuid4().hex[:6]}."
    settings = CommonSettings(
        kafka_bootstrap=stack.kafka.bootstrap, topic_prefix=prefix, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings)
    env = {**os.environ, "HANDOFF_KAFKA_BOOTSTRAP": stack.kafka.bootstrap, "PYTHONPATH": str(ROOT)}
    if router:
        redis_url = stack.redis.url.rsplit("/", 1)[0] + "/3"
        await seed_human(redis_url)
        env.update(HANDOFF_REDIS_URL=redis_url, HANDOFF_TOPIC_PREFIX=prefix, HANDOFF_INSTANCE_ID=prefix,
                   HANDOFF_ROUTER_HTTP_PORT=str(free_port()), HANDOFF_LOG_LEVEL="WARNING")  # fmt: skip
        cmd, outputs = (
            [sys.executable, "-m", "services.router"],
            [settings.topics.ai_requests, settings.topics.human_queue],
        )
    else:
        out = f"{prefix}out"
        admin = AIOKafkaAdminClient(**aiokafka_options(settings))
        await admin.start()
        await admin.create_topics([NewTopic(out, PARTITIONS, 1)])
        await admin.close()
        cmd = [
            sys.executable,
            str(ROOT / "bench" / "passthrough.py"),
            settings.topics.inbound,
            out,
            f"{prefix}g",
            "--eos",
        ]
        outputs = [out]
    proc = subprocess.Popen(cmd, env=env)
    consumer = AIOKafkaConsumer(*outputs, **aiokafka_options(settings), isolation_level="read_committed",
                                auto_offset_reset="earliest", fetch_max_wait_ms=5)  # fmt: skip
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    created: dict[str, float] = {}  # event_id -> when it was sent (ms)
    sent = 0

    async def collect() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                now_ms = time.time() * 1000
                for r in records:
                    value = json.loads(r.value)
                    at = created.pop(value.get("message", value)["event_id"], None)
                    if at is not None:
                        latencies.append(now_ms - at)

    try:
        warm = time.monotonic()
        # Warm-up: wait until the process routes at all (group joined, transactions ready).
        await producer.send_and_wait(
            settings.topics.inbound, _tagged(0, created), key=interaction(0).encode()
        )
        while not latencies and time.monotonic() - warm < 60:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                latencies.extend(1 for _ in records)
        latencies.clear()
        collector = asyncio.create_task(collect())
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            due = started + sent / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # the offered rate
            sent += 1
            value = _tagged(sent, created)
            await producer.send(
                settings.topics.inbound, value, key=interaction(sent % INTERACTIONS).encode()
            )
        deadline = time.monotonic() + 30
        while len(latencies) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # draining what is in flight
        collector.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
        proc.terminate()
        proc.wait(30)
    return {
        "offered_per_s": rate,
        "received": len(latencies),
        "sent": sent,
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "p999_ms": round(percentile(latencies, 0.999), 2),
    }


def _tagged(n: int, created: dict[str, float]) -> bytes:
    """The n-th message, with an event id of its own, its send time noted in `created`."""
    doc = json.loads(message(n, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    doc["event_id"] = f"lat{n}-{uuid.uuid4().hex[:6]}"
    created[doc["event_id"]] = time.time() * 1000
    return json.dumps(doc).encode()


async def main(max_rate: float, seconds: float) -> None:
    figures: dict[str, Any] = {"max_rate_per_s": max_rate}
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp,
        local_stack(Path(tmp), PARTITIONS) as stack,
    ):
        for share in (0.25, 0.5, 0.9):
            rate = round(max_rate * share)
            figures[f"at_{int(share * 100)}pct"] = {
                "router": await measure(stack, True, rate, seconds),
                "passthrough": await measure(stack, False, rate, seconds),
            }
            print(figures[f"at_{int(share * 100)}pct"], flush=True)
    half = figures["at_50pct"]
    figures["p99_ratio_at_50pct"] = round(
        half["router"]["p99_ms"] / max(0.01, half["passthrough"]["p99_ms"]), 2
    )
    save(
        "route_latency",
        figures,
        {"seconds_per_level": seconds, "exactly_once": True, "partitions": PARTITIONS},
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rate", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    rate = args.max_rate
    if rate is None:
        throughput = json.loads((RESULTS / "route_throughput.json").read_text())
        rate = throughput["figures"]["router_eos"]["messages_per_s"]
    asyncio.run(main(rate, args.seconds))
