"""What an interaction's state and history hold in Redis (issue 15's memory per
interaction, bench/memory.py), on the real server: compact history entries read back as
the change records they store, entries and state hashes of the former layout (a deployment
upgraded in place) read as before, and state hashes stay in the compact listpack encoding;
a ticket's history alike."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from devstack.harness.events import Who
from devstack.harness.sandbox import (
    human_until,
    publish_agent,
    redis_now_ms,
    wait_for_lease_expiry,
    wait_until,
)
from schemas import HandoffCommand, TicketChanged
from services.handoff.api.models import HistoryEntry
from services.handoff.domain.events import change_record
from services.handoff.domain.modes import ModeState
from services.handoff.domain.routing import RouteRequest
from services.handoff.domain.tickets import Ticket
from services.handoff.service.commands import API, CommandResult, CommandService
from services.handoff.state.history import FIELDS
from services.handoff.state.keys import (
    InteractionKeys,
    shard_of,
    ticket_history_key,
    ticket_key,
)
from services.handoff.state.store import ModeStore

pytestmark = pytest.mark.integration
MINUTE_MS = 60_000


async def seeded(store: ModeStore, who: Who, idle_ms: int = 3_600_000) -> dict[str, object]:
    """Human mode with an idle timeout, as a handoff leaves it; returns its change record."""
    now = await redis_now_ms(store)
    request = human_until(who.key, now + idle_ms, now)
    [result] = await store.apply_many([request])
    assert result["status"] == "applied"
    assert request.change is not None
    return request.change


async def route(store: ModeStore, who: Who, event_id: str) -> str:
    [decision] = await store.route_batch(
        [
            RouteRequest(
                ikey=who.key,
                event_id=event_id,
                src=f"t/0/{event_id}",
                turn_json="",
                stateless=False,
            )
        ]
    )
    return decision.mode


async def test_a_history_entry_is_stored_compactly_and_read_as_its_change(
    store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    change = await seeded(store, who)

    [raw] = await store.redis.lrange(InteractionKeys(who.key).history, 0, -1)
    assert json.loads(raw) == [change[f] for f in FIELDS]  # no ikey, no field names
    assert await store.history(who.key) == [change]
    assert await store.history_page(who.key, None, 10) == [change]


async def test_history_entries_of_the_former_layout_read_as_before(
    store: ModeStore, tenant: str
) -> None:
    """An upgraded deployment's history: entries of the former layout (the change record as a
    JSON object), then a compact one; one history, the API's view of each as before."""
    who = Who(tenant, "support")
    back = replace(ModeState(), cause="operator", actor="operator:jane", reason="old",
                   changed_at_ms=1_000, version=1, command_id="c-old")  # fmt: skip
    former = change_record(who.key, ModeState(mode="human"), back, "ev-old")
    await store.redis.lpush(InteractionKeys(who.key).history, json.dumps(former))
    await store.redis.hset(InteractionKeys(who.key).state, mapping=back.to_redis())

    now = await redis_now_ms(store)
    request = human_until(who.key, now + 3_600_000, now)
    request = replace(request, expected_version=1)
    assert request.new_state is not None and request.change is not None
    state = replace(request.new_state, version=2)
    newer = {**request.change, "version": 2}
    [result] = await store.apply_many([replace(request, new_state=state, change=newer)])
    assert result["status"] == "applied"

    assert await store.history(who.key) == [newer, former]
    assert await store.history_page(who.key, 2, 10) == [former]
    views = [HistoryEntry.of(c, MINUTE_MS) for c in await store.history_page(who.key, None, 10)]
    assert [(v.state_version, v.to_mode, v.reason) for v in views] == [
        (2, "human", "seeded"),
        (1, "ai", "old"),
    ]


