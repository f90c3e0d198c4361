"""Faults 1-3 of issue 6: the router SIGKILLed, the broker SIGKILLed, a rebalance mid-stream.

Each run: 20,000 messages over 200 interactions (20 of them in human mode), and the
invariants of load.check_routing over everything that came out.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from devstack.harness.events import Who
from devstack.harness.load import Load, check_routing, outputs_seen
from devstack.harness.sandbox import hand_off_all, wait_until
from tests.faults.conftest import Stack

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

ROUNDS = 100  # x 200 interactions = 20,000 messages


async def prepared(stack: Stack) -> Load:
    box, bus, store = stack
    box.service("services.handoff", "h1")
    load = Load([Who("acme", "support", user=f"u{n:03}") for n in range(200)])
    load.human = await hand_off_all(bus, store, load.users[:20])
    return load


async def finish(stack: Stack, load: Load, producing: asyncio.Task[None]) -> None:
    _, bus, _ = stack
    await producing
    await wait_until(lambda: outputs_seen(bus) >= load.total, 120, "every message routed")
    check_routing(bus, load)


async def test_router_sigkilled_three_times(stack: Stack) -> None:
    box, bus, _ = stack
    load = await prepared(stack)
    router = box.service("services.router", "r1")
    rng = random.Random(6)
    producing = asyncio.create_task(load.produce(bus, ROUNDS, pace=0.02))
    for kill_at in sorted(rng.sample(range(2_000, 18_000), 3)):
        await wait_until(lambda k=kill_at: outputs_seen(bus) >= k, 90, f"{kill_at} routed")
        router.kill()
        router.start()
        router.wait_ready(60)
    await finish(stack, load, producing)


async def test_broker_sigkilled_and_restarted(stack: Stack) -> None:
    box, bus, _ = stack
    load = await prepared(stack)
    box.service("services.router", "r1")
    producing = asyncio.create_task(load.produce(bus, ROUNDS, pace=0.02))
    await wait_until(lambda: outputs_seen(bus) >= 6_000, 90, "routing under way")
    box.kafka.kill()
    box.kafka.start()
    box.kafka.wait_ready(120)
    await finish(stack, load, producing)


async def test_rebalance_when_one_of_two_routers_dies(stack: Stack) -> None:
    box, bus, _ = stack
    load = await prepared(stack)
    box.service("services.router", "r1")
    second = box.service("services.router", "r2")
    producing = asyncio.create_task(load.produce(bus, ROUNDS, pace=0.02))
    await wait_until(lambda: outputs_seen(bus) >= 8_000, 90, "both routing")
    second.kill()  # not restarted: r1 takes its partitions after the session timeout
    await finish(stack, load, producing)
