"""The writer of the mode state: commands, desk replies, the desk's index and rebuilds.

Only the handoff service uses all of it. It joins the timeout worker's store (outbox.py) and
the agent versions' (agent_versions.py); the router and the CLI read through reader.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from services.handoff.domain.modes import AgentVersion, ModeState
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.agent_versions import AgentVersionStore
from services.handoff.state.history import encode_entry
from services.handoff.state.keys import (
    LISTS_BACKFILLED_KEY,
    InteractionKeys,
    agent_key,
    agents_index_key,
    interactions_index_key,
    queues_key,
    user_agents_key,
)
from services.handoff.state.outbox import QueuedOutput, TimeoutStore, TraceCarrier
from services.handoff.state.reader import published_of
from services.handoff.state.ticket_store import queue_records, test_clock_key


@dataclass(frozen=True)
class CommandSnapshot:
    """What a command's decision depends on, read in one round trip."""

    now_ms: int
    state: ModeState
    published: AgentVersion | None
    transcript: list[dict[str, Any]]
    queues: dict[str, QueueSettings] = field(default_factory=dict)  # the tenant's configured
    clock_offset_ms: int = 0  # test only: added to now for opening hours (HANDOFF_TEST_CLOCK)


# Removes a desk index entry only if no newer ticket re-added it (its score is unchanged).
_ZREM_IF_SCORE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


def desk_key(tenant_id: str) -> str:
    """The tenant's open-ticket index of the desk: interaction key -> ticket time (ms)."""
    return f"ho:desk:{{{tenant_id}}}"


# How long the desk's trace context of an interaction is kept (a reply after that starts a
# trace of its own).
TRACE_KEEP_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class ApplyRequest:
    """A command's decision, to be stored once, with the state it writes (None: a rejection)."""

    ikey: str
    command_id: str
    src: str  # where the command came from: topic/partition/offset, or api/<id>
    expected_version: int
    new_state: ModeState | None
    change: dict[str, Any] | None
    result: dict[str, Any]
    turn_json: str = ""
    # True when no Kafka transaction carries the outputs (the operator API): they are queued
    # in the shard outbox in the same atomic step, and the relay publishes them.
    to_outbox: bool = False
    ticket_json: str = ""  # the ticket a to_human opens (commands.Handoff), '' = none
    resolution: dict[str, Any] | None = None  # the ticket a to_ai resolves (R15 resolve)


@dataclass(frozen=True)
class HumanReply:
    """A teammate's reply to record (R19), from the API or seen on chat.outbound."""

    ikey: str
    event_id: str  # the OutboundMessage's
    src: str  # api/<event_id>, or topic/partition/offset of the chat.outbound record
    turn_json: str
    outputs: Sequence[QueuedOutput] = ()  # queued in the outbox with the turn
    require_human: bool = False  # the API refuses a reply when the AI has the user
    trace: TraceCarrier = field(default_factory=dict)  # the outputs' trace context


