"""`handoffctl replay`: route a window of live traffic again, in a sandbox, and compare.

1. Seeds a Redis database of the sandbox's own with the mode state as it was when the window
   opened (the state rebuild, from handoff.events up to that moment), unless --no-seed.
2. Copies the window of chat.inbound into `{to_prefix}chat.inbound`, each record to the same
   partition, keys and order kept (--rate limits it).
3. With --route, runs a router on the sandbox (its prefix, its Redis database) until every
   copied record is routed.
4. With --compare, prints each event routed differently from the original run.

It never writes to the live topics or the live Redis database: the prefix and the database
must differ from the live ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from services.cli.reading import Rec, read_topics, since_option
from services.cli.state import rebuild_state
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics
from services.handoff.state.store import ModeStore

console = Console(highlight=False)


def sandbox_settings(live: CommonSettings, prefix: str, redis_db: int) -> CommonSettings:
    base = live.redis_url.rsplit("/", 1)[0]
    return live.model_copy(update={"topic_prefix": prefix, "redis_url": f"{base}/{redis_db}"})


def routing_of(records: list[Rec]) -> dict[str, tuple[str, str | None, int]]:
    """event_id -> (mode, cause, state version) of the routed messages among `records`."""
    routed = {}
    for rec in records:
        if rec.type == "routed_message" and rec.value:
            r = rec.value["routing"]
            routed[rec.value["message"]["event_id"]] = (r["mode"], r["cause"], r["state_version"])
    return routed


async def copy_window(
    records: list[Rec], sandbox: CommonSettings, rate: float | None, progress: Progress
) -> None:
    producer = AIOKafkaProducer(**aiokafka_options(sandbox), enable_idempotence=True)
    await producer.start()
    task = progress.add_task("copying", total=len(records))
    started = time.monotonic()
    try:
        for n, rec in enumerate(records):
            if rate:  # keep to the rate: the n-th record not before n/rate seconds
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            key = rec.key.encode() if rec.key is not None else None
            await producer.send(sandbox.topics.inbound, rec.raw, key=key, partition=rec.partition)
            progress.advance(task)
        await producer.flush()
    finally:
        await producer.stop()


def start_router(sandbox: CommonSettings) -> subprocess.Popen[bytes]:
    # The live stack's settings stay behind, except how to reach Kafka and Redis securely
    # (R23: the credentials and TLS files), which the sandbox shares.
    transport = ("HANDOFF_KAFKA_", "HANDOFF_REDIS_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HANDOFF_") or k.startswith(transport)
    }
    env.update(
        HANDOFF_KAFKA_BOOTSTRAP=sandbox.kafka_bootstrap,
        HANDOFF_REDIS_URL=sandbox.redis_url,
        HANDOFF_TOPIC_PREFIX=sandbox.topic_prefix,
        HANDOFF_INSTANCE_ID=f"replay-{uuid.uuid4().hex[:8]}",
        HANDOFF_ROUTER_HTTP_PORT="0",
        HANDOFF_LOG_LEVEL="WARNING",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return subprocess.Popen([sys.executable, "-m", "services.router"], env=env)


async def routed_in(settings: CommonSettings, ids: set[str]) -> list[Rec]:
    topics = [settings.topics.ai_requests, settings.topics.human_queue]
    return [
        r async for r in read_topics(settings, topics)
        if r.type == "routed_message" and r.value and r.value["message"]["event_id"] in ids
    ]  # fmt: skip


async def wait_routed(sandbox: CommonSettings, ids: set[str], within: float) -> list[Rec]:
    deadline = time.monotonic() + within
    while True:
        routed = await routed_in(sandbox, ids)
        if len(routing_of(routed)) >= len(ids) or time.monotonic() > deadline:
            return routed
        await asyncio.sleep(0.5)  # the poll interval of this wait


def differences(original: dict[str, Any], replayed: dict[str, Any]) -> list[dict[str, Any]]:
    diffs = []
    for event_id in sorted(original.keys() | replayed.keys()):
        before, after = original.get(event_id), replayed.get(event_id)
        if before is None or after is None or before[:2] != after[:2]:
            diffs.append({"event_id": event_id, "original": before, "replay": after})
    return diffs


def replay(
    to_prefix: Annotated[str, typer.Option(help="sandbox topic prefix, e.g. replay.")],
    topic: Annotated[str, typer.Option(help="the topic to replay")] = "chat.inbound",
    since: Annotated[str | None, typer.Option(help="window start: 15m, 2h, 1d or ISO")] = None,
    until: Annotated[str | None, typer.Option(help="window end: a duration ago or ISO")] = None,
    redis_db: Annotated[int, typer.Option(help="the sandbox's Redis database")] = 15,
    rate: Annotated[float | None, typer.Option(help="records per second at most")] = None,
    seed: Annotated[bool, typer.Option(help="seed the state as it was at the window start")] = True,
    route: Annotated[bool, typer.Option(help="run a sandbox router until all are routed")] = True,
    compare: Annotated[bool, typer.Option(help="print what was routed differently")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the routing")] = 120,
    json_out: Annotated[bool, typer.Option("--json", help="the differences as JSON")] = False,
) -> None:
    """Copy a window of chat.inbound into a sandbox prefix, route it there, compare."""
    live = CommonSettings()
    sandbox = sandbox_settings(live, to_prefix, redis_db)
    if topic not in ("chat.inbound", live.topics.inbound):
        raise typer.BadParameter("only chat.inbound can be replayed (it is what the router reads)")
    if not to_prefix or to_prefix == live.topic_prefix or sandbox.redis_url == live.redis_url:
        raise typer.BadParameter("the sandbox needs a prefix and a Redis database of its own")
    since_ms, until_ms = since_option(since), since_option(until, "--until")

    async def run() -> list[dict[str, Any]] | None:
        with Progress(console=console, transient=True) as progress:
            window = [r async for r in read_topics(live, [live.topics.inbound], since_ms, until_ms)]
            partitions = max((r.partition for r in window), default=0) + 1
            await ensure_topics(
                sandbox.model_copy(
                    update={"topic_partitions": max(partitions, live.topic_partitions)}
                )
            )
            store = ModeStore.from_settings(sandbox)
            await store.load_functions()
            try:
                await store.redis.flushdb()  # the sandbox database only
                if seed:
                    opened_at = min((r.timestamp_ms for r in window), default=since_ms)
                    await rebuild_state(live, store, progress, until_ms=opened_at)
            finally:
                await store.close()
            await copy_window(window, sandbox, rate, progress)
        console.print(f"copied {len(window)} record(s) to {sandbox.topics.inbound}")
        ids = {str(r.value["event_id"]) for r in window if r.value and "event_id" in r.value}
        if not route:
            return None
        router = start_router(sandbox)
        try:
            replayed = routing_of(await wait_routed(sandbox, ids, timeout))
        finally:
            router.terminate()
            router.wait(30)
        console.print(f"routed {len(replayed)} of {len(ids)} in the sandbox")
        if not compare:
            return None
        return differences(routing_of(await routed_in(live, ids)), replayed)

    diffs = asyncio.run(run())
    if diffs is None:
        return
    if json_out:
        print(json.dumps(diffs))
        return
    if not diffs:
        console.print("[green]no differences[/]: every event was routed as in the original run")
        return
    table = Table("event_id", "original (mode, cause, v)", "replay (mode, cause, v)")
    for d in diffs:
        table.add_row(d["event_id"], str(d["original"]), str(d["replay"]))
    console.print(table)
    console.print(f"[yellow]{len(diffs)} event(s) routed differently[/]")
