"""Scale-out: 1, 2 and 4 router processes in one consumer group, state on a Redis Cluster.

    .venv/bin/python -m bench.scale_out [--messages 50000] [--modes eos,alo]

A 6-partition chat.inbound is filled with N UserMessages of ~300 bytes over 10,000
interactions (10% in human mode with an idle timeout, seeded onto the cluster), as in
bench/route_throughput.py; then 1, 2 or 4 `python -m services.router` processes (each with its
own HANDOFF_INSTANCE_ID and HTTP port, one consumer group) drain it, their state on a
three-master Redis Cluster. Throughput is measured from the first committed offset at which
every process has routed (start-up and the group's first assignment excluded) to the last,
from the group's committed offsets; each process's share from its own
handoff_messages_routed_total over the same window. Per mode (exactly-once on: "eos"; off:
"alo"), the librdkafka passthrough drains the same backlog once as the machine's reference.
Every total is reported as a ratio to the one-process total of the same run. The machine's
cores bound what more processes can add: on 2 cores, 4 routers share them with Kafka, the
three Redis masters and the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, local_stack, save
from bench.route_throughput import (
    INTERACTIONS,
    PARTITIONS,
    committed,
    produce,
    run_one,
    seed_human,
)
from devstack.ports import free_port
from devstack.redis_cluster import RedisClusterProcesses
from devstack.stack import Stack
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

PROCESSES = (1, 2, 4)
MODES = {"eos": True, "alo": False}  # exactly-once on / at-least-once
# A new group's first rebalance waits this long for more members (reset by each join), so
# that routers started together share the partitions from their first assignment on.
INITIAL_REBALANCE_DELAY_MS = 3000


async def routed(client: httpx.AsyncClient, port: int) -> float:
    """The process's handoff_messages_routed_total, summed over modes."""
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("handoff_messages_routed_total{")
    )


async def run_routers(
    stack: Stack, cluster: RedisClusterProcesses, processes: int, count: int, eos: bool
) -> dict[str, Any]:
    name = f"scale-{'eos' if eos else 'alo'}-{processes}"
    prefix = f"{name}-{uuid.uuid4().hex[:6]}."
    settings = CommonSettings(
        kafka_bootstrap=stack.kafka.bootstrap, topic_prefix=prefix, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings)
    started = time.monotonic()
    await produce(settings, settings.topics.inbound, count)
    print(f"[{name}] produced {count} in {time.monotonic() - started:.1f}s", flush=True)
    await seed_human(cluster.url, cluster=True)  # also empties the cluster of the last run
    group = settings.group_id("router")
    ports = [free_port() for _ in range(processes)]
    base = {**os.environ, "HANDOFF_KAFKA_BOOTSTRAP": stack.kafka.bootstrap, "PYTHONPATH": str(ROOT),
            "HANDOFF_REDIS_URL": cluster.url, "HANDOFF_REDIS_CLUSTER": "true",
            "HANDOFF_TOPIC_PREFIX": prefix, "HANDOFF_EXACTLY_ONCE": str(eos).lower(),
            "HANDOFF_LOG_LEVEL": "WARNING"}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.router"],
            env={
                **base,
                "HANDOFF_INSTANCE_ID": f"{name}-{i}",
                "HANDOFF_ROUTER_HTTP_PORT": str(port),
            },
        )
        for i, port in enumerate(ports)
    ]
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            done, first_at, first_done, first_routed = 0, 0.0, 0, [0.0] * processes
            while done < count:
                await asyncio.sleep(0.25)  # the poll interval of the measurement
                for proc in procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name}: a router exited with {proc.returncode}")
                done = await committed(settings, group)
                if done and not first_at:
                    shares = [await routed(http, port) for port in ports]
                    if all(shares):  # every process holds partitions and routes
                        first_at, first_done, first_routed = time.monotonic(), done, shares
            if not first_at:
                raise RuntimeError(f"{name}: the backlog drained before every process routed")
            elapsed = time.monotonic() - first_at
            last_routed = [await routed(http, port) for port in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    total = (count - first_done) / elapsed
    per_process = [round((b - a) / elapsed) for a, b in zip(first_routed, last_routed, strict=True)]
    print(f"[{name}] {total:,.0f} messages/s in total, per process {per_process}", flush=True)
    return {
        "processes": processes,
        "messages_per_s": round(total),
        "per_process_messages_per_s": per_process,
        "mean_per_process_messages_per_s": round(total / processes),
        "seconds": round(elapsed, 2),
        "routed_before_window": first_done,
    }


async def main(count: int, modes: list[str]) -> None:
    load_at_start = os.getloadavg()
    figures: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp,
        local_stack(
            Path(tmp),
            PARTITIONS,
            {"group.initial.rebalance.delay.ms": str(INITIAL_REBALANCE_DELAY_MS)},
        ) as stack,
    ):
        cluster = RedisClusterProcesses(Path(tmp) / "redis-cluster")
        try:
            cluster.start()
            for mode in modes:
                eos = MODES[mode]
                reference = await run_one(
                    stack, f"passthrough-librdkafka-{mode}", count, eos, "librdkafka", False
                )
                runs = [await run_routers(stack, cluster, n, count, eos) for n in PROCESSES]
                one = runs[0]["messages_per_s"]
                for run in runs:
                    run["ratio_to_1_process"] = round(run["messages_per_s"] / one, 3)
                    run["ratio_to_librdkafka_passthrough"] = round(
                        run["messages_per_s"] / reference["messages_per_s"], 3
                    )
                figures[mode] = {
                    "exactly_once": eos,
                    "passthrough_librdkafka": reference,
                    **{f"routers_{run['processes']}": run for run in runs},
                }
                print(f"[{mode}] {figures[mode]}", flush=True)
        finally:
            cluster.stop()
    save("scale_out", figures, {
        "messages": count, "interactions": INTERACTIONS, "human_share": 0.1,
        "partitions": PARTITIONS, "processes": list(PROCESSES), "modes": modes,
        "redis_cluster_masters": len(cluster.nodes),
        "group_initial_rebalance_delay_ms": INITIAL_REBALANCE_DELAY_MS,
        # The machine's limits: every process of the run (Kafka, the three Redis masters,
        # the routers, the measurement) shares these cores.
        "cpus": os.cpu_count(), "load_average_at_start": load_at_start,
    })  # fmt: skip


def modes_arg(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are a comma list of {sorted(MODES)}: {text!r}")
    return modes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 50k: the whole bench in about 6 minutes on 2 cores (100k took 10.4 under load 6-12).
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument(
        "--modes",
        type=modes_arg,
        default=list(MODES),
        help="comma list: eos (exactly-once on), alo (at-least-once); default both",
    )
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.modes))
