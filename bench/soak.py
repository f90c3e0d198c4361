"""Soak: N minutes of mixed traffic with periodic faults, then the invariants (not in CI).

    .venv/bin/python bench/soak.py --minutes 10 [--interactions 500] [--rate 300]

Starts its own Kafka, Redis, router, handoff service and two timeout workers in a temp dir;
every --fault-every seconds it injects one fault in turn: router SIGKILL (+restart), Redis
SIGSTOP for 5 s, broker SIGKILL (+restart), a timeout worker SIGKILL (+restart). A tenth of the
interactions are handed off for good (no idle timeout). At the end it checks the same
invariants as tests/faults, prints them with the counts and saves them in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.stack import local_stack
from tests.support.events import Who
from tests.support.load import Load, check_routing, outputs_seen
from tests.support.sandbox import Sandbox, hand_off_all, opened, wait_until


async def soak(args: argparse.Namespace, root: Path) -> dict[str, object]:
    with local_stack(root) as servers:
        async with opened(Sandbox(servers.kafka, servers.redis, root / "services")) as (
            box,
            bus,
            store,
        ):
            box.service("services.handoff", "h1")
            box.service("services.router", "r1")  # procs[1]
            for n in (1, 2):
                box.service("services.timeout", f"t{n}")  # procs[2], procs[3]
            users = [Who("soak", "support", user=f"u{n:05}") for n in range(args.interactions)]
            load = Load(users)
            # Handed off for good: no timeout, so their messages must never reach the AI.
            load.human = await hand_off_all(bus, store, users[: len(users) // 10])

            faults = itertools.cycle(["router", "redis", "broker", "timeout"])
            injected: list[str] = []
            deadline = time.monotonic() + args.minutes * 60
            next_fault = time.monotonic() + args.fault_every
            rounds_per_tick = max(1, args.rate // len(users))
            while time.monotonic() < deadline:
                await load.produce(bus, rounds_per_tick, chunk=1000)
                if time.monotonic() >= next_fault:
                    injected.append(await inject(next(faults), box))
                    next_fault = time.monotonic() + args.fault_every
                await asyncio.sleep(1)  # the traffic's pace: --rate messages per second
            await wait_until(lambda: outputs_seen(bus) >= load.total, 300, "the backlog")
            check_routing(bus, load)
            return {
                "minutes": args.minutes,
                "messages": load.total,
                "interactions": len(users),
                "faults": injected,
                "invariants": "nothing lost, nothing twice, order kept, no AI for human mode",
            }


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="handoff-soak-") as root:
        result = asyncio.run(soak(args, Path(root)))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
