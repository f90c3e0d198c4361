"""Timeout sweep: 100,000 leases due within one second beside 500,000 unrelated volatile keys,
swept by one and then by two timeout workers. Reports the time to emit them all and the
revert lag (the ModeChanged's Kafka timestamp minus the lease's due time), p50/p99/max, and
the load average around each run (the machine is shared: compare the runs of one bench).
The leases fall due once seeding is done: a time measured on a first slice of them.

    .venv/bin/python -m bench.timeout_sweep [--leases 100000] [--unrelated 500000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.common import local_stack, percentile, save
from devstack.harness.sandbox import Sandbox, human_until, redis_now_ms
from devstack.stack import Stack
from services.common.kafka_options import aiokafka_options
from services.common.topics import ensure_topics
from services.handoff.state.store import ModeStore

FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', 'unrelated:' .. i, 'x', 'PX', 2000 + (i * 7919) % 60000)
end
return 1
"""


async def one_run(
    stack: Stack, root: Path, workers: int, leases: int, unrelated: int
) -> dict[str, Any]:
    box = Sandbox(stack.kafka, stack.redis, root / f"w{workers}", HANDOFF_TIMEOUT_TICK_MS="200")
    await ensure_topics(box.settings)
    store = ModeStore.from_url(box.redis_url)
    await store.load_functions()
    await store.redis.flushdb()
    for start in range(1, unrelated, 50_000):
        await store.redis.eval(FILL, 0, start, min(start + 49_999, unrelated))
    for n in range(workers):
        box.service("services.timeout", f"t{n}")
    # How long seeding takes here and now: 2,000 leases of interactions of their own.
    started = time.monotonic()
    now = await redis_now_ms(store)
    await store.apply_many(
        [human_until(f"calib:a:web:u{n}", now + 3_600_000, now) for n in range(2_000)]
    )
    seeding_s = (time.monotonic() - started) * leases / 2_000
    now = await redis_now_ms(store)
    due_from = now + int(1_000 * (1.5 * seeding_s + 5))
    rng = random.Random(workers)
    due = {f"bench:support:web:u{n:06}": due_from + rng.randrange(1_000) for n in range(leases)}
    keys = list(due)
    for i in range(0, leases, 5_000):
        await store.apply_many([human_until(k, due[k], now) for k in keys[i : i + 5_000]])
    seeded_ms = await redis_now_ms(store)
    load_at_due = os.getloadavg()
    await store.close()

    consumer = AIOKafkaConsumer(
        box.settings.topics.events, **aiokafka_options(box.settings),
        isolation_level="read_committed", auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    lags: list[int] = []
    last_emitted = 0
    deadline = time.monotonic() + 180
    try:
        while len(lags) < leases and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    key = r.key.decode()
                    if key in due:
                        lags.append(r.timestamp - due[key])
                        last_emitted = max(last_emitted, r.timestamp)
    finally:
        await consumer.stop()
        box.stop()
    last_due = max(due.values())
    return {
        "workers": workers,
        "emitted": len(lags),
        "seeding_finished_before_due": seeded_ms < due_from,
        "all_emitted_s_after_last_due": round((last_emitted - last_due) / 1000, 3),
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": max(lags) if lags else None,
        "reverts_per_s": round(len(lags) / max(0.001, (last_emitted - due_from) / 1000)),
        "load_average_at_due": [round(x, 2) for x in load_at_due],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


async def main(leases: int, unrelated: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp,
        local_stack(Path(tmp)) as stack,
    ):
        runs = [await one_run(stack, Path(tmp), n, leases, unrelated) for n in (1, 2)]
        for run in runs:
            print(run, flush=True)
    save("timeout_sweep", {"one_worker": runs[0], "two_workers": runs[1]},
         {"leases": leases, "unrelated_keys": unrelated, "due_within_ms": 1000,
          "timeout_batch": 2000, "tick_ms": 200})  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--unrelated", type=int, default=500_000)
    args = parser.parse_args()
    asyncio.run(main(args.leases, args.unrelated))
