"""The writer side of the mode state: commands, agent versions, timeout reverts and the outbox.

Only the handoff service (and its timeout worker) use this module; see client.py for readers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from redis.exceptions import ResponseError

from schemas import AgentVersionApplied, AgentVersionPublished
from services.handoff.domain.modes import AgentVersion, HandoffConfig, ModeState
from services.handoff.domain.tickets import QueueSettings
from services.handoff.state.keys import (
    LISTS_BACKFILLED_KEY,
    InteractionKeys,
    agent_key,
    agent_tag,
    agents_index_key,
    deadlines_key,
    interactions_index_key,
    outbox_key,
    queues_key,
    shard_tag,
    user_agents_key,
)
from services.handoff.state.ticket_store import TicketStore, queue_records, test_clock_key


@dataclass(frozen=True)
class CommandSnapshot:
    """What a command's decision depends on, read in one round trip."""

    now_ms: int
    state: ModeState
    published: AgentVersion | None
    transcript: list[dict[str, Any]]
    queues: dict[str, QueueSettings] = field(default_factory=dict)  # the tenant's configured
    clock_offset_ms: int = 0  # test only: added to now for opening hours (HANDOFF_TEST_CLOCK)


# A record queued in an outbox: (topic role, Kafka key, JSON value); see Topics.for_role.
QueuedOutput = tuple[str, str, str]
# W3C trace context fields (traceparent, tracestate) of a queued record: its Kafka headers.
TraceCarrier = dict[str, str]
# How long the desk's trace context of an interaction is kept (a reply after that starts a
# trace of its own).
TRACE_KEEP_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class OutboxEntry:
    """One entry of a shard's outbox: a timeout revert's change record (published as its
    ModeChanged, with its return notice in `outputs`), or records queued as they are by a
    change made outside a Kafka consumer."""

    shard: int
    seq: int  # the stream id as one increasing number (see outbox_seq)
    change: dict[str, Any] | None
    outputs: list[QueuedOutput]
    # outputs[i]'s trace context ({} = none): a queued record's optional fourth element.
    traces: list[TraceCarrier]

    @classmethod
    def of(cls, shard: int, entry_id: str, fields: dict[str, str]) -> OutboxEntry:
        change = json.loads(fields["change"]) if "change" in fields else None
        queued = json.loads(fields.get("out", "[]"))
        outputs = [(q[0], q[1], q[2]) for q in queued]
        traces = [dict(q[3]) if len(q) > 3 and q[3] else {} for q in queued]
        return cls(shard, outbox_seq(entry_id), change, outputs, traces)


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


def outbox_seq(entry_id: str) -> int:
    """A stream id `<ms>-<n>` as one int64 that orders like it: the Kafka checkpoint.

    Ids are time-based, so numbers keep growing even when Redis lost the stream."""
    ms, n = entry_id.split("-")
    return (int(ms) << 20) | int(n)


def stream_id(seq: int) -> str:
    return f"{seq >> 20}-{seq & 0xFFFFF}"


@dataclass(frozen=True)
class AgentListing:
    """An agent as the tenant's list shows it."""

    agent_id: str
    latest: AgentVersion
    published: int | None
    updated_at_ms: int | None  # the last Apply or Publish; None: stored before it was kept


class UnknownVersionError(LookupError):
    pass


def _versions(raw: dict[str, str]) -> tuple[list[AgentVersion], int | None]:
    versions = []
    for name, value in raw.items():
        if name.startswith("v") and name[1:].isdigit():
            data = json.loads(value)
            known = HandoffConfig.__dataclass_fields__
            data["handoff"] = HandoffConfig(
                **{k: v for k, v in data["handoff"].items() if k in known}
            )
            versions.append(AgentVersion(version=int(name[1:]), **data))
    published = int(raw["published"]) if raw.get("published") else None
    return sorted(versions, key=lambda v: v.version), published


def version_body(event: AgentVersionApplied) -> str:
    """How Redis stores a version: what its AgentVersionApplied says, times as the log has
    them, so a version rebuilt from the log is the same to the byte."""
    data = json.loads(event.model_dump_json())
    return json.dumps({k: data[k] for k in ("handoff", "created_at", "created_by")})


def _published(raw: dict[str, str]) -> AgentVersion | None:
    versions, published = _versions(raw)
    return next((v for v in versions if v.version == published), None)


