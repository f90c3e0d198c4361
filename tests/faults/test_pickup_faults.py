"""R18 under faults: pickup targets of many tickets passing while one of two timeout workers
is SIGKILLed mid-sweep (and restarted): each ticket is announced once, each `back_to_ai`
returns its user once, none is lost."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from devstack.harness.events import Who, key_of
from devstack.harness.sandbox import wait_until
from schemas import HandoffCommand
from services.handoff.domain.tickets import QueueSettings
from services.handoff.service.commands import API, CommandService
from tests.faults.conftest import Stack
from tests.support.tickets import publish_queues_agent

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

TICKETS = 400


async def test_pickup_targets_fire_once_with_a_worker_killed_mid_sweep(stack: Stack) -> None:
    box, bus, store = stack
    workers = [box.service("services.timeout", f"t{n}", wait=False) for n in (1, 2)]
    for worker in workers:
        worker.wait_ready(60)
    users = [Who("acme", "support", user=f"u{n:04}") for n in range(TICKETS)]
    await publish_queues_agent(store, users[0], queues=("default",))
    # Every ticket is announced and then goes back to the AI, in the same step.
    target = QueueSettings(pickup_minutes=6, on_no_pickup="back_to_ai")
    await store.put_queue("acme", "default", target, "2026-01-01T00:00:00Z", "test", None)
    service = CommandService(store, minute_ms=1000, ticket_turns=5)  # a "minute" is a second

    async def hand_off(who: Who) -> None:
        command = HandoffCommand.model_validate(who.command("to_human"))
        result = await service.execute(command, f"test/{command.command_id}", API)
        assert result.code == "accepted"

    for chunk in range(0, TICKETS, 50):
        await asyncio.gather(*(hand_off(w) for w in users[chunk : chunk + 50]))

    def fired() -> list[str]:
        return [
            key_of(s.value)
            for s in bus.records
            if s.topic == bus.topics.events and s.value.get("note") == "pickup_overdue"
        ]

    def returned() -> list[str]:
        return [
            key_of(s.value)
            for s in bus.records
            if s.topic == bus.topics.events
            and s.value.get("type") == "mode_changed"
            and s.value.get("actor") == "system:pickup"
        ]

    await wait_until(lambda: len(fired()) >= TICKETS // 10, 90, "the pickup sweep under way")
    workers[1].kill()  # mid-sweep; a supervisor restarts it with the same instance id
    workers[1].start()
    await wait_until(lambda: len(returned()) >= TICKETS, 120, "every ticket back to the AI")

    keys = {w.key for w in users}
    for what, seen in (("announcement", fired()), ("return", returned())):
        counts = Counter(seen)
        assert set(counts) == keys, f"an {what} was lost"
        assert [k for k, n in counts.items() if n > 1] == [], f"an {what} was emitted twice"
    for who in users[:20]:
        assert (await store.read_state(who.key)).mode == "ai"
