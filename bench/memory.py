"""Redis bytes per interaction, from MEMORY USAGE of its keys (`make bench`).

    .venv/bin/python -m bench.memory

Three shapes of interaction, 1,000 of each, each after one routed message (so with one
dedupe marker and a one-turn transcript): in AI mode never changed; in human mode with an
idle timeout (state, lease, deadline entry, history); and with a 50-turn transcript. The
per-message dedupe marker is reported apart: it lives `HANDOFF_DEDUPE_TTL_HOURS`, whatever
the interaction. The router's RSS over a million messages is in route_throughput.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import local_stack, save
from devstack.harness.sandbox import human_until, redis_now_ms
from services.handoff.domain.routing import RouteRequest
from services.handoff.state.keys import InteractionKeys, user_agents_key
from services.handoff.state.store import ModeStore

COUNT = 1_000


def turn(n: int) -> str:
    return json.dumps({
        "event_id": f"e{n}", "conversation_id": "c1", "role": "user",
        "text": "Hello, I have a question about my last invoice and the delivery date.",
        "attachments": [], "at": "2026-11-25T10:00:00Z",
    })  # fmt: skip


async def usage(store: ModeStore, keys: list[str]) -> int:
    async with store.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    return sum(int(s or 0) for s in sizes)


async def interaction_bytes(store: ModeStore, ikey: str, event_ids: list[str]) -> dict[str, int]:
    k = InteractionKeys(ikey)
    tenant, _, channel, user = ikey.split(":", 3)
    state = await usage(
        store, [k.state, k.lease, k.history, user_agents_key(tenant, channel, user)]
    )
    deadline = 0
    if await store.redis.zscore(k.deadlines, ikey) is not None:
        deadline = len(ikey) + 16  # a sorted-set entry: member + score, plus skiplist overhead
    return {
        "state_lease_history_index": state + deadline,
        "transcript": await usage(store, [k.transcript]),
        "dedupe_markers": await usage(store, [k.seen(e) for e in event_ids]),
    }


async def shape(store: ModeStore, name: str, human: bool, turns: int) -> dict[str, Any]:
    now = await redis_now_ms(store)
    rows = []
    for n in range(COUNT):
        ikey = f"mem:support:web:{name}{n:05}"
        if human:
            await store.apply_many([human_until(ikey, now + 3_600_000, now)])
        ids = [f"{name}{n}-{t}" for t in range(turns)]
        await store.route_batch([
            RouteRequest(ikey=ikey, event_id=e, src=f"bench/0/{i}", turn_json=turn(i), stateless=False)
            for i, e in enumerate(ids)
        ])  # fmt: skip
        rows.append(await interaction_bytes(store, ikey, ids))
    avg = {k: round(sum(r[k] for r in rows) / COUNT) for k in rows[0]}
    avg["per_message_marker"] = round(avg["dedupe_markers"] / turns)
    return avg


async def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp,
        local_stack(Path(tmp)) as stack,
    ):
        store = ModeStore.from_url(stack.redis.url)
        await store.load_functions()
        figures = {
            "ai_one_message": await shape(store, "a", human=False, turns=1),
            "human_with_timeout_one_message": await shape(store, "h", human=True, turns=1),
            "human_with_50_turn_transcript": await shape(store, "t", human=True, turns=50),
        }
        await store.close()
    save("memory", figures, {"interactions_per_shape": COUNT, "text_bytes_per_turn": 72})


if __name__ == "__main__":
    asyncio.run(main())
