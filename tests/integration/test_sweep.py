"""The timeout sweep's step (ho_expire_due) on real Redis: what it queues in the shard outbox
for the relay. The relay's exactly-once publishing (two workers, one killed mid-sweep) is in
tests/faults/test_timeout_faults.py; R5 end to end in test_rules.py and test_r20_way_back.py."""

from __future__ import annotations

import json
from itertools import count

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import Sandbox, human_until, redis_now_ms, wait_until
from schemas import ModeChanged, OutboundMessage
from services.common.shards import shard_of
from services.handoff.domain.events import mode_changed
from services.handoff.domain.modes import DEFAULT_RETURN_NOTICE
from services.handoff.state.keys import deadlines_key, shard_tag
from services.handoff.state.outbox import TimeoutStore
from services.handoff.state.store import ModeStore

pytestmark = pytest.mark.integration

MINUTE_MS = 60_000


def users_of_one_shard(n: int) -> list[Who]:
    """n users whose interactions share a shard; the first one's external id needs escaping."""
    odd = Who("acme", "support", user='q"uo\\te ü ☃ </x>')
    shard = shard_of(odd.key)
    found = [odd]
    for i in count():
        if len(found) == n:
            return found
        who = Who("acme", "support", user=f"u{i}")
        if shard_of(who.key) == shard:
            found.append(who)
    raise AssertionError("unreachable")


async def test_one_step_reverts_a_shards_expiries_into_shared_entries_the_relay_reads_as_before(
    sandbox: tuple[Sandbox, Bus, ModeStore],
) -> None:
    box, _, store = sandbox
    sweep = TimeoutStore.from_url(box.redis_url)
    users = users_of_one_shard(40)
    shard = shard_of(users[0].key)
    now = await redis_now_ms(store)
    due = now + 200
    seeded = await store.apply_many([human_until(w.key, due, now) for w in users])
    assert {r["status"] for r in seeded} == {"applied"}
    await wait_until(lambda: _past(store, due), 10, "the leases to run out")

    assert await sweep.expire_due([shard], 100) == 40
    assert await sweep.expire_due([shard], 100) == 0, "a deadline was claimed twice"
    assert await store.redis.zcard(deadlines_key(shard_tag(shard))) == 0
    entries = await sweep.read_outboxes({shard: 0}, 100)
    assert [len(e.reverts) for e in entries] == [16, 16, 8]  # REVERTS_PER_ENTRY in handoff.lua
    assert [e.weight for e in entries] == [16, 16, 8]

    reverts = [r for e in entries for r in e.reverts]
    assert sorted(r.ikey for r in reverts) == sorted(w.key for w in users)
    records = [o for e in entries for o in e.outputs]
    assert len(records) == 80 and all(e.traces == [{}] * len(e.outputs) for e in entries)
    for n, revert in enumerate(reverts):
        event_role, event_key, event = records[2 * n]
        notice_role, notice_key, notice = records[2 * n + 1]
        assert (event_role, event_key, notice_role, notice_key) == (
            "events", revert.ikey, "outbound", revert.ikey,
        )  # fmt: skip
        [change] = await store.history(revert.ikey, limit=1)
        # The ModeChanged written in Lua is the one the relay used to build from the change.
        expected = mode_changed(change, MINUTE_MS)
        assert json.loads(event) == json.loads(expected.model_dump_json())
        assert ModeChanged.model_validate_json(event) == expected
        assert (revert.event_id, revert.version, revert.due_at_ms) == (
            change["event_id"], 2, due,
        )  # fmt: skip
        assert change["due_at"] == due and change["version"] == 2 and change["cause"] == "timeout"
        message = OutboundMessage.model_validate_json(notice)
        assert (message.sender, message.text) == ("system", DEFAULT_RETURN_NOTICE)
        assert message.event_id == "ret-" + revert.event_id.removeprefix("tmo-")
        [turn] = await store.transcript(revert.ikey, 10)
        assert (turn["event_id"], turn["role"], turn["text"]) == (
            message.event_id, "system", DEFAULT_RETURN_NOTICE,
        )  # fmt: skip
        state = await store.read_state(revert.ikey)
        assert (state.mode, state.cause, state.version, state.expires_at_ms) == (
            "ai", "timeout", 2, None,
        )  # fmt: skip
    assert json.loads(records[0][2])["user"]["external_id"] == users[0].user
    await sweep.close()


async def _past(store: ModeStore, ms: int) -> bool:
    return await redis_now_ms(store) > ms
