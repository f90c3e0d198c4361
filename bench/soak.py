"""Soak: N minutes of mixed traffic with periodic faults and poison, then the figures.

    .venv/bin/python -m bench.soak --minutes 10 [--interactions 500] [--rate 300]

Starts its own Kafka (Kafka's default size limits), Redis, router, handoff service and two
timeout workers in a temp dir; every --fault-every seconds it injects one fault in turn: router
SIGKILL (+restart), Redis SIGSTOP for 5 s, broker SIGKILL (+restart), a timeout worker SIGKILL
(+restart). Every --poison-every seconds it sends one poison record on chat.inbound, of each
kind in turn: undecodable, invalid JSON, schema-invalid, unknown type, a handler-crashing one
(processing_failed), and gzip-compressed ones decompressing to 1.05 MB, 3 MiB and 50 MiB
(too_large). A tenth of the interactions are handed off for good (no idle timeout). The
router's /readyz is sampled every second for stuck partitions. At the end it prints lost /
duplicated / stuck-partition figures with the counts, saves them in bench/results/soak.json,
and exits 1 if an invariant of tests/faults is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.load import Load, outputs_seen, routing_figures
from devstack.harness.sandbox import Sandbox, hand_off_all, opened, wait_until
from devstack.stack import local_stack
from services.common.kafka_options import aiokafka_options

POISON_KINDS = (
    "undecodable",
    "invalid_json",
    "schema_invalid",
    "unknown_type",
    "processing_failed",
    "too_large 1.05 MB",
    "too_large 3 MiB",
    "too_large 50 MiB",
)


async def soak(args: argparse.Namespace, root: Path) -> dict[str, object]:
    with local_stack(root) as servers:
        async with opened(Sandbox(servers.kafka, servers.redis, root / "services")) as (
            box,
            bus,
            store,
        ):
            box.service("services.handoff", "h1")
            router = box.service("services.router", "r1")  # procs[1]
            for n in (1, 2):
                box.service("services.timeout", f"t{n}")  # procs[2], procs[3]
            users = [Who("soak", "support", user=f"u{n:05}") for n in range(args.interactions)]
            load = Load(users)
            # Handed off for good: no timeout, so their messages must never reach the AI.
            load.human = await hand_off_all(bus, store, users[: len(users) // 10])
            poisoner = AIOKafkaProducer(
                **aiokafka_options(box.settings),
                compression_type="gzip",
                max_request_size=64 << 20,
                enable_idempotence=True,
            )
            await poisoner.start()
            watch = StuckWatch(router.url)
            watching = asyncio.create_task(watch.run())

            faults = itertools.cycle(["router", "redis", "broker", "timeout"])
            kinds = itertools.cycle(POISON_KINDS)
            poisons: dict[str, int] = {}
            injected: list[str] = []
            started = time.monotonic()
            deadline = started + args.minutes * 60
            next_fault = started + args.fault_every
            next_poison = started + args.poison_every
            rounds_per_tick = max(1, args.rate // len(users))
            try:
                while time.monotonic() < deadline:
                    await load.produce(bus, rounds_per_tick, chunk=1000)
                    if time.monotonic() >= next_poison:
                        kind = next(kinds)
                        await send_poison(bus, poisoner, load, users, kind, len(load.poison))
                        poisons[kind] = poisons.get(kind, 0) + 1
                        next_poison = time.monotonic() + args.poison_every
                    if time.monotonic() >= next_fault:
                        injected.append(await inject(next(faults), box))
                        next_fault = time.monotonic() + args.fault_every
                    await asyncio.sleep(1)  # the traffic's pace: --rate messages per second
                await wait_until(lambda: outputs_seen(bus) >= load.total, 300, "the backlog")
                drained_s = time.monotonic() - deadline
                await wait_until(lambda: watch.now == [], 30, "no partition stuck")
            finally:
                watching.cancel()
                await poisoner.stop()
            figures = routing_figures(bus, load)
            return {
                "minutes": args.minutes,
                "messages": sum(map(len, load.sent.values())),
                "poison_records": poisons,
                "interactions": len(users),
                "faults": injected,
                "lost": figures["lost"],
                "duplicated": figures["duplicated"],
                "unexpected": figures["unexpected"],
                "order_broken": len(figures["order_broken"]),
                "ai_for_human_mode": len(figures["ai_for_human_mode"]),
                "dead_letters_by_kind": letters_by_kind(bus),
                "stuck_partitions": {
                    "longest_stuck_s": watch.longest,
                    "seconds_any_stuck": watch.stuck_samples,
                    "stuck_at_end": watch.now,
                },
                "backlog_drained_s_after_traffic": round(drained_s, 1),
            }


class StuckWatch:
    """Samples the router's /readyz every second: the longest a partition stayed stuck."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.longest = 0.0
        self.stuck_samples = 0
        self.now: list[dict[str, Any]] | None = None  # None until a /readyz answered

    async def run(self) -> None:
        while True:
            stuck = await asyncio.to_thread(self._stuck)
            if stuck is not None:
                self.now = stuck
                self.stuck_samples += bool(stuck)
                self.longest = max([self.longest, *(s["stuck_seconds"] for s in stuck)])
            await asyncio.sleep(1)  # the sampling period

    def _stuck(self) -> list[dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return list(json.loads(response.read())["stuck"])
        except urllib.error.HTTPError as exc:  # 503: not ready, and why
            return list(json.loads(exc.read()).get("stuck", []))
        except OSError:  # the router is being restarted
            return None


async def send_poison(
    bus: Bus, producer: AIOKafkaProducer, load: Load, users: list[Who], kind: str, n: int
) -> None:
    """One poison record of `kind`, with an id the dead letter's raw bytes give back."""
    pid = f"p{n}"
    who = users[n % len(users)]
    value = poison_value(who, kind, pid)
    await producer.send_and_wait(bus.topics.inbound, value, key=who.key.encode())
    load.poison.add(pid)


def poison_value(who: Who, kind: str, pid: str) -> bytes:
    if kind == "undecodable":
        return f"poison:{pid}:".encode() + b"\xff\xfe\x00\x81"
    if kind == "invalid_json":
        return f"poison:{pid}:{{not json".encode()
    message = who.message("poison", event_id=pid)  # event_id stays near the front
    if kind == "schema_invalid":
        message["attachments"] = [{"id": "a"}] * 21
    elif kind == "unknown_type":
        message["type"] = "agent_reply"
    elif kind == "processing_failed":  # Python's json refuses ints of over 4,300 digits
        return json.dumps(message)[:-1].encode() + b', "n": 1' + b"0" * 5000 + b"}"
    else:
        size = {"1.05 MB": 1_050_000, "3 MiB": 3 << 20, "50 MiB": 50 << 20}[kind.split(" ", 1)[1]]
        message["text"] = "x" * size
    return json.dumps(message).encode()


def letters_by_kind(bus: Bus) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for v in bus.on(bus.topics.dead_letter):
        kind = v["error"]["kind"] + (" (raw truncated)" if v.get("raw_truncated") else "")
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


async def inject(fault: str, box: Sandbox) -> str:
    started = time.monotonic()
    if fault == "router":
        proc = box.procs[1]
        proc.kill()
        proc.start()
        proc.wait_ready(60)
    elif fault == "redis":
        box.redis.pause()
        await asyncio.sleep(5)  # the length of the fault
        box.redis.resume()
    elif fault == "broker":
        box.kafka.kill()
        box.kafka.start()
        box.kafka.wait_ready(120)
    else:
        proc = box.procs[2]
        proc.kill()
        proc.start()
        proc.wait_ready(60)
    return f"{fault} ({time.monotonic() - started:.1f}s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interactions", type=int, default=500)
    parser.add_argument("--rate", type=int, default=300, help="messages per second")
    parser.add_argument("--fault-every", type=float, default=30)
    parser.add_argument("--poison-every", type=float, default=5, help="seconds between poisons")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="handoff-soak-") as root:
        result = asyncio.run(soak(args, Path(root)))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    broken = ("lost", "duplicated", "unexpected", "order_broken", "ai_for_human_mode")
    return 1 if any(result[k] for k in broken) else 0


if __name__ == "__main__":
    raise SystemExit(main())
