"""The log holds everything needed to rebuild (issue 11): FLUSHALL, then `state rebuild`.

A Redis server of the test's own loses everything; `handoffctl state rebuild` brings back,
field by field, each interaction's mode state, history and transcript, the users' agents,
and the agent versions with the published one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import hand_off_all, publish_agent, wait_until
from services.handoff.state.keys import SHARDS, outbox_key, shard_tag
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token, mode_path, user_path
from tests.faults.conftest import Stack
from tests.integration.test_ops_cli import handoffctl

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def answered(bus: Bus, who: Who, text: str, **extra: Any) -> None:
    """A user message, routed, and (in AI mode) the agent's reply through the gate."""
    message = who.message(text, **extra)
    await bus.send(bus.topics.inbound, message, key=who.key)
    topic, routed = await bus.wait_routed(message["event_id"])
    if topic == bus.topics.ai_requests:
        reply = who.reply(message["event_id"], routed["routing"]["state_version"], f"re: {text}")
        await bus.send(bus.topics.agent_replies, reply, key=who.key)
        await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == reply["reply_id"])


async def snapshot(store: ModeStore, users: list[Who]) -> dict[str, Any]:
    return {
        "states": [await store.read_state(w.key) for w in users],
        "histories": [await store.history(w.key, limit=100) for w in users],
        "transcripts": [await store.transcript(w.key, 100) for w in users],
        "agents": [await store.user_agents(w.tenant, w.channel, w.user or "") for w in users],
        "versions": await store.agent_versions("acme", "support"),
    }


async def test_everything_rebuilt_from_the_log_after_flushall(stack: Stack) -> None:
    box, bus, store = stack
    api = box.service("services.handoff", "h1")
    box.service("services.router", "r1")
    box.service("services.timeout", "t1")
    ann, ben, cat, dan = (Who("acme", "support", user=u) for u in ("ann", "ben", "cat", "dan"))
    users = [ann, ben, cat, dan]
    await publish_agent(store, ann, idle=600)  # version 1, published (ten one-second minutes)
    await publish_agent(store, ann, publish=False)  # version 2, applied only
    token = make_token(box.env["HANDOFF_API_JWT_SECRET"], tenant="acme", sub="jane")
    async with httpx.AsyncClient(
        base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for who in users:
            await answered(bus, who, "hello")
        await answered(bus, dan, "a Live Test", live_test=True)  # recorded nowhere
        await hand_off_all(bus, store, [ann, ben, cat], idle=600)
        await answered(bus, cat, "still there?")  # moves cat's lease on
        sent = await http.post(
            f"{user_path(ann)}/agents/support/messages", json={"text": "Jane here."}
        )
        assert sent.status_code == 201, sent.text
        back = await http.put(mode_path(ben), json={"mode": "ai", "reason": "Solved."})
        assert back.status_code == 200, back.text
        await answered(bus, ben, "thanks")

    async def outboxes_drained() -> bool:
        lengths = [await store.redis.xlen(outbox_key(shard_tag(s))) for s in range(SHARDS)]
        return sum(lengths) == 0

    # Ben's return moves cat up: the waiting sweep tells her (R16), and the transcript has it.
    await bus.wait_for(
        bus.topics.outbound,
        lambda v: v["user"]["external_id"] == "cat" and "number 2 in line" in v.get("text", ""),
        timeout=30,
    )
    await wait_until(outboxes_drained, 60, "every queued record published")
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("text") == "Jane here.")
    before = await snapshot(store, users)
    assert len(before["transcripts"][0]) >= 4  # hello, re: hello, the notice, Jane here.

    await store.redis.flushall()
    rebuilt = await handoffctl(box.env, "state", "rebuild")
    again = await handoffctl(box.env, "state", "rebuild")

    said, said_again = " ".join(rebuilt.stdout.split()), " ".join(again.stdout.split())
    # Versions 1 and 2 above, and one published per hand_off_all user (3-5).
    assert "5 agent version(s) and 4 transcript(s) restored" in said, said
    assert "0 restored" in said_again and "0 agent version(s) and 0 transcript(s)" in said_again
    after = await snapshot(store, users)
    # Each transcript comes back whole and in order. The rebuild does not know which place in
    # line a waiting user was last told, so the waiting sweep may tell it again after the
    # rebuild (a known limit, README): such later notices may follow, nothing else.
    for was, now in zip(before["transcripts"], after["transcripts"], strict=True):
        assert now[: len(was)] == was
        assert all(t["role"] == "system" and "in line" in t["text"] for t in now[len(was) :])
    for field in before.keys() - {"states", "transcripts"}:
        assert after[field] == before[field], field
    # A lease a teammate's reply moved (R19: ann's) is restored from the reply's record time,
    # at most the relay's delay after the step that moved it; every other field is equal.
    for a, b in zip(after["states"], before["states"], strict=True):
        assert replace(a, expires_at_ms=b.expires_at_ms) == b
        assert 0 <= (a.expires_at_ms or 0) - (b.expires_at_ms or 0) < 2000
