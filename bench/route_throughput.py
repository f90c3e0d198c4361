"""Router throughput against bare passthroughs (librdkafka and aiokafka), exactly-once off and on.

    .venv/bin/python -m bench.route_throughput [--messages 1000000] [--profile]

N UserMessages of ~300 bytes over 10,000 interactions (10% of them in human mode with an idle
timeout) are produced into a 6-partition topic first; then the consumer under test drains
the backlog. Throughput is measured from its first committed offset to its last (start-up
excluded), read from the consumer group's committed offsets. Six runs, each with exactly-once
off and on: the librdkafka passthrough (the baseline: what the router's client library moves
in Python on this machine), the aiokafka passthrough (the former core's), and the router.
--profile records a py-spy flame graph of the router (exactly-once on) into
bench/results/router-flame.svg. Also reports the router's RSS at the start and the end.
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

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.partitioner import DefaultPartitioner

from bench.common import ROOT, cpu_seconds, local_stack, rss_kb, save
from devstack.harness.sandbox import human_until, redis_now_ms
from devstack.ports import free_port
from devstack.stack import Stack
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics
from services.handoff.state.store import ModeStore

PARTITIONS = 6
INTERACTIONS = 10_000


def interaction(n: int) -> str:
    return f"bench:support:web:u{n:05}"


def message(n: int, now: str) -> bytes:
    user = n % INTERACTIONS
    return json.dumps({
        "type": "user_message", "schema_version": 1, "event_id": f"e{n:09d}",
        "tenant_id": "bench", "agent_id": "support",
        "user": {"channel": "web", "external_id": f"u{user:05}"},
        "conversation_id": f"c{user:05}", "live_test": False,
        "text": "Hello, I have a question about my last invoice and the delivery date.",
        "attachments": [], "sent_at": now,
    }, separators=(",", ":")).encode()  # fmt: skip


async def produce(settings: CommonSettings, topic: str, count: int) -> None:
    """Fills `topic` fast with the batch API, partitioned by key as any producer would."""
    producer = AIOKafkaProducer(**aiokafka_options(settings), acks="all", linger_ms=20)
    await producer.start()
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        batches = {p: producer.create_batch() for p in partitions}
        pending = []
        for n in range(count):
            key = interaction(n % INTERACTIONS).encode()
            p = partitioner(key, partitions, partitions)
            if batches[p].append(key=key, value=message(n, now), timestamp=None) is None:
                pending.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=key, value=message(n, now), timestamp=None)
            if len(pending) > 200:
                await asyncio.gather(*pending)
                pending = []
        for p, batch in batches.items():
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def committed(settings: CommonSettings, group: str) -> int:
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    except GroupCoordinatorNotAvailableError:
        return 0  # the group's coordinator is still being set up
    finally:
        await admin.close()


async def seed_human(redis_url: str, cluster: bool = False) -> None:
    """10% of the interactions in human mode with an hour of idle timeout, in an emptied
    database (on a Redis Cluster: every master emptied)."""
    store = ModeStore.from_url(redis_url, cluster=cluster)
    await store.load_functions()
    await store.redis.flushdb()
    now = await redis_now_ms(store)
    keys = [interaction(n) for n in range(0, INTERACTIONS, 10)]
    await store.apply_many([human_until(k, now + 3_600_000, now) for k in keys])
    await store.close()


PASSTHROUGHS = {"librdkafka": "passthrough_librdkafka.py", "aiokafka": "passthrough.py"}


async def run_one(
    stack: Stack, name: str, count: int, eos: bool, client: str | None, profile: bool
) -> dict[str, Any]:
    """`client` None: the router; else the passthrough on that client library."""
    router = client is None
    prefix = f"{name}-{uuid.uuid4().hex[:6]}."
    settings = CommonSettings(
        kafka_bootstrap=stack.kafka.bootstrap, topic_prefix=prefix, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings)
    source = settings.topics.inbound
    started = time.monotonic()
    await produce(settings, source, count)
    print(f"[{name}] produced {count} in {time.monotonic() - started:.1f}s", flush=True)
    env = {**os.environ, "HANDOFF_KAFKA_BOOTSTRAP": stack.kafka.bootstrap, "PYTHONPATH": str(ROOT)}
    if router:
        db = 1 if eos else 2
        redis_url = stack.redis.url.rsplit("/", 1)[0] + f"/{db}"
        await seed_human(redis_url)
        env.update(HANDOFF_REDIS_URL=redis_url, HANDOFF_TOPIC_PREFIX=prefix, HANDOFF_INSTANCE_ID=name,
                   HANDOFF_ROUTER_HTTP_PORT=str(free_port()), HANDOFF_EXACTLY_ONCE=str(eos).lower(),
                   HANDOFF_LOG_LEVEL="WARNING")  # fmt: skip
        group = settings.group_id("router")
        cmd = [sys.executable, "-m", "services.router"]
    else:
        group = f"{prefix}passthrough"
        cmd = [
            sys.executable,
            str(ROOT / "bench" / PASSTHROUGHS[client or ""]),
            source,
            f"{prefix}out",
            group,
        ]
        cmd += ["--eos"] if eos else []
        admin = AIOKafkaAdminClient(**aiokafka_options(settings))
        await admin.start()
        await admin.create_topics([NewTopic(f"{prefix}out", PARTITIONS, 1)])
        await admin.close()
    proc = subprocess.Popen(cmd, env=env)
    profiler = None
    try:
        done, first_at, first_done, rss_start, cpu_start = 0, 0.0, 0, 0, 0.0
        while done < count:
            await asyncio.sleep(0.25)  # the poll interval of the measurement
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}")
            done = await committed(settings, group)
            if done and not first_at:
                first_at, first_done, rss_start = time.monotonic(), done, rss_kb(proc.pid)
                cpu_start = cpu_seconds(proc.pid)
                if profile and router:
                    profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking",
                        "-p", str(proc.pid), "-d", "20", "-o", str(ROOT / "bench/results/router-flame.svg")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        elapsed = time.monotonic() - first_at
        rss_end, cpu = rss_kb(proc.pid), cpu_seconds(proc.pid) - cpu_start
    finally:
        proc.terminate()
        proc.wait(30)
        if profiler is not None:
            profiler.wait(60)
    rate = (count - first_done) / elapsed
    cpu_us = 1e6 * cpu / (count - first_done)
    print(f"[{name}] {rate:,.0f} messages/s, {cpu_us:.0f} µs of its CPU per message", flush=True)
    return {
        "messages_per_s": round(rate),
        "cpu_us_per_message": round(cpu_us, 1),
        "seconds": round(elapsed, 2),
        "rss_kb_start": rss_start,
        "rss_kb_end": rss_end,
    }


async def main(count: int, profile: bool) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp,
        local_stack(Path(tmp), PARTITIONS) as stack,
    ):
        runs: dict[str, dict[str, Any]] = {}
        for eos in (False, True):
            tail = "_eos" if eos else ""
            for client in ("librdkafka", "aiokafka"):
                name = f"passthrough_{client}{tail}"
                runs[name] = await run_one(
                    stack, name.replace("_", "-"), count, eos, client, profile=False
                )
            runs[f"router{tail}"] = await run_one(
                stack, f"router{tail}".replace("_", "-"), count, eos, None, profile and eos
            )

    def ratio(a: str, b: str) -> float:
        return round(float(runs[a]["messages_per_s"]) / float(runs[b]["messages_per_s"]), 3)

    figures: dict[str, Any] = {
        **runs,
        # The targets: the router at >= 0.5x the librdkafka passthrough, each mode.
        "ratio_router_to_librdkafka_passthrough": ratio("router", "passthrough_librdkafka"),
        "ratio_router_to_librdkafka_passthrough_eos": ratio(
            "router_eos", "passthrough_librdkafka_eos"
        ),
        "ratio_router_to_aiokafka_passthrough": ratio("router", "passthrough_aiokafka"),
        "ratio_router_to_aiokafka_passthrough_eos": ratio("router_eos", "passthrough_aiokafka_eos"),
        "ratio_aiokafka_to_librdkafka_passthrough": ratio(
            "passthrough_aiokafka", "passthrough_librdkafka"
        ),
        "ratio_aiokafka_to_librdkafka_passthrough_eos": ratio(
            "passthrough_aiokafka_eos", "passthrough_librdkafka_eos"
        ),
        "router_rss_growth": round(
            runs["router_eos"]["rss_kb_end"] / max(1, runs["router_eos"]["rss_kb_start"]), 3
        ),
    }
    for mode, target in (("", 0.5), ("_eos", 0.5)):
        key = f"ratio_router_to_librdkafka_passthrough{mode}"
        figures[f"target{mode or '_at_least_once'}"] = (
            f"router >= {target}x librdkafka passthrough: "
            + ("met" if figures[key] >= target else "missed")
            + f" ({figures[key]}x)"
        )
    print(json.dumps({k: v for k, v in figures.items() if not isinstance(v, dict)}, indent=2))
    save("route_throughput", figures, {"messages": count, "interactions": INTERACTIONS, "human_share": 0.1,
                                       "partitions": PARTITIONS, "batch": 500, "acks": "all"})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.profile))
