"""Faults 4-6 of issue 6: Redis paused under load, Redis SIGKILLed, poison records."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from aiokafka import AIOKafkaProducer

from devstack.harness.events import Who
from devstack.harness.load import Load, check_routing, outputs_seen, poison_id
from devstack.harness.sandbox import hand_off_all, publish_agent, wait_until
from services.handoff.state.store import ModeStore
from tests.faults.conftest import Stack

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:  # HTTPError (503) is an OSError too
        return False


async def test_redis_paused_for_ten_seconds_under_load(stack: Stack) -> None:
    box, bus, store = stack
    box.service("services.handoff", "h1")
    router = box.service("services.router", "r1")
    load = Load([Who("acme", "support", user=f"u{n:03}") for n in range(100)])
    load.human = await hand_off_all(bus, store, load.users[:30])
    producing = asyncio.create_task(load.produce(bus, 60, chunk=200, pace=0.05))
    await wait_until(lambda: outputs_seen(bus) >= 1_000, 60, "routing under way")

    box.redis.pause()
    paused_at = time.monotonic()
    try:
        await wait_until(lambda: asyncio.to_thread(lambda: not ready(router.url)), 9, "not ready")
        during = outputs_seen(bus)
        await wait_until(lambda: time.monotonic() - paused_at >= 10, 11, "ten seconds")
        # Fail closed: nothing was routed while the mode could not be read.
        assert outputs_seen(bus) - during <= 0
    finally:
        box.redis.resume()
    await wait_until(lambda: asyncio.to_thread(ready, router.url), 30, "ready again")
    await producing
    await wait_until(lambda: outputs_seen(bus) >= load.total, 90, "backlog drained")
    check_routing(bus, load)


async def test_mode_switches_acknowledged_a_second_before_a_redis_kill_survive(
    stack: Stack,
) -> None:
    box, bus, store = stack
    box.service("services.handoff", "h1")
    users = [Who("acme", "support", user=f"u{n:02}") for n in range(40)]
    acked: dict[str, list[tuple[float, int]]] = {}  # key -> [(ack time, state_version)]

    async def switch_forever() -> None:
        action = "to_human"
        while True:
            for who in users:
                command = who.command(action, source="operator")
                await bus.send(bus.topics.operator_commands, command, key=who.key)
                done = await bus.wait_for(
                    bus.topics.events, lambda v, c=command: v.get("command_id") == c["command_id"]
                )
                if done[0]["type"] == "mode_changed":
                    acked.setdefault(who.key, []).append(
                        (time.monotonic(), done[0]["state_version"])
                    )
            action = "to_ai" if action == "to_human" else "to_human"

    for who in users:
        await publish_agent(store, who)
    switching = asyncio.create_task(switch_forever())
    # Several rounds, and the kill lands while switches are still being made.
    await wait_until(lambda: sum(map(len, acked.values())) >= 4 * len(users), 90, "4 rounds")
    box.redis.kill()
    killed_at = time.monotonic()
    switching.cancel()
    survivors = {
        key: max(v for t, v in acks if t < killed_at - 1.0)
        for key, acks in acked.items()
        if any(t < killed_at - 1.0 for t, _ in acks)
    }
    box.redis.start()
    box.redis.wait_ready(30)

    assert survivors, "no switch was acknowledged a second before the kill"
    after = ModeStore.from_url(box.redis_url)  # the old connections died with the server
    try:
        for key, version in survivors.items():
            state = await after.read_state(key)
            assert state.version >= version, f"{key}: version {state.version} < acked {version}"
    finally:
        await after.close()


async def test_one_percent_poison_records_are_dead_lettered_and_nothing_stalls(
    stack: Stack,
) -> None:
    box, bus, _ = stack
    box.service("services.router", "r1")
    load = Load([Who("acme", "support", user=f"u{n:03}") for n in range(100)])
    # gzip: the over-size poison decompresses to more than the default broker takes raw.
    producer = AIOKafkaProducer(
        bootstrap_servers=bus.bootstrap,
        enable_idempotence=True,
        compression_type="gzip",
        max_request_size=4 << 20,
    )
    await producer.start()
    offsets: dict[str, tuple[int, int, str]] = {}  # poison id -> (partition, offset, kind)
    try:
        for n in range(100):  # 100 poison records among 10,000 messages
            who = load.users[n]
            if n % 25 == 0:
                await load.produce(bus, 25, chunk=500)
            kind, value = poison(n, who)
            meta = await producer.send_and_wait(bus.topics.inbound, value, key=who.key.encode())
            offsets[f"p{n}"] = (meta.partition, meta.offset, kind)
            load.poison.add(f"p{n}")
    finally:
        await producer.stop()

    await wait_until(lambda: outputs_seen(bus) >= load.total, 120, "all routed or dead-lettered")
    check_routing(bus, load)
    letters = {s.value["raw"]: s.value for s in bus.records if s.topic == bus.topics.dead_letter}
    by_id = {poison_id(v): v for v in letters.values()}
    for pid, (partition, offset, kind) in offsets.items():
        letter = by_id[pid]
        assert (letter["partition"], letter["offset"]) == (partition, offset)
        assert letter["source_topic"] == bus.topics.inbound
        assert letter["error"]["kind"] == kind and letter["error"]["detail"]


def poison(n: int, who: Who) -> tuple[str, bytes]:
    """(expected dead-letter kind, value) of the n-th poison record: five kinds in turn."""
    pid = f"p{n}"
    if n % 5 == 0:
        return "undecodable", f"poison:{pid}:".encode() + b"\xff\xfe\x00\x81"
    if n % 5 == 1:
        return "invalid_json", f"poison:{pid}:{{not json".encode()
    message = who.message("poison")
    message["event_id"] = pid
    if n % 5 == 2:
        message["attachments"] = [{"id": "a"}] * 21
        return "schema_invalid", json.dumps(message).encode()
    if n % 5 == 3:  # crashes the handler: Python's json refuses ints of over 4,300 digits
        return "processing_failed", json.dumps(message)[
            :-1
        ].encode() + b', "n": 1' + b"0" * 5000 + b"}"
    message["text"] = "x" * (1100 * 1024)  # over the 1 MiB a record may have
    return "too_large", json.dumps(message).encode()
