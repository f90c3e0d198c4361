"""The writer side of tickets and queues (R14-R18) in Redis.

A ticket's hash and its history sit on its interaction's shard, so every ticket step is one
function call with the mode state (handoff.lua `ho_ticket_step`, `ho_apply`,
`ho_pickup_fire`, `ho_ticket_notice`). What spans shards lives on per tenant/queue slots:
the queue's index of open tickets, its recent pickups, the tenant's teammates seen lately
and its queue settings. A new ticket's index entry is written just before the step that
creates it (an entry without a ticket is dropped only after INDEX_GRACE_MS); a transfer's
right after its step, and the timeout worker's waiting sweep re-adds every open ticket of
its shards to its queue's index, which repairs a write lost to a crash. Reads treat the
ticket's hash as the truth and drop entries it contradicts (ended, or in another queue).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from redis.exceptions import ResponseError

from schemas import OutboundMessage
from services.handoff.domain.events import outbound_turn
from services.handoff.domain.tickets import QueueSettings, Ticket, shard_of_ticket
from services.handoff.state.history import decode_ticket_entry, encode_ticket_entry
from services.handoff.state.keys import (
    outbox_key,
    pickup_key,
    queue_pickups_key,
    queue_tickets_key,
    queues_key,
    shard_tag,
    shard_tickets_key,
    teammates_key,
    tenant_tag,
    ticket_history_key,
    ticket_key,
)
from services.handoff.state.reader import StateClient

log = structlog.get_logger()

# A queue index entry whose ticket does not exist (yet) is dropped only when older than this:
# the entry of a new ticket is written just before the step that creates it.
INDEX_GRACE_MS = 60_000
PICKUPS_KEPT_MS = 24 * 3600 * 1000
TICKET_KEEP_MS = 30 * 24 * 3600 * 1000  # an ended ticket's hash and history (as handoff.lua)
Outputs = list[tuple[str, str, str]]  # (role, key, value JSON): see commands.Role


class QueueVersionConflictError(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"the queue is at version {current}")
        self.current = current


def test_clock_key(tenant_id: str) -> str:
    """Test only (HANDOFF_TEST_CLOCK): ms added to Redis TIME for the tenant's opening hours."""
    return f"ho:testclock:{{{tenant_id}}}"


@dataclass(frozen=True)
class QueueRecord:
    queue: str
    settings: QueueSettings
    version: int
    updated_at: str
    updated_by: str


def _queue_record(queue: str, raw: str, version: str | None) -> QueueRecord:
    doc = json.loads(raw)
    return QueueRecord(
        queue=queue,
        settings=QueueSettings.model_validate(doc["settings"]),
        version=int(version or 1),
        updated_at=doc.get("updated_at", ""),
        updated_by=doc.get("updated_by", ""),
    )


def queue_records(raw: dict[str, str]) -> dict[str, QueueRecord]:
    """The tenant's queue hash as records; a queue whose stored settings no longer validate
    is left out (with a warning) rather than blocking every handoff of the tenant."""
    records = {}
    for name, value in raw.items():
        if name.endswith("@version"):
            continue
        try:
            records[name] = _queue_record(name, value, raw.get(f"{name}@version"))
        except (ValueError, KeyError):
            log.warning("queue_settings_unreadable", queue=name)
    return records


def sent_turns(outputs: Outputs) -> list[str]:
    """The transcript turns of the messages `outputs` send to the user: everything an
    identified user is told is recorded, as the handoff and return notices are."""
    return [
        outbound_turn(OutboundMessage.model_validate_json(value)).model_dump_json()
        for role, _, value in outputs
        if role == "outbound"
    ]


def _tag_of(ticket_id: str) -> str | None:
    shard = shard_of_ticket(ticket_id)
    return None if shard is None else shard_tag(shard)


