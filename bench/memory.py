"""Redis bytes per interaction, from MEMORY USAGE of its keys (`make bench`).

    .venv/bin/python -m bench.memory [--interactions 1000]

Four shapes of interaction, each after one routed message per turn: in AI mode never
changed; handed to a human by the agent (a real to_human through the handoff service's
CommandService, as its Kafka consumer runs it) on an agent with an idle timeout and a queue
with a pickup target, so with its open ticket; handed off and back to the AI by an operator
(its ticket closed, kept TICKET_KEEP_MS); and handed off with a 50-turn transcript.

Per interaction, each of its keys is measured exactly (MEMORY USAGE, SAMPLES 0) and listed.
An interaction's entries in the shared sorted sets (deadlines, users index, the shard's open
tickets and pickup deadlines, the queue's open tickets) are measured as the growth of those
keys over the second half of the interactions, per interaction, with every sorted set in
its skiplist encoding (`zset-max-listpack-entries 0`): what a shard holding more than 128
entries pays, i.e. any deployment of more than ~8k interactions. `resident` is what stays
for as long as the interaction does, without its transcript (`resident_without_ticket`:
without the ticket's hash, history and index entries); the transcript and the markers (one
per message and one per command, kept `HANDOFF_DEDUPE_TTL_HOURS` whatever the interaction)
are reported apart. Redis runs with devstack's settings (the tests', `make run`'s, the
compose files'): `stream-node-max-bytes 1024`, `hash-max-listpack-value 1024`. The router's
RSS over a million messages is in route_throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from bench.common import save
from devstack.harness.events import Who
from devstack.redis import RedisProcess
from schemas import HandoffCommand
from services.handoff.domain.modes import HandoffConfig
from services.handoff.domain.routing import RouteRequest
from services.handoff.domain.tickets import QueueSettings
from services.handoff.service.commands import CommandService, Entry
from services.handoff.state.keys import (
    SHARDS,
    InteractionKeys,
    deadlines_key,
    interactions_index_key,
    pickup_key,
    queue_tickets_key,
    shard_tag,
    shard_tickets_key,
    ticket_history_key,
    ticket_key,
    user_agents_key,
)
from services.handoff.state.store import ModeStore

TENANT, AGENT, QUEUE = "mem", "support", "billing"
TARGET_BYTES = 1024
# The agent's handoff comes on handoff.commands, an operator's return on
# handoff.operator-commands: their outputs ride the consumer's Kafka transaction (nothing in
# the shard outbox).
ENTRIES = {
    "to_human": Entry("agent", topic="handoff.commands"),
    "to_ai": Entry("operator", topic="handoff.operator-commands"),
}
HANDOFF, BACK = ["to_human"], ["to_human", "to_ai"]


def turn(n: int) -> str:
    return json.dumps({
        "event_id": f"e{n}", "conversation_id": "c1", "role": "user",
        "text": "Hello, I have a question about my last invoice and the delivery date.",
        "attachments": [], "at": "2026-11-25T10:00:00Z",
    })  # fmt: skip


async def sizes(store: ModeStore, keys: Sequence[str]) -> list[int]:
    async with store.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return [int(s or 0) for s in await pipe.execute()]


def shared_indexes() -> dict[str, list[str]]:
    """The sorted sets an interaction has entries in, besides keys of its own, by what."""

    def every_shard(index: Callable[[str], str]) -> list[str]:
        return [index(shard_tag(s)) for s in range(SHARDS)]

    return {
        "deadline_entry": every_shard(deadlines_key),
        "users_index_entry": every_shard(interactions_index_key),
        "shard_tickets_entry": every_shard(shard_tickets_key),
        "pickup_entry": every_shard(pickup_key),
        "queue_tickets_entry": [queue_tickets_key(TENANT, QUEUE)],
    }


async def index_bytes(store: ModeStore, indexes: dict[str, list[str]]) -> dict[str, int]:
    return {what: sum(await sizes(store, keys)) for what, keys in indexes.items()}


async def own_keys(store: ModeStore, ikey: str, ticket_id: str | None) -> dict[str, str]:
    """The keys of one interaction that last as long as it does, by what they are (an ended
    ticket's stay TICKET_KEEP_MS)."""
    k = InteractionKeys(ikey)
    _, _, channel, user = ikey.split(":", 3)
    keys = {
        "state": k.state,
        "lease": k.lease,
        "history": k.history,
        "user_agents": user_agents_key(TENANT, channel, user),
    }
    if ticket_id:
        keys["ticket"] = ticket_key(k.tag, ticket_id)
        keys["ticket_history"] = ticket_history_key(k.tag, ticket_id)
    return keys


async def switch(service: CommandService, who: Who, action: str, entry: Entry) -> str:
    """Runs the command; returns its command id."""
    source = "agent" if action == "to_human" else "operator"
    command = HandoffCommand.model_validate(who.command(action, source=source))
    result = await service.execute(command, f"bench/0/{command.command_id}", entry)
    assert result.code == "accepted", result.code
    return command.command_id


TICKET_PARTS = {"ticket", "ticket_history", "shard_tickets_entry", "pickup_entry",
                "queue_tickets_entry"}  # fmt: skip


async def shape(
    store: ModeStore, name: str, switches: Sequence[str], turns: int, count: int
) -> dict[str, Any]:
    """`count` interactions, each through the mode `switches` (to_human, to_ai), then `turns`
    routed messages."""
    service = CommandService(store, minute_ms=60_000, ticket_turns=20)
    indexes = shared_indexes()
    per_key: dict[str, int] = {}
    transcript = markers = 0
    half = count // 2
    at_half: dict[str, int] = {}
    for n in range(count):
        if n == half:
            at_half = await index_bytes(store, indexes)
        who = Who(TENANT, AGENT, user=f"{name}{n:05}")
        k = InteractionKeys(who.key)
        commands, ticket_id = [], None
        for action in switches:
            commands.append(await switch(service, who, action, ENTRIES[action]))
            ticket_id = ticket_id or cast(str | None, await store.redis.hget(k.state, "ticket_id"))
        ids = [f"{name}{n}-{t}" for t in range(turns)]
        await store.route_batch([
            RouteRequest(ikey=who.key, event_id=e, src=f"bench/0/{i}", turn_json=turn(i),
                         stateless=False)
            for i, e in enumerate(ids)
        ])  # fmt: skip
        keys = await own_keys(store, who.key, ticket_id)
        for what, size in zip(keys, await sizes(store, list(keys.values())), strict=True):
            per_key[what] = per_key.get(what, 0) + size
        [transcript_size] = await sizes(store, [k.transcript])
        transcript += transcript_size
        marker_keys = [k.seen(e) for e in ids] + [k.command(c) for c in commands]
        markers += sum(await sizes(store, marker_keys))
    keys_avg = {what: round(total / count) for what, total in per_key.items()}
    for what, size in (await index_bytes(store, indexes)).items():
        # An index the interactions only entered and left again may shrink a few bytes (its
        # hash table resized): that is no entry.
        keys_avg[what] = max(0, round((size - at_half[what]) / (count - half)))
    resident = sum(keys_avg.values())
    without_ticket = sum(v for what, v in keys_avg.items() if what not in TICKET_PARTS)
    return {
        "keys": keys_avg,
        "resident": resident,
        "resident_without_ticket": without_ticket,
        "target_met": resident <= TARGET_BYTES,
        "transcript": round(transcript / count),
        "markers": round(markers / count),
    }


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis")
        redis.start()
        try:
            redis.wait_ready(30)
            store = ModeStore.from_url(redis.url)
            await store.load_functions()
            await store.redis.config_set("zset-max-listpack-entries", 0)
            config = HandoffConfig(
                enabled=True, idle_timeout_minutes=60, notice_text="A person takes over.",
                queues=(QUEUE,),
            )  # fmt: skip
            version = await store.apply_agent_version(
                TENANT, AGENT, config, "2026-01-01T00:00:00Z", "b"
            )
            await store.publish_agent_version(TENANT, AGENT, version)
            await store.put_queue(
                TENANT,
                QUEUE,
                QueueSettings(pickup_minutes=10),
                "2026-01-01T00:00:00Z",
                "bench",
                None,
            )
            figures = {
                "ai_one_message": await shape(store, "a", [], 1, count),
                "human_with_timeout_one_message": await shape(store, "h", HANDOFF, 1, count),
                "ai_again_after_a_handoff": await shape(store, "b", BACK, 1, count),
                "human_with_50_turn_transcript": await shape(store, "t", HANDOFF, 50, count // 10),
            }
            await store.close()
        finally:
            redis.stop()
    save("memory", figures, {
        "interactions_per_shape": count, "of_them_with_50_turns": count // 10,
        "text_bytes_per_turn": 72, "target_bytes": TARGET_BYTES,
    })  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000)
    asyncio.run(main(parser.parse_args().interactions))