class ModeStore(TicketStore):
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
            published=_published(agent),
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
                    pipe.lpush(key, json.dumps(record))
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

    # Agent versions -------------------------------------------------------------------------

    async def apply_agent_version(
        self,
        tenant_id: str,
        agent_id: str,
        handoff: HandoffConfig,
        created_at: str,
        by: str,
        with_outputs: Sequence[QueuedOutput] = (),
    ) -> int:
        """Apply: stores a new immutable version and returns its number; its
        AgentVersionApplied (and `with_outputs`, e.g. the audit record) go to the outbox."""
        event = AgentVersionApplied(
            event_id="-", tenant_id=tenant_id, agent_id=agent_id, version=1,  # set by Lua
            handoff=asdict(handoff), created_at=datetime.fromisoformat(created_at), created_by=by,
        )  # fmt: skip
        body = version_body(event)
        call = ("FCALL", "ho_agent_apply", 2, agent_key(tenant_id, agent_id),
                outbox_key(agent_tag(tenant_id, agent_id)), agent_tag(tenant_id, agent_id),
                body, event.model_dump_json(), json.dumps(list(with_outputs)))  # fmt: skip
        [version] = await self._pipeline("agent_apply", [call])
        return int(version)

    async def publish_agent_version(
        self,
        tenant_id: str,
        agent_id: str,
        version: int,
        by: str = "system",
        with_outputs: Sequence[QueuedOutput] = (),
    ) -> None:
        """Publish: version `version` becomes the live one; its AgentVersionPublished (and
        `with_outputs`) go to the outbox."""
        event = AgentVersionPublished(
            event_id="-", tenant_id=tenant_id, agent_id=agent_id, version=version,
            published_at=datetime.now(UTC), published_by=by,
        )  # fmt: skip
        tag = agent_tag(tenant_id, agent_id)
        try:
            call = ("FCALL", "ho_agent_publish", 2, agent_key(tenant_id, agent_id),
                    outbox_key(tag), tag, version, event.model_dump_json(),
                    json.dumps(list(with_outputs)))  # fmt: skip
            await self._pipeline("agent_publish", [call])
        except ResponseError as exc:
            if "NO_SUCH_VERSION" in str(exc):
                raise UnknownVersionError(
                    f"{tenant_id}/{agent_id} has no version {version}"
                ) from exc
            raise

    async def restore_agent_versions(
        self,
        tenant_id: str,
        agent_id: str,
        applied: Sequence[AgentVersionApplied],
        published: int | None,
    ) -> int:
        """Writes the versions Redis lacks, and the published one if none is (a rebuild from
        the log); returns how many versions it wrote."""
        key = agent_key(tenant_id, agent_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in applied:
                pipe.hsetnx(key, f"v{event.version}", version_body(event))
            if published is not None:
                pipe.hsetnx(key, "published", published)
            pipe.zadd(
                agents_index_key(agent_tag(tenant_id, agent_id)), {f"{tenant_id}:{agent_id}": 0}
            )
            written = await pipe.execute()
        latest = max((e.version for e in applied), default=0)
        current = int(await self.redis.hget(key, "latest") or 0)
        if latest > current:
            await self.redis.hset(key, "latest", latest)
        return sum(bool(w) for w in written[: len(applied)])

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

    async def agent_versions(
        self, tenant_id: str, agent_id: str
    ) -> tuple[list[AgentVersion], int | None]:
        raw = await self.redis.hgetall(agent_key(tenant_id, agent_id))
        return _versions(cast(dict[str, str], raw))

    async def tenant_agents(self, tenant_id: str, limit: int) -> list[AgentListing]:
        """The tenant's agents with at least one version, by id, at most `limit` (the agents
        list: its shard indexes, then each agent's hash, in two round trips)."""
        agents = await self.tenant_agent_ids(tenant_id, limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent in agents:
                pipe.hgetall(agent_key(tenant_id, agent))
            hashes = await pipe.execute()
        listed = []
        for agent, raw in zip(agents, hashes, strict=True):
            versions, published = _versions(raw)
            if versions:
                updated = int(raw["updated_at"]) if raw.get("updated_at") else None
                listed.append(AgentListing(agent, versions[-1], published, updated))
        return listed

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

    # Timeouts ------------------------------------------------------------------------------

    async def expire_due(self, shards: Iterable[int], limit_per_shard: int) -> int:
        """Reverts every expired lease of these shards; the reverts land in their outboxes."""
        lim = self.limits
        calls = [
            ("FCALL", "ho_expire_due", 2, deadlines_key(tag), outbox_key(tag),
             tag, limit_per_shard, lim.history_cap, lim.transcript_cap)
            for tag in map(shard_tag, shards)
        ]  # fmt: skip
        return sum(int(c) for c in await self._pipeline("expire_due", calls)) if calls else 0

    async def read_outboxes(self, after: dict[int, int], count: int) -> list[OutboxEntry]:
        """Each shard's queued reverts numbered above `after[shard]` (its checkpoint), in
        order, at most `count` per shard; one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, seq in after.items():
                pipe.xrange(outbox_key(shard_tag(shard)), min=f"({stream_id(seq)}", count=count)
            results = await pipe.execute()
        return [
            OutboxEntry.of(shard, entry_id, fields)
            for shard, entries in zip(after, results, strict=True)
            for entry_id, fields in entries
        ]

    async def trim_outbox(self, upto: dict[int, int]) -> None:
        """Drops entries already published (numbered up to `upto[shard]`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, seq in upto.items():
                pipe.xtrim(outbox_key(shard_tag(shard)), minid=stream_id(seq + 1))
            await pipe.execute()
