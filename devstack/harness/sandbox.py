"""A test's own set of services: prefixed topics and a Redis database nobody else uses.

The restart and fault tests kill processes; a sandbox keeps that away from the shared stack.
The fault tests go further and give a sandbox a Kafka broker and a Redis server of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from devstack.harness.bus import Bus
from devstack.harness.env import service_env, settings_for
from devstack.harness.events import Who
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from devstack.services import ServiceProcess
from services.agent.store import AgentStore
from services.common.topics import ensure_topics
from services.handoff.domain.events import change_record
from services.handoff.domain.modes import HandoffConfig, ModeState
from services.handoff.state.store import ApplyRequest, ModeStore

NOTICE = "A human teammate from Acme support has taken over this chat."
_next_db = itertools.cycle(range(1, 15))  # 15 is left to the replay tests; flushed on open


class Sandbox:
    """Services of one test on prefixed topics and a Redis database of their own."""

    def __init__(self, kafka: KafkaProcess, redis: RedisProcess, root: Path, **env: str) -> None:
        self.kafka, self.redis = kafka, redis
        self.prefix = f"x{uuid.uuid4().hex[:8]}."
        self.redis_url = redis.url.rsplit("/", 1)[0] + f"/{next(_next_db)}"
        self.env = {**service_env(kafka, self.redis_url, self.prefix), **env}
        self.settings = settings_for(self.env)
        self.root = root
        self.procs: list[ServiceProcess] = []

    def service(self, module: str, instance: str, wait: bool = True) -> ServiceProcess:
        proc = ServiceProcess(module, self.env, self.root, instance)
        self.procs.append(proc)
        proc.start()
        if wait:
            proc.wait_ready(60)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


@asynccontextmanager
async def opened(box: Sandbox) -> AsyncIterator[tuple[Sandbox, Bus, ModeStore]]:
    """Creates the sandbox's topics; yields it with a Bus and a store on its Redis database."""
    await ensure_topics(box.settings)
    bus = Bus(box.settings.kafka_bootstrap, box.settings.topics)
    store = ModeStore.from_url(box.redis_url)
    await store.load_functions()
    await store.redis.flushdb()  # a database used by an earlier sandbox of this session
    await bus.start()
    try:
        yield box, bus, store
    finally:
        box.stop()
        await bus.stop()
        await store.close()


async def publish_agent(
    store: ModeStore, who: Who, enabled: bool = True, idle: int | None = None, publish: bool = True
) -> int:
    config = HandoffConfig(enabled=enabled, idle_timeout_minutes=idle, notice_text=NOTICE)
    n = await store.apply_agent_version(
        who.tenant, who.agent, config, "2026-01-01T00:00:00Z", "test"
    )
    if publish:
        await store.publish_agent_version(who.tenant, who.agent, n)
    return n


async def agent_knows(redis: aioredis.Redis, who: Who, version: int, timeout: float = 30) -> None:
    """Waits until the reference agent has read `version` as `who`'s published one: it learns
    a Publish from handoff.events, a moment after the handoff service (README)."""
    store = AgentStore(redis)

    async def knows() -> bool:
        found = await store.published(who.tenant, who.agent)
        return found is not None and found.version == version

    await wait_until(knows, timeout, f"the agent knowing version {version} of {who.agent}")


async def publish_known(store: ModeStore, who: Who, **options: Any) -> int:
    """`publish_agent`, then waits until the agent (sharing this Redis) knows the version."""
    version = await publish_agent(store, who, **options)
    await agent_knows(store.redis, who, version)
    return version


async def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Polls `condition` (sync or async) until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await _value(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)  # polling interval of the condition, not synchronisation


async def _value(result: Any) -> bool:
    return bool(await result) if inspect.isawaitable(result) else bool(result)


async def wait_for_lease_expiry(store: ModeStore, who: Who) -> None:
    """Waits until Redis' clock, the one the services use, is past the idle lease."""
    expires_ms = (await store.read_state(who.key)).expires_at_ms
    assert expires_ms is not None

    async def lease_expired() -> bool:
        seconds, micros = await store.redis.time()
        return bool(seconds * 1000 + micros // 1000 > expires_ms)

    await wait_until(lease_expired, 10, "the lease to run out")


async def hand_off_all(
    bus: Bus, store: ModeStore, users: list[Who], idle: int | None = None
) -> set[str]:
    """Puts each user in human mode through the handoff service, waits for each change, and
    returns their interaction keys."""
    commands = []
    for who in users:
        await publish_agent(store, who, idle=idle)
        command = who.command("to_human")
        commands.append(command["command_id"])
        await bus.send(bus.topics.commands, command, key=who.key)
    ids = set(commands)
    await bus.wait_for(
        bus.topics.events, lambda v: v.get("command_id") in ids, count=len(ids), timeout=60
    )
    return {who.key for who in users}


async def redis_now_ms(store: ModeStore) -> int:
    seconds, micros = await store.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


def human_until(ikey: str, due_ms: int, now_ms: int) -> ApplyRequest:
    """Human mode with an idle lease running out at `due_ms`, as a handoff would leave it."""
    state = ModeState(
        mode="human", cause="agent", actor="agent:bot@1", reason="seeded",
        changed_at_ms=now_ms, expires_at_ms=due_ms, idle_ms=due_ms - now_ms,
        human_since_ms=now_ms, version=1, command_id=f"seed-{ikey}",
    )  # fmt: skip
    change = change_record(ikey, ModeState(), state, f"seed-{ikey}")
    return ApplyRequest(ikey, f"seed-{ikey}", "seed", 0, state, change, {"code": "accepted"})
