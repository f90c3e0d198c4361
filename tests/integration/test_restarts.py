"""Processes that die: a router SIGKILLed mid-batch, a timeout worker down while a lease expires.

Each test runs its own services on topics of its own prefix and its own Redis database, so
killing them leaves the shared stack alone.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of
from devstack.harness.load import Load, check_routing, outputs_seen
from devstack.harness.sandbox import (
    Sandbox,
    hand_off_all,
    opened,
    publish_agent,
    wait_for_lease_expiry,
    wait_until,
)
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from services.handoff.state.store import ModeStore
from tests.integration.test_ops_cli import handoffctl

pytestmark = pytest.mark.integration


async def test_router_killed_mid_batch_loses_and_duplicates_nothing(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    router = box.service("services.router", "r")
    load = Load([Who("acme", "support", user=f"u{n}") for n in range(30)])
    load.human = await hand_off_all(bus, store, load.users[:10])

    producing = asyncio.create_task(load.produce(bus, 60, chunk=100, pace=0.02))  # 1,800
    await wait_until(lambda: outputs_seen(bus) >= 300, 60, "routing under way")
    router.kill()
    router.start()
    router.wait_ready(60)
    await producing
    await wait_until(lambda: outputs_seen(bus) >= load.total, 90, "all routed")

    check_routing(bus, load)


async def test_timeout_worker_down_while_lease_expires(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    box.service("services.router", "r")
    who, canary = Who("acme", "support", user="bob"), Who("acme", "support", user="carol")
    await publish_agent(store, who, idle=1)  # one second in tests
    command = who.command("to_human")
    await bus.send(bus.topics.commands, command, key=who.key)
    changed = (
        await bus.wait_for(
            bus.topics.events, lambda v: v.get("command_id") == command["command_id"]
        )
    )[0]
    await wait_for_lease_expiry(store, who)
    message = who.message("anyone?")
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, routed = await bus.wait_routed(message["event_id"])

    assert topic == bus.topics.ai_requests  # R5 without the worker
    assert routed["routing"]["cause"] == "timeout"
    assert routed["routing"]["state_version"] == changed["state_version"] + 1
    assert not bus.on(bus.topics.events, lambda v: v.get("cause") == "timeout")

    box.service("services.timeout", "t")
    reverts = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("cause") == "timeout" and v["user"]["external_id"] == "bob",
    )
    assert reverts[0]["state_version"] == changed["state_version"] + 1
    # A later expiry, emitted after the first: the worker has swept again, and bob's is still one.
    c2 = canary.command("to_human")
    await bus.send(bus.topics.commands, c2, key=canary.key)
    await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("cause") == "timeout" and v["user"]["external_id"] == "carol",
        timeout=20,
    )
    assert (
        len(
            bus.on(
                bus.topics.events,
                lambda v: v.get("cause") == "timeout" and v["user"]["external_id"] == "bob",
            )
        )
        == 1
    )


async def test_services_reload_their_redis_functions_when_redis_lost_them(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    box.service("services.router", "r")
    who = Who("acme", "support", user="dana")
    await publish_agent(store, who)

    await store.redis.function_flush()  # what a Redis that lost its data looks like to us
    command = who.command("to_human")
    await bus.send(bus.topics.commands, command, key=who.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == command["command_id"])
    await store.redis.function_flush()
    message = who.message("hello?")
    await bus.send(bus.topics.inbound, message, key=who.key)

    topic, _ = await bus.wait_routed(message["event_id"])
    assert topic == bus.topics.human_queue


async def test_a_command_on_an_expired_lease_sees_the_user_back_on_ai(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    """No user message and no timeout worker since the expiry: the command still sees R5."""
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    who = Who("acme", "support", user="erin")
    await publish_agent(store, who, idle=1)
    first = who.command("to_human")
    await bus.send(bus.topics.commands, first, key=who.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == first["command_id"])
    await wait_for_lease_expiry(store, who)
    again = who.command("to_human", reason="Asked again for a person.")
    await bus.send(bus.topics.commands, again, key=who.key)

    changed = await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") == again["command_id"]
    )
    assert changed[0]["type"] == "mode_changed" and changed[0]["from_mode"] == "ai"
    assert changed[0]["state_version"] == 3  # 1 handoff, 2 timeout revert, 3 this handoff
    history = await store.history(who.key)
    assert [(h["cause"], h["version"]) for h in history] == [
        ("agent", 3),
        ("timeout", 2),
        ("agent", 1),
    ]


async def test_state_rebuilt_from_the_log_after_redis_lost_it(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    """`handoffctl state rebuild` after FLUSHDB: the same operator view, the same routing."""
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    box.service("services.router", "r")
    human, back, leased = (Who("acme", "support", user=u) for u in ("ann", "ben", "cat"))
    await publish_agent(store, human)
    for who in (human, back):
        await hand_off_all(bus, store, [who])
    to_ai = back.command("to_ai", source="operator", reason="Solved.")
    await bus.send(bus.topics.operator_commands, to_ai, key=back.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == to_ai["command_id"])
    await hand_off_all(bus, store, [leased], idle=600)  # ten "minutes" of a second each
    message = leased.message("still here")  # moves the lease on
    await bus.send(bus.topics.inbound, message, key=leased.key)
    await bus.wait_routed(message["event_id"])
    users = (human, back, leased)
    before = [await store.read_state(w.key) for w in users]
    history_before = [await store.history(w.key) for w in users]

    await store.redis.flushdb()
    rebuilt = await handoffctl(box.env, "state", "rebuild")
    again = await handoffctl(box.env, "state", "rebuild")  # nothing left to do

    assert "3 interaction(s) in the log, 3 restored" in rebuilt.stdout
    assert "0 restored" in again.stdout
    assert [await store.read_state(w.key) for w in users] == before
    assert [await store.history(w.key) for w in users] == history_before
    assert sorted(await store.user_agents("acme", "web", "ann")) == ["support"]
    for who, state in zip(users, before, strict=True):
        m = who.message("after the rebuild")
        await bus.send(bus.topics.inbound, m, key=who.key)
        _, routed = await bus.wait_routed(m["event_id"])
        assert (routed["routing"]["mode"], routed["routing"]["state_version"]) == (
            state.mode,
            state.version,
        )


async def test_replay_into_a_sandbox_prefix_and_compare(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    box, bus, store = sandbox
    box.service("services.handoff", "h")
    box.service("services.router", "r")
    human, ai = Who("acme", "support", user="hal"), Who("acme", "support", user="ida")
    await publish_agent(store, human)
    await hand_off_all(bus, store, [human])
    seconds, _ = await store.redis.time()
    window_start = datetime.fromtimestamp(int(seconds) - 1, UTC).isoformat()
    sent = [w.message(f"m{n}") for n in range(5) for w in (human, ai)]
    for m in sent:
        await bus.send(bus.topics.inbound, m, key=key_of(m))
    for m in sent:
        await bus.wait_routed(m["event_id"])

    def replay(prefix: str, *extra: str) -> list[str]:
        return ["replay", "--to-prefix", box.prefix + prefix, "--since", window_start,
                "--redis-db", "15", "--compare", "--json", *extra]  # fmt: skip

    same = await handoffctl(box.env, *replay("r1."))
    unseeded = await handoffctl(box.env, *replay("r2.", "--no-seed"))

    assert json.loads(same.stdout.splitlines()[-1]) == []
    diffs = json.loads(unseeded.stdout.splitlines()[-1])
    human_ids = {m["event_id"] for m in sent if m["user"]["external_id"] == "hal"}
    assert {d["event_id"] for d in diffs} == human_ids  # without the state, they go to the AI
    assert {(tuple(d["original"][:2]), tuple(d["replay"][:2])) for d in diffs} == {
        (("human", "agent"), ("ai", None))
    }
    after = ai.message("after the replays")
    await bus.send(bus.topics.inbound, after, key=ai.key)
    await bus.wait_routed(after["event_id"])
    assert all(len(bus.routed(m["event_id"])) == 1 for m in sent)  # the live run untouched


async def test_at_least_once_mode_routes_and_commits_without_transactions(
    kafka: KafkaProcess, redis_server: RedisProcess, tmp_path: Path
) -> None:
    """HANDOFF_EXACTLY_ONCE=false: same routing; after a restart nothing is routed again."""
    box = Sandbox(kafka, redis_server, tmp_path, HANDOFF_EXACTLY_ONCE="false")
    async with opened(box) as (_, bus, _store):
        router = box.service("services.router", "r")
        who = Who("acme", "support", user="amy")
        first = [who.message(f"m{n}") for n in range(20)]
        for m in first:
            await bus.send(bus.topics.inbound, m, key=who.key)
        for m in first:
            await bus.wait_routed(m["event_id"])
        router.stop()  # clean stop: every acknowledged batch was committed
        router.start()
        router.wait_ready(60)
        last = who.message("after the restart")
        await bus.send(bus.topics.inbound, last, key=who.key)
        await bus.wait_routed(last["event_id"])

        assert all(len(bus.routed(m["event_id"])) == 1 for m in first)