class TicketStore(StateClient):
    async def redis_now_ms(self, key: str) -> int:
        [now] = await self._pipeline("time", [("FCALL", "ho_time", 1, key)])
        return int(now[0]) * 1000 + int(now[1]) // 1000

    # Queues ----------------------------------------------------------------------------------

    async def queue(self, tenant_id: str, queue: str) -> QueueRecord | None:
        settings, version = cast(
            list[str | None],
            await self.redis.hmget(queues_key(tenant_id), [queue, f"{queue}@version"]),
        )
        if not settings:
            return None
        return queue_records({queue: settings, f"{queue}@version": version or "1"}).get(queue)

    async def queues(self, tenant_id: str) -> list[QueueRecord]:
        raw = cast(dict[str, str], await self.redis.hgetall(queues_key(tenant_id)))
        return sorted(queue_records(raw).values(), key=lambda r: r.queue)

    async def put_queue(
        self,
        tenant_id: str,
        queue: str,
        settings: QueueSettings,
        updated_at: str,
        updated_by: str,
        expected_version: int | None,
        with_outputs: Sequence[tuple[str, str, str]] = (),
    ) -> int:
        """Stores the settings as a new version; `with_outputs` (the audit record) go to the
        outbox in the same step."""
        doc = {
            "settings": settings.model_dump(mode="json"),
            "updated_at": updated_at,
            "updated_by": updated_by,
        }
        tag = tenant_tag(tenant_id)
        call = (
            "FCALL", "ho_queue_put", 2, queues_key(tenant_id), outbox_key(tag), tag, queue,
            json.dumps(doc), "" if expected_version is None else expected_version,
            json.dumps(list(with_outputs)),
        )  # fmt: skip
        try:
            [version] = await self._pipeline("queue_put", [call])
        except ResponseError as exc:
            found = re.search(r"VERSION_CONFLICT (\d+)", str(exc))
            if found:
                raise QueueVersionConflictError(int(found.group(1))) from exc
            raise
        return int(version)

    async def test_clock_offset(self, tenant_id: str) -> int:
        raw = await self.redis.get(test_clock_key(tenant_id))
        return int(raw) if raw else 0

    # Tickets ---------------------------------------------------------------------------------

    async def ticket(self, ticket_id: str) -> Ticket | None:
        tag = _tag_of(ticket_id)
        if tag is None:
            return None
        raw = await self.redis.hgetall(ticket_key(tag, ticket_id))
        return Ticket.from_redis(cast(dict[str, str], raw))

    async def ticket_history(self, ticket_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The ticket's TicketChanged events, oldest first; none once its hash is gone (they
        expire together), whose interaction key the compact entries need (history.py)."""
        tag = _tag_of(ticket_id)
        if tag is None:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(ticket_key(tag, ticket_id), "ikey")
            pipe.lrange(ticket_history_key(tag, ticket_id), 0, limit - 1)
            ikey, raw = await pipe.execute()
        if not ikey:
            return []
        return [decode_ticket_entry(item, ticket_id, ikey) for item in reversed(raw)]

    async def ticket_step(
        self,
        ticket: Ticket,
        after: Ticket,
        change_json: str,
        outputs: Outputs,
        pickup_due_ms: int | None,
    ) -> str:
        """Writes one ticket action if the ticket is still at its version; its outputs go to
        the shard outbox in the same step. Returns `applied`, `conflict` or `missing`."""
        tag = _tag_of(ticket.ticket_id)
        assert tag is not None
        changed = {k: v for k, v in after.to_redis().items() if ticket.to_redis().get(k) != v}
        changed["version"] = str(after.version)
        call = (
            "FCALL", "ho_ticket_step", 2, ticket_key(tag, ticket.ticket_id), outbox_key(tag),
            tag, ticket.ticket_id, ticket.version, json.dumps(changed), change_json,
            json.dumps(outputs), str(after.created_at_ms) if after.open else "",
            "" if pickup_due_ms is None else pickup_due_ms, self.limits.history_cap,
            self.limits.transcript_cap, json.dumps(sent_turns(outputs)),
        )  # fmt: skip
        [raw] = await self._pipeline("ticket_step", [call])
        return str(json.loads(raw)["status"])

    async def restore_ticket(
        self, ticket: Ticket, changes: Sequence[str], pickup_due_ms: int | None
    ) -> bool:
        """Writes a ticket rebuilt from its TicketChanged events (oldest first), if Redis has
        none (`handoffctl state rebuild`); False: it had one."""
        tag = _tag_of(ticket.ticket_id)
        assert tag is not None
        key = ticket_key(tag, ticket.ticket_id)
        if await self.redis.exists(key):
            return False
        history = ticket_history_key(tag, ticket.ticket_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=cast(Any, ticket.to_new_redis()))
            pipe.delete(history)
            for change in changes:
                pipe.lpush(history, encode_ticket_entry(change))  # newest first, as steps push
            if ticket.open:
                pipe.zadd(shard_tickets_key(tag), {ticket.ticket_id: ticket.created_at_ms})
                pipe.zadd(
                    queue_tickets_key(ticket.tenant_id, ticket.queue),
                    {ticket.ticket_id: ticket.created_at_ms},
                )
                if pickup_due_ms is not None:
                    pipe.zadd(pickup_key(tag), {ticket.ticket_id: pickup_due_ms})
            else:
                pipe.pexpire(key, TICKET_KEEP_MS)
                pipe.pexpire(history, TICKET_KEEP_MS)
            await pipe.execute()
        return True

    # The queue index (cross-slot, self-healing) ----------------------------------------------

    async def index_ticket(self, tenant_id: str, queue: str, ticket_id: str, at_ms: int) -> None:
        await self.redis.zadd(queue_tickets_key(tenant_id, queue), {ticket_id: at_ms})

    async def index_tickets(self, tickets: Sequence[Ticket]) -> None:
        """Re-adds open tickets to their queues' indexes (the waiting sweep's repair)."""
        if not tickets:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for t in tickets:
                pipe.zadd(queue_tickets_key(t.tenant_id, t.queue), {t.ticket_id: t.created_at_ms})
            await pipe.execute()

    async def unindex_ticket(self, tenant_id: str, queue: str, ticket_id: str) -> None:
        await self.redis.zrem(queue_tickets_key(tenant_id, queue), ticket_id)

    async def queue_tickets(self, tenant_id: str, queue: str, now_ms: int) -> list[Ticket]:
        """The queue's open tickets (queued and assigned), oldest handoff first. Entries the
        tickets' hashes contradict (ended, or in another queue now) are dropped."""
        key = queue_tickets_key(tenant_id, queue)
        entries = cast(
            list[tuple[str, float]], await self.redis.zrange(key, 0, -1, withscores=True)
        )
        if not entries:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id, _ in entries:
                tag = _tag_of(ticket_id)
                pipe.hgetall(ticket_key(tag, ticket_id) if tag else "ho:none")
            raws = await pipe.execute()
        found, stale = [], []
        for (ticket_id, score), raw in zip(entries, raws, strict=True):
            ticket = Ticket.from_redis(raw)
            if ticket is None:
                if score < now_ms - INDEX_GRACE_MS:
                    stale.append(ticket_id)
            elif ticket.open and ticket.queue == queue and ticket.tenant_id == tenant_id:
                found.append(ticket)
            else:
                stale.append(ticket_id)
        if stale:
            await self.redis.zrem(key, *stale)
        return sorted(found, key=lambda t: (t.created_at_ms, t.ticket_id))

    # Statistics ------------------------------------------------------------------------------

    async def record_pickup(
        self, tenant_id: str, queue: str, ticket: Ticket, wait_ms: int, at_ms: int
    ) -> None:
        key = queue_pickups_key(tenant_id, queue)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {f"{wait_ms}:{ticket.ticket_id}:{ticket.version}": at_ms})
            pipe.zremrangebyscore(key, "-inf", at_ms - PICKUPS_KEPT_MS)
            await pipe.execute()

    async def pickup_waits(self, tenant_id: str, queue: str, since_ms: int) -> list[int]:
        """Pickup waits (ms) of the queue's pickups since `since_ms`."""
        members = await self.redis.zrange(
            queue_pickups_key(tenant_id, queue), since_ms, "+inf", byscore=True
        )
        return [int(m.split(":", 1)[0]) for m in cast(list[str], members)]

    async def teammate_seen(self, tenant_id: str, sub: str, at_ms: int) -> None:
        await self.redis.zadd(teammates_key(tenant_id), {sub: at_ms})

    async def teammates_online(self, tenant_id: str, since_ms: int) -> int:
        key = teammates_key(tenant_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", f"({since_ms}")
            pipe.zcard(key)
            _, count = await pipe.execute()
        return int(count)

    # Sweeps of the timeout worker (R16, R18) -------------------------------------------------

    async def due_pickups(self, shards: Iterable[int], now_ms: int, limit: int) -> list[Ticket]:
        """The tickets of these shards whose pickup target passed."""
        tags = [shard_tag(s) for s in shards]
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.zrange(pickup_key(tag), "-inf", now_ms, byscore=True, offset=0, num=limit)
            due = await pipe.execute()
        return await self._tickets(
            [(tag, t) for tag, ids in zip(tags, due, strict=True) for t in ids]
        )

    async def shard_open_tickets(self, shards: Iterable[int], limit: int) -> list[Ticket]:
        tags = [shard_tag(s) for s in shards]
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag in tags:
                pipe.zrange(shard_tickets_key(tag), 0, limit - 1)
            found = await pipe.execute()
        return await self._tickets(
            [(tag, t) for tag, ids in zip(tags, found, strict=True) for t in ids]
        )

    async def _tickets(self, refs: Sequence[tuple[str, str]]) -> list[Ticket]:
        if not refs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag, ticket_id in refs:
                pipe.hgetall(ticket_key(tag, ticket_id))
            raws = await pipe.execute()
        return [t for t in (Ticket.from_redis(r) for r in raws) if t is not None]

    async def fire_pickup(
        self,
        ticket: Ticket,
        fields: dict[str, str],
        change_json: str,
        outputs: Outputs,
        back_to_ai: bool,
        reason: str,
    ) -> str:
        """R18, once: `fired`, or `stale` / `gone` when the ticket changed or another
        worker fired it."""
        tag = _tag_of(ticket.ticket_id)
        assert tag is not None
        call = (
            "FCALL", "ho_pickup_fire", 2, pickup_key(tag), outbox_key(tag),
            tag, ticket.ticket_id, ticket.version, json.dumps(fields), change_json,
            json.dumps(outputs), "1" if back_to_ai else "0", reason, self.limits.history_cap,
            self.limits.transcript_cap, json.dumps(sent_turns(outputs)),
        )  # fmt: skip
        [result] = await self._pipeline("pickup_fire", [call])
        return str(result)

    async def notify_position(
        self, ticket: Ticket, position: int, min_interval_ms: int, outputs: Outputs
    ) -> bool:
        """R16: sends the notice if the position improved and the last one is old enough."""
        tag = _tag_of(ticket.ticket_id)
        assert tag is not None
        call = (
            "FCALL", "ho_ticket_notice", 2, ticket_key(tag, ticket.ticket_id), outbox_key(tag),
            tag, ticket.ticket_id, position, min_interval_ms, json.dumps(outputs),
            json.dumps(sent_turns(outputs)), self.limits.transcript_cap,
        )  # fmt: skip
        [sent] = await self._pipeline("ticket_notice", [call])
        return bool(int(sent))