async def test_a_timeout_records_its_change_with_its_due_time(
    store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await seeded(store, who, idle_ms=200)
    due = (await store.read_state(who.key)).expires_at_ms
    await wait_for_lease_expiry(store, who)
    await store.expire_due([shard_of(who.key)], 100)

    async def reverted() -> bool:
        return (await store.read_state(who.key)).mode == "ai"

    await wait_until(reverted, 10, "the revert")  # the stack's timeout workers may take it

    latest = (await store.history(who.key))[0]
    assert (latest["ikey"], latest["cause"], latest["to_mode"]) == (who.key, "timeout", "ai")
    assert (latest["due_at"], latest["version"]) == (due, 2)
    entry = HistoryEntry.of(latest, MINUTE_MS)
    assert (entry.cause, entry.from_mode, entry.state_version) == ("timeout", "human", 2)


async def test_a_rebuilt_history_reads_as_the_changes_it_was_given(
    store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    changes = [
        change_record(who.key, ModeState(), replace(ModeState(), version=n, reason=f"r{n}"),
                      f"ev-{n}")
        for n in (1, 2)
    ]  # fmt: skip
    await store.append_history({who.key: changes})
    assert await store.history(who.key) == changes[::-1]


async def test_the_state_keeps_only_fields_with_a_value_in_a_listpack(
    store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await seeded(store, who)
    k = InteractionKeys(who.key)

    stored = await store.redis.hgetall(k.state)
    assert "" not in stored.values() and {"mode", "version", "expires_at"} <= stored.keys()
    assert await store.redis.object("encoding", k.state) == "listpack"
    assert (await store.read_state(who.key)).mode == "human"
    assert await route(store, who, "m1") == "human"


async def test_a_state_hash_a_long_value_made_a_hashtable_is_compact_again_when_written(
    store: ModeStore, tenant: str
) -> None:
    """A return context (R20) longer than the listpack's values turns the hash into a
    hashtable; the next mode change writes it anew."""
    who = Who(tenant, "support")
    await seeded(store, who)
    k = InteractionKeys(who.key)
    await store.redis.hset(k.state, "pending_context", "x" * 5_000)
    assert await store.redis.object("encoding", k.state) == "hashtable"

    now = await redis_now_ms(store)
    again = human_until(who.key, now + 3_600_000, now)
    assert again.new_state is not None and again.change is not None
    [result] = await store.apply_many([
        replace(again, command_id="again", expected_version=1,
                new_state=replace(again.new_state, version=2),
                change={**again.change, "version": 2})
    ])  # fmt: skip
    assert result["status"] == "applied"
    assert await store.redis.object("encoding", k.state) == "listpack"
    assert "pending_context" not in await store.redis.hgetall(k.state)


async def test_a_state_hash_of_the_former_layout_routes_as_before(
    store: ModeStore, tenant: str
) -> None:
    """Every field stored, the empty ones as '' (the former layout): read and routed alike."""
    who = Who(tenant, "support")
    now = await redis_now_ms(store)
    request = human_until(who.key, now + 3_600_000, now)
    assert request.new_state is not None
    k = InteractionKeys(who.key)
    former = {**request.new_state.to_redis(), "pending_context": ""}
    assert "" in former.values()
    await store.redis.hset(k.state, mapping=former)
    await store.redis.set(k.lease, 1, px=3_600_000)

    assert await store.read_state(who.key) == request.new_state
    assert await route(store, who, "m1") == "human"


def ticket_events(result: CommandResult) -> list[dict[str, Any]]:
    found = [json.loads(value) for role, _, value in result.outputs if role == "events"]
    return [e for e in found if e["type"] == "ticket_changed"]


async def test_a_tickets_history_is_stored_compactly_and_read_as_its_events(
    store: ModeStore, tenant: str
) -> None:
    """Opened by a handoff (the event from Python), closed by the return (from handoff.lua):
    each entry reads back as the TicketChanged that was emitted."""
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=30)
    service = CommandService(store, minute_ms=MINUTE_MS, ticket_turns=5)
    to_human = HandoffCommand.model_validate(who.command("to_human"))
    opened = ticket_events(await service.execute(to_human, f"t/0/{tenant}-1", API))
    ticket_id = opened[0]["ticket_id"]
    to_ai = HandoffCommand.model_validate(who.command("to_ai", source="operator"))
    closed = ticket_events(await service.execute(to_ai, f"t/0/{tenant}-2", API))
    assert [e["status"] for e in opened + closed] == ["queued", "closed"]
    ids = ("tenant_id", "agent_id", "user")
    assert [closed[0][f] for f in ids] == [opened[0][f] for f in ids]  # from the ticket's ikey
    tag = InteractionKeys(who.key).tag
    stored = await store.redis.hgetall(ticket_key(tag, ticket_id))
    assert "ids" not in stored and "" not in stored.values()  # what its ikey says, empties

    raw = await store.redis.lrange(ticket_history_key(tag, ticket_id), 0, -1)
    assert all(tenant not in entry and ticket_id not in entry for entry in raw)
    history = await store.ticket_history(ticket_id)
    assert history == opened + closed
    assert [TicketChanged.model_validate(e).status for e in history] == ["queued", "closed"]


async def handed_off(store: ModeStore, tenant: str) -> tuple[Who, dict[str, Any], Ticket]:
    """An interaction handed off to a queue (an agent with an idle timeout): its TicketOpened
    event and its ticket."""
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=30)
    service = CommandService(store, minute_ms=MINUTE_MS, ticket_turns=5)
    to_human = HandoffCommand.model_validate(who.command("to_human"))
    [opened] = ticket_events(await service.execute(to_human, f"t/0/{tenant}-1", API))
    ticket = await store.ticket(opened["ticket_id"])
    assert ticket is not None
    return who, opened, ticket


async def test_a_tickets_history_of_the_former_layout_and_a_rebuilt_one_read_alike(
    store: ModeStore, tenant: str
) -> None:
    who, opened, ticket = await handed_off(store, tenant)
    ticket_id = ticket.ticket_id
    tag = InteractionKeys(who.key).tag
    claimed = {**opened, "event_id": "tc-2", "from_status": "queued", "status": "assigned",
               "assignee": "operator:jane", "ticket_version": 2, "position": None}  # fmt: skip
    await store.redis.lpush(ticket_history_key(tag, ticket_id), json.dumps(claimed))
    assert await store.ticket_history(ticket_id) == [opened, claimed]

    await store.redis.delete(ticket_key(tag, ticket_id))
    changes = [json.dumps(opened), json.dumps(claimed)]
    assert await store.restore_ticket(ticket, changes, None)
    raw = await store.redis.lrange(ticket_history_key(tag, ticket_id), 0, -1)
    assert all(isinstance(json.loads(entry), list) for entry in raw)
    assert await store.ticket_history(ticket_id) == [opened, claimed]


async def test_a_ticket_hash_of_the_former_layout_reads_and_closes_as_before(
    store: ModeStore, tenant: str
) -> None:
    """Every field stored (the empty ones as ''), and the interaction ids as `ids` JSON."""
    who, opened, ticket = await handed_off(store, tenant)
    key = ticket_key(InteractionKeys(who.key).tag, ticket.ticket_id)
    ids = {f: opened[f] for f in ("tenant_id", "agent_id", "user")}
    await store.redis.hset(key, mapping={**ticket.to_redis(), "ids": json.dumps(ids)})
    assert await store.ticket(ticket.ticket_id) == ticket

    to_ai = HandoffCommand.model_validate(who.command("to_ai", source="operator"))
    service = CommandService(store, minute_ms=MINUTE_MS, ticket_turns=5)
    [closed] = ticket_events(await service.execute(to_ai, f"t/0/{tenant}-2", API))
    assert {f: closed[f] for f in ids} == ids
    assert (closed["status"], closed["from_status"]) == ("closed", "queued")
    after = await store.ticket(ticket.ticket_id)
    assert after is not None and after.status == "closed"
