"""The handoff service's state client: the one way other services read and touch mode state.

The router and the reply gate import `StateClient` (a library call, no network hop to the
handoff service): each batch costs one Redis round trip, a pipeline of one function call per
record. Writes of mode state stay in the handoff service (`store.ModeStore`); the two writes
made here, extending an idle lease and recording a transcript turn, are part of routing a
message and happen inside the same atomic function that reads the mode.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Self, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from schemas import Cause, parse_interaction_key
from services.common import metrics
from services.common.redis_options import answers, connect, redis_options
from services.common.settings import CommonSettings
from services.handoff.domain.modes import (
    LUA_CONSTANTS,
    AgentVersion,
    HandoffConfig,
    ModeState,
    parse_cause,
)
from services.handoff.domain.routing import GateRequest, GateVerdict, RouteDecision, RouteRequest
from services.handoff.state.history import decode_entry
from services.handoff.state.keys import (
    SHARDS,
    InteractionKeys,
    agent_key,
    agents_index_key,
    deadlines_key,
    interactions_index_key,
    outbox_key,
    shard_tag,
    user_agents_key,
)

log = structlog.get_logger()
DAY_MS = 24 * 3600 * 1000


def _library() -> str:
    """The function library, with the domain's decisions that Lua applies (the default return
    notice, who and why a timeout returns a user) as Lua long strings: they live in
    domain/modes.py only."""
    source = resources.files("services.handoff.state").joinpath("lua/handoff.lua").read_text()
    for name, text in LUA_CONSTANTS.items():
        assert "]==]" not in text
        source = source.replace(f"__{name}__", f"[==[{text}]==]")
    assert not re.search(r"__[A-Z_]+__", source), "a placeholder without its constant"
    return source


LIBRARY = _library()


@dataclass(frozen=True)
class StateLimits:
    """Retention of what the functions store; the same for every service of one deployment."""

    marker_ttl_ms: int = 7 * DAY_MS
    transcript_cap: int = 500
    history_cap: int = 1000
    context_turns: int = 20  # R20: turns of the human stretch in routing.context

    @classmethod
    def of(cls, settings: CommonSettings) -> StateLimits:
        return cls(
            marker_ttl_ms=int(settings.dedupe_ttl_hours * 3600 * 1000),
            transcript_cap=settings.transcript_max_turns,
            history_cap=settings.history_max_changes,
            context_turns=settings.return_context_turns,
        )


REMEMBERED_INTERACTIONS = 100_000


class BoundedSet:
    """The most recently added keys, at most `size` of them (a cache: forgetting costs a write)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: dict[str, None] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def update(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)
            self._keys[key] = None
        while len(self._keys) > self._size:
            del self._keys[next(iter(self._keys))]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class StateClient:
    """Reads mode state and runs the routing and reply-gate functions."""

    def __init__(self, redis: aioredis.Redis, limits: StateLimits | None = None) -> None:
        self.redis = redis
        self.limits = limits or StateLimits()
        self._remembered = BoundedSet(REMEMBERED_INTERACTIONS)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> Self:
        redis = connect(
            settings.redis_url,
            settings.redis_cluster,
            settings.redis_timeout_seconds,
            redis_options(settings),
        )
        return cls(redis, StateLimits.of(settings))

    @classmethod
    def from_url(
        cls, url: str, cluster: bool = False, options: dict[str, Any] | None = None
    ) -> Self:
        return cls(connect(url, cluster, options=options))

    async def load_functions(self) -> None:
        """Loads (or replaces) the function library; every service does it at start, so a
        service with wrong Redis credentials stops here, saying so (never the password)."""
        try:
            await self.redis.function_load(LIBRARY, replace=True)
        except (AuthenticationError, NoPermissionError) as exc:
            where = self.redis.get_connection_kwargs()  # type: ignore[no-untyped-call]
            log.error(
                "redis_access_refused",
                error=f"{type(exc).__name__}: {exc}",
                host=where.get("host"),
                port=where.get("port"),
                user=where.get("username") or "default",
            )
            raise

    async def ping(self) -> bool:
        return await answers(self.redis)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _pipeline(self, call: str, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        try:
            return await self._run_pipeline(call, commands)
        except ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            # Redis lost its functions (a FLUSHALL, or data lost without AOF): reload, retry.
            log.warning("redis_functions_reloaded", call=call)
            await self.load_functions()
            return await self._run_pipeline(call, commands)

    async def _run_pipeline(self, call: str, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            results: list[Any] = await pipe.execute(raise_on_error=True)
        metrics.REDIS_SECONDS.labels(call=call).observe(time.perf_counter() - started)
        return results

    async def route_batch(self, requests: Sequence[RouteRequest]) -> list[RouteDecision]:
        """One round trip for the whole batch, one function call per shard (the messages of
        one shard in their order: R13); results in request order."""
        lim = self.limits
        shards: dict[str, list[int]] = {}  # shard tag -> the requests' indexes, in order
        commands: list[tuple[Any, ...]] = []
        markers: list[str] = []
        for i, r in enumerate(requests):
            k = InteractionKeys(r.ikey)
            shards.setdefault(k.tag, []).append(i)
            markers.append(k.seen(r.event_id))
        for tag, indexes in shards.items():
            args: list[Any] = [tag, lim.marker_ttl_ms, lim.transcript_cap, lim.history_cap,
                               lim.context_turns]  # fmt: skip
            for i in indexes:
                r = requests[i]
                args += (r.ikey, r.src, r.turn_json, "1" if r.stateless else "0")
            keys = [deadlines_key(tag), outbox_key(tag), *(markers[i] for i in indexes)]
            commands.append(("FCALL", "ho_route_many", len(keys), *keys, *args))
        # The operator view lists a user's agents (R8): idempotent, in the same round trip,
        # and skipped for the interactions this process has already recorded.
        fresh = [r.ikey for r in requests if not r.stateless and r.ikey not in self._remembered]
        commands += [_remember_agent(ikey) for ikey in dict.fromkeys(fresh)]
        results = await self._pipeline("route", commands)
        self._remembered.update(fresh)
        decisions: dict[int, RouteDecision] = {}
        for indexes, raws in zip(shards.values(), results, strict=False):
            for i, raw in zip(indexes, raws, strict=True):
                decisions[i] = _route_decision(json.loads(raw))
        return [decisions[i] for i in range(len(requests))]

    async def gate_batch(self, requests: Sequence[GateRequest]) -> list[GateVerdict]:
        lim = self.limits
        commands = []
        for r in requests:
            k = InteractionKeys(r.ikey)
            commands.append(
                ("FCALL", "ho_gate", 2, k.reply(r.reply_id), k.seen(r.in_reply_to),
                 k.tag, r.ikey, r.src, r.state_version, r.turn_json,
                 lim.marker_ttl_ms, lim.transcript_cap)
            )  # fmt: skip
        verdicts = []
        for raw in await self._pipeline("gate", commands):
            d = json.loads(raw)
            verdicts.append(
                GateVerdict(d["status"], d.get("verdict", ""), _opt_int(d.get("current_version")))
            )
        return verdicts

    async def user_agents(self, tenant_id: str, channel: str, external_id: str) -> list[str]:
        """The agents a user has talked to or been handed off by (R8), sorted."""
        members = await self.redis.smembers(user_agents_key(tenant_id, channel, external_id))
        return sorted(cast(set[str], members))

    async def reply_verdict(self, ikey: str, reply_id: str) -> dict[str, Any] | None:
        """What the reply gate decided for a reply (kept as long as dedupe markers), or None."""
        raw = await self.redis.get(InteractionKeys(ikey).reply(reply_id))
        return cast(dict[str, Any], json.loads(raw)) if raw else None

    async def read_state(self, ikey: str) -> ModeState:
        raw = await self.redis.hgetall(InteractionKeys(ikey).state)
        return ModeState.from_redis(cast(dict[str, str], raw))

    async def history(self, ikey: str, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        """Mode changes, newest first."""
        raw = await self.redis.lrange(InteractionKeys(ikey).history, offset, offset + limit - 1)
        return [decode_entry(item, ikey) for item in raw]

    async def history_page(self, ikey: str, before: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` mode changes with a version below `before` (all when None), newest
        first. A cursor by version, not by offset: changes pushed meanwhile at the head
        neither repeat nor skip entries of the next page. Versions in a history are
        consecutive (each change is the state's version + 1), which gives the list index of
        `before`; the filter keeps the page right even if the guess is off."""
        key = InteractionKeys(ikey).history
        start = 0
        if before is not None:
            head = await self.redis.lindex(key, 0)
            if head is None:
                return []
            start = max(0, int(decode_entry(head, ikey)["version"]) - before + 1)
        page: list[dict[str, Any]] = []
        while len(page) < limit:
            raw = await self.redis.lrange(key, start, start + limit + 15)
            if not raw:
                break
            changes = [decode_entry(item, ikey) for item in raw]
            if before is not None and start > 0 and changes[0]["version"] < before - 1:
                start = 0  # the guess went past `before` (a gap): scan from the head
                continue
            page += [c for c in changes if before is None or c["version"] < before]
            start += len(raw)
        return page[:limit]

    async def transcript_page(
        self, ikey: str, before: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """(stream id, turn) of up to `limit` turns recorded before the stream id `before`
        (the latest when None), newest first."""
        top = f"({before}" if before else "+"
        entries = await self.redis.xrevrange(
            InteractionKeys(ikey).transcript, max=top, min="-", count=limit
        )
        return [(eid, json.loads(f["turn"])) for eid, f in cast(list[Any], entries)]

    async def has_user_agent(self, tenant_id: str, channel: str, ext: str, agent: str) -> bool:
        """Whether the user has an interaction with `agent` (R8's list of a user's agents)."""
        key = user_agents_key(tenant_id, channel, ext)
        return bool(await self.redis.sismember(key, agent))

    # The tenant's lists: a lexical range read on every shard's index (keys.py) --------------

    async def _index_range(
        self, index: Callable[[str], str], prefix: str, after: str | None, count: int
    ) -> tuple[list[str], bool]:
        """The first `count` members starting with `prefix` (which ends with ':') above `after`
        over all shards' indexes, in order, and whether more follow. Each shard gives its first
        count + 1: the first `count` of the merge are among them. One round trip."""
        low = f"({after}" if after else f"[{prefix}"
        high = f"({prefix[:-1]};"  # ';' follows ':': the end of the prefix's range
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(SHARDS):
                pipe.zrangebylex(index(shard_tag(shard)), low, high, 0, count + 1)
            ranges = await pipe.execute()
        members = sorted(m for found in ranges for m in found)
        return members[:count], len(members) > count

    async def tenant_agent_ids(self, tenant_id: str, count: int) -> list[str]:
        """The first `count` agent ids of the tenant, in order."""
        prefix = f"{tenant_id}:"
        members, _ = await self._index_range(agents_index_key, prefix, None, count)
        return [m[len(prefix) :] for m in members]

    async def interactions_after(
        self, prefix: str, after: str | None, count: int
    ) -> tuple[list[str], bool]:
        """Interaction keys starting with `prefix` (`tenant:` or `tenant:agent:`) above `after`,
        in order: the first `count`, and whether more follow."""
        return await self._index_range(interactions_index_key, prefix, after, count)

    async def interaction_summaries(
        self, ikeys: Sequence[str]
    ) -> list[tuple[ModeState, int | None]]:
        """Each interaction's mode state and the time (ms) of its last recorded turn."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for ikey in ikeys:
                k = InteractionKeys(ikey)
                pipe.hgetall(k.state)
                pipe.xrevrange(k.transcript, count=1)
            raw = await pipe.execute()
        summaries = []
        for state, last in zip(raw[::2], raw[1::2], strict=True):
            last_ms = int(last[0][0].split("-")[0]) if last else None
            summaries.append((ModeState.from_redis(state), last_ms))
        return summaries

    async def agent_versions(
        self, tenant_id: str, agent_id: str
    ) -> tuple[list[AgentVersion], int | None]:
        raw = await self.redis.hgetall(agent_key(tenant_id, agent_id))
        return versions_of(cast(dict[str, str], raw))

    async def transcript(self, ikey: str, last: int) -> list[dict[str, Any]]:
        """The last `last` recorded turns, oldest first."""
        entries = await self.redis.xrevrange(InteractionKeys(ikey).transcript, count=last)
        return [json.loads(fields["turn"]) for _, fields in reversed(cast(list[Any], entries))]


def versions_of(raw: dict[str, str]) -> tuple[list[AgentVersion], int | None]:
    """An agent's hash as its versions, oldest first, and the published one's number."""
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


def published_of(raw: dict[str, str]) -> AgentVersion | None:
    """The live version in an agent's hash, or None."""
    versions, published = versions_of(raw)
    return next((v for v in versions if v.version == published), None)


def _cause(value: Any) -> Cause | None:
    return parse_cause(value or "")


def _remember_agent(ikey: str) -> tuple[str, str, str]:
    ids = parse_interaction_key(ikey)
    return (
        "SADD",
        user_agents_key(ids.tenant_id, ids.user.channel, ids.user.external_id or ""),
        ids.agent_id,
    )


def _route_decision(d: dict[str, Any]) -> RouteDecision:
    status = d.get("status", "routed")  # ho_route answers a new decision without one
    if status == "duplicate":
        return RouteDecision("duplicate")
    return RouteDecision(
        status=status,
        mode="human" if d["mode"] == "human" else "ai",
        cause=_cause(d.get("cause")),
        version=int(d["version"]),
        decided_at_ms=int(d["decided_at"]),
        human_since_ms=_opt_int(d.get("human_since")),
        expires_at_ms=_opt_int(d.get("expires_at")),
        stateless=bool(d.get("stateless")),
        ticket_id=d.get("ticket_id"),
        queue=d.get("queue"),
        context=_context(d.get("context")),
    )


def _context(raw: Any) -> dict[str, Any] | None:
    """The context the function stored, with its turns (JSON strings there) decoded."""
    if not raw:
        return None
    turns = [json.loads(t) for t in raw.get("turns") or []]
    return {**raw, "turns": turns}
