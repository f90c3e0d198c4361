"""No switch without its event (issue 11): operators switch 100 users while Kafka is down.

The operator API stores each accepted change in Redis together with its records (the shard
outbox), so it answers 200 without Kafka; the relay (the timeout worker) publishes the outbox
once Kafka is back. Every 200 is a stored change, and each of its ModeChanged is on
handoff.events exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from devstack.harness.events import Who
from devstack.harness.sandbox import publish_agent, wait_until
from services.handoff.state.keys import SHARDS, outbox_key, shard_tag
from tests.api.helpers import make_token, mode_path
from tests.faults.conftest import Stack

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

USERS = 100


async def test_switches_while_kafka_is_down_reach_the_log_exactly_once(stack: Stack) -> None:
    box, bus, store = stack
    api = box.service("services.handoff", "h1")
    box.service("services.timeout", "t1")
    users = [Who("acme", "support", user=f"op{n:03}") for n in range(USERS)]
    for who in users:
        await publish_agent(store, who)
    token = make_token(box.env["HANDOFF_API_JWT_SECRET"], tenant="acme", sub="jane")
    headers = {"Authorization": f"Bearer {token}"}

    box.kafka.kill()
    async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as http:

        async def switch(who: Who) -> httpx.Response:
            body = {"mode": "human", "reason": "Kafka is down, the desk still works."}
            return await http.put(mode_path(who), json=body)

        answers = await asyncio.gather(*(switch(who) for who in users))
    assert [a.status_code for a in answers] == [200] * USERS, [a.text for a in answers[:3]]
    for who, answer in zip(users, answers, strict=True):  # every 200 is a stored change
        state = await store.read_state(who.key)
        assert (state.mode, state.command_id) == ("human", answer.json()["command_id"])

    box.kafka.start()
    box.kafka.wait_ready(120)
    wanted = {a.json()["command_id"] for a in answers}

    def published() -> Counter[str]:
        return Counter(
            r.value["command_id"]
            for r in bus.records
            if r.topic == bus.topics.events
            and isinstance(r.value, dict)
            and r.value.get("type") == "mode_changed"
            and r.value.get("command_id") in wanted
        )

    async def outboxes_drained() -> bool:
        lengths = [await store.redis.xlen(outbox_key(shard_tag(s))) for s in range(SHARDS)]
        return sum(lengths) == 0

    await wait_until(lambda: len(published()) == USERS, 120, "every ModeChanged published")
    # The relay trims an entry only after its transaction committed: with every outbox empty
    # nothing is left to publish again, so the counts below are final.
    await wait_until(outboxes_drained, 60, "the outboxes drained")
    await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("command_id") in wanted,
        count=USERS,
        timeout=30,
    )
    assert set(published().values()) == {1}
