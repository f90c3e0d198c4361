"""Tickets rebuild from the log too (R15): FLUSHALL, then `state rebuild` brings back each
ticket's status, queue, owner, version, times, resolution note and history, the queue
listing, and the state's ticket and queue."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from devstack.harness.events import Who
from devstack.harness.sandbox import wait_until
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.keys import SHARDS, outbox_key, queues_key, shard_tag
from tests.api.helpers import make_token
from tests.faults.conftest import Stack
from tests.integration.test_ops_cli import handoffctl
from tests.support.tickets import hand_off, publish_queues_agent, ticket_path

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def test_tickets_rebuilt_from_the_log_after_flushall(stack: Stack) -> None:
    box, bus, store = stack
    api = box.service("services.handoff", "h1")
    box.service("services.router", "r1")
    box.service("services.timeout", "t1")
    users = [Who("acme", "support", user=u) for u in ("ann", "ben", "cat", "dan")]
    await publish_queues_agent(store, users[0])
    await store.put_queue("acme", "billing", QueueSettings(pickup_minutes=600), "t", "t", None)
    opened = [await hand_off(bus, who, queue="billing") for who in users]
    ids = [o["ticket_id"] for o in opened]
    token = make_token(box.env["HANDOFF_API_JWT_SECRET"], tenant="acme", sub="jane")
    async with httpx.AsyncClient(
        base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        claim = await http.post(ticket_path("acme", ids[0], "claim"))
        moved = await http.post(ticket_path("acme", ids[1], "transfer"), json={"queue": "default"})
        done = await http.post(
            ticket_path("acme", ids[2], "resolve"),
            json={"note": "Refunded.", "return_to_ai": False},
        )
        assert [r.status_code for r in (claim, moved, done)] == [200, 200, 200]

    async def outboxes_drained() -> bool:
        lengths = [await store.redis.xlen(outbox_key(shard_tag(s))) for s in range(SHARDS)]
        return sum(lengths) == 0

    await wait_until(outboxes_drained, 60, "every queued record published")
    await bus.wait_for(bus.topics.events, lambda v: v.get("ticket_id") == ids[2], count=2)

    async def snapshot() -> dict[str, object]:
        now = await store.redis_now_ms(queues_key("acme"))
        tickets = [await store.ticket(i) for i in ids]
        return {
            # What the log cannot carry: the last better-place notice (R16).
            "tickets": [
                replace(t, notified_position=None, notified_at_ms=None) for t in tickets if t
            ],
            "histories": [await store.ticket_history(i) for i in ids],
            "states": [
                (s.ticket_id, s.queue) for s in [await store.read_state(w.key) for w in users]
            ],
            "billing": [t.ticket_id for t in await store.queue_tickets("acme", "billing", now)],
            "default": [t.ticket_id for t in await store.queue_tickets("acme", "default", now)],
        }

    before = await snapshot()
    assert before["billing"] == [ids[0], ids[3]] and before["default"] == [ids[1]]
    settings = await store.queues("acme")
    await store.redis.flushall()
    for record in settings:  # queue settings are configuration, put back by whoever owns it
        await store.put_queue("acme", record.queue, record.settings, "t", "t", None)
    rebuilt = await handoffctl(box.env, "state", "rebuild")
    again = await handoffctl(box.env, "state", "rebuild")

    assert "4 ticket(s) restored" in " ".join(rebuilt.stdout.split()), rebuilt.stdout
    assert "0 ticket(s) restored" in " ".join(again.stdout.split()), again.stdout
    after = await snapshot()
    for field in before:
        assert after[field] == before[field], field