class ModeStore(TimeoutStore, AgentVersionStore):
    """The handoff service's writer: commands, desk replies and the desk's index, rebuilds;
    agent versions and the timeout's steps through the classes it joins."""

    async def command_snapshot(
        self,
        ikey: str,
        tenant_id: str,
        agent_id: str,
        transcript_turns: int,
        test_clock: bool = False,
    ) -> CommandSnapshot:
        k = InteractionKeys(ikey)
        now, state, agent, turns, queues, offset = await self._pipeline("snapshot", [
            ("FCALL", "ho_time", 1, k.state),  # Redis TIME, also on a cluster
            ("HGETALL", k.state),
            ("HGETALL", agent_key(tenant_id, agent_id)),
            ("XREVRANGE", k.transcript, "+", "-", "COUNT", transcript_turns),
            ("HGETALL", queues_key(tenant_id)),
            ("GET", test_clock_key(tenant_id)),
        ])  # fmt: skip
        return CommandSnapshot(
            now_ms=int(now[0]) * 1000 + int(now[1]) // 1000,
            state=ModeState.from_redis(state),
            published=published_of(agent),
            transcript=[json.loads(fields["turn"]) for _, fields in reversed(turns)],
            queues={q: r.settings for q, r in queue_records(queues).items()},
            clock_offset_ms=int(offset) if test_clock and offset else 0,
        )

    async def apply(self, request: ApplyRequest) -> dict[str, Any]:
        """Stores a command's decision; writes the state only if it is still at the version
        the decision was made on.

        Returns the stored result with `status`: applied, replay, duplicate or conflict.
        """
        [result] = await self.apply_many([request])
        return result

    async def apply_many(self, requests: Sequence[ApplyRequest]) -> list[dict[str, Any]]:
        """`apply` for many interactions in one round trip (restoring or seeding state)."""
        lim = self.limits
        calls = []
        for r in requests:
            k = InteractionKeys(r.ikey)
            calls.append((
                "FCALL", "ho_apply", 2, k.command(r.command_id), k.deadlines,
                k.tag, r.ikey, r.src, r.expected_version,
                json.dumps(r.new_state.to_redis()) if r.new_state else "",
                json.dumps(r.change) if r.change else "", json.dumps(r.result),
                lim.marker_ttl_ms, lim.history_cap, r.turn_json, lim.transcript_cap,
                "1" if r.to_outbox else "0",
                r.ticket_json, json.dumps(r.resolution) if r.resolution else "",
            ))  # fmt: skip
        return [json.loads(raw) for raw in await self._pipeline("apply", calls)]

    async def append_history(self, changes: dict[str, list[dict[str, Any]]]) -> None:
        """Adds change records to interactions' histories, oldest first (a rebuild)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ikey, records in changes.items():
                key = InteractionKeys(ikey).history
                for record in records:
                    pipe.lpush(key, encode_entry(record))
                pipe.ltrim(key, 0, self.limits.history_cap - 1)
            await pipe.execute()

    async def remember_user_agent(self, tenant_id: str, channel: str, ext: str, agent: str) -> None:
        await self.redis.sadd(user_agents_key(tenant_id, channel, ext), agent)

    async def human_reply(self, reply: HumanReply) -> dict[str, Any]:
        """R19: records a teammate's reply and moves the idle expiry, in one step (see
        ho_human_reply). Returns `status` (recorded, replay, duplicate, not_in_human_mode),
        `mode` and `expires_at` (ms or absent)."""
        [result] = await self.human_replies([reply])
        return result

    async def human_replies(self, replies: Sequence[HumanReply]) -> list[dict[str, Any]]:
        lim = self.limits
        calls = []
        for r in replies:
            k = InteractionKeys(r.ikey)
            queued = [[*o, r.trace] if r.trace else list(o) for o in r.outputs]
            outputs = json.dumps(queued) if queued else ""
            calls.append((
                "FCALL", "ho_human_reply", 3, k.human_reply(r.event_id), k.deadlines, k.outbox,
                k.tag, r.ikey, r.src, r.turn_json, outputs, "1" if r.require_human else "0",
                lim.marker_ttl_ms, lim.transcript_cap, lim.history_cap,
            ))  # fmt: skip
        return [json.loads(raw) for raw in await self._pipeline("human_reply", calls)]

    async def extend_idle(self, ikey: str, extra_ms: int | None, audit_json: str) -> dict[str, Any]:
        """R19: the desk's extension of the idle expiry (see ho_extend), with its audit record
        (`{outcome}` in it becomes the outcome). Returns `status` (extended, not_in_human_mode,
        no_idle_timeout), `expires_at` (ms, when extended) and `version`."""
        k, lim = InteractionKeys(ikey), self.limits
        call = (
            "FCALL", "ho_extend", 2, k.deadlines, k.outbox,
            k.tag, ikey, "" if extra_ms is None else extra_ms, audit_json,
            lim.history_cap, lim.transcript_cap,
        )  # fmt: skip
        [raw] = await self._pipeline("extend", [call])
        return cast(dict[str, Any], json.loads(raw))

    # Desk ----------------------------------------------------------------------------------

    async def remember_trace(self, ikey: str, carrier: TraceCarrier) -> None:
        """The trace context of the latest record queued for the desk of `ikey`: a desk
        reply's span is its child (services/common/tracing.py)."""
        await self.redis.set(InteractionKeys(ikey).trace, json.dumps(carrier), px=TRACE_KEEP_MS)

    async def latest_trace(self, ikey: str) -> TraceCarrier:
        raw = await self.redis.get(InteractionKeys(ikey).trace)
        return cast(TraceCarrier, json.loads(raw)) if raw else {}

    async def desk_ticket_opened(self, tenant_id: str, ikey: str, at_ms: int, keep: int) -> None:
        """Indexes a HandoffTicket for the desk's list of open tickets (newest `keep`)."""
        key = desk_key(tenant_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {ikey: at_ms})
            pipe.zremrangebyrank(key, 0, -keep - 1)
            await pipe.execute()

    async def desk_open_tickets(
        self, tenant_id: str, limit: int
    ) -> list[tuple[str, int, ModeState]]:
        """(interaction key, opened at ms, state) of the indexed interactions still in human
        mode, newest first. The mode state is the truth: entries back on AI are dropped from
        the index, unless a newer ticket of the same interaction replaced them meanwhile."""
        key = desk_key(tenant_id)
        entries = cast(
            list[tuple[str, float]], await self.redis.zrevrange(key, 0, limit - 1, withscores=True)
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for ikey, _ in entries:
                pipe.hgetall(InteractionKeys(ikey).state)
            states = await pipe.execute()
        open_, closed = [], []
        for (ikey, score), raw in zip(entries, states, strict=True):
            state = ModeState.from_redis(raw)
            if state.mode == "human":
                open_.append((ikey, int(score), state))
            else:
                closed.append((ikey, int(score)))
        if closed:
            async with self.redis.pipeline(transaction=False) as pipe:
                for ikey, score in closed:
                    pipe.eval(_ZREM_IF_SCORE, 1, key, ikey, score)
                await pipe.execute()
        return open_

    async def restore_transcript(self, ikey: str, turns: Sequence[tuple[int, str]]) -> bool:
        """Writes an interaction's transcript from (time ms, turn JSON) in order, if Redis has
        none (a rebuild from the log); entry ids keep the times. False: it had one."""
        key = InteractionKeys(ikey).transcript
        if await self.redis.exists(key):
            return False
        last_ms, seq = -1, 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for ms, turn in turns[-self.limits.transcript_cap :]:
                last_ms, seq = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
                pipe.xadd(key, {"turn": turn}, id=f"{last_ms}-{seq}")
            await pipe.execute()
        return True

    async def backfill_list_indexes(self) -> tuple[int, int]:
        """Adds what was stored before the list indexes existed (keys.py) to them: every agent
        hash, every interaction with a state or a transcript. Once per deployment (a marker
        key); each service start checks it. SCAN walks each node (redis-py's cluster client
        scans every primary). Returns (agents, interactions) added."""
        if await self.redis.exists(LISTS_BACKFILLED_KEY):
            return 0, 0
        found = {"agent": 0, "interaction": 0}
        patterns = (("ho:agent:*", "agent"), ("ho:state:*", "interaction"),
                    ("ho:transcript:*", "interaction"))  # fmt: skip
        for pattern, kind in patterns:
            batch: list[tuple[str, str]] = []
            async for key in self.redis.scan_iter(match=pattern, count=1000):
                _, _, tag, member = key.split(":", 3)
                batch.append((tag, member))
                if len(batch) >= 500:
                    found[kind] += await self._index_members(kind, batch)
                    batch = []
            found[kind] += await self._index_members(kind, batch)
        await self.redis.set(LISTS_BACKFILLED_KEY, datetime.now(UTC).isoformat())
        return found["agent"], found["interaction"]

    async def _index_members(self, kind: str, members: Sequence[tuple[str, str]]) -> int:
        index = agents_index_key if kind == "agent" else interactions_index_key
        async with self.redis.pipeline(transaction=False) as pipe:
            for tag, member in members:
                pipe.zadd(index(tag), {member: 0})
            return sum(await pipe.execute())
