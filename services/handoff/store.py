"""The writer side of the mode state: commands, agent versions, timeout reverts and the outbox.

Only the handoff service (and its timeout worker) use this module; see client.py for readers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, cast

from redis.exceptions import ResponseError

from services.handoff.client import StateClient
from services.handoff.domain import AgentVersion, HandoffConfig, ModeState
from services.handoff.keys import (
    SHARDS,
    InteractionKeys,
    agent_key,
    deadlines_key,
    outbox_key,
    shard_tag,
    user_agents_key,
)

OUTBOX_GROUP = "timeout"


@dataclass(frozen=True)
class CommandSnapshot:
    """What a command's decision depends on, read in one round trip."""

    now_ms: int
    state: ModeState
    published: AgentVersion | None
    transcript: list[dict[str, Any]]


@dataclass(frozen=True)
class OutboxEntry:
    tag: str
    entry_id: str
    change: dict[str, Any]


class UnknownVersionError(LookupError):
    pass


def _versions(raw: dict[str, str]) -> tuple[list[AgentVersion], int | None]:
    versions = []
    for name, value in raw.items():
        if name.startswith("v") and name[1:].isdigit():
            data = json.loads(value)
            data["handoff"] = HandoffConfig(**data["handoff"])
            versions.append(AgentVersion(version=int(name[1:]), **data))
    published = int(raw["published"]) if raw.get("published") else None
    return sorted(versions, key=lambda v: v.version), published


def _published(raw: dict[str, str]) -> AgentVersion | None:
    versions, published = _versions(raw)
    return next((v for v in versions if v.version == published), None)


class ModeStore(StateClient):
    async def command_snapshot(
        self, ikey: str, tenant_id: str, agent_id: str, transcript_turns: int
    ) -> CommandSnapshot:
        k = InteractionKeys(ikey)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hgetall(k.state)
            pipe.hgetall(agent_key(tenant_id, agent_id))
            pipe.xrevrange(k.transcript, count=transcript_turns)
            now, state, agent, turns = await pipe.execute()
        return CommandSnapshot(
            now_ms=int(now[0]) * 1000 + int(now[1]) // 1000,
            state=ModeState.from_redis(state),
            published=_published(agent),
            transcript=[json.loads(fields["turn"]) for _, fields in reversed(turns)],
        )

    async def apply(
        self,
        ikey: str,
        command_id: str,
        src: str,
        expected_version: int,
        new_state: ModeState | None,
        change: dict[str, Any] | None,
        result: dict[str, Any],
        turn_json: str = "",
    ) -> dict[str, Any]:
        """Stores the decision; writes the state only if it is still at `expected_version`.

        Returns the stored result with `status`: applied, replay, duplicate or conflict.
        """
        k = InteractionKeys(ikey)
        lim = self.limits
        [raw] = await self._pipeline("apply", [(
            "FCALL", "ho_apply", 2, k.command(command_id), k.deadlines,
            k.tag, ikey, src, expected_version,
            json.dumps(new_state.to_redis()) if new_state else "",
            json.dumps(change) if change else "", json.dumps(result),
            lim.marker_ttl_ms, lim.history_cap, turn_json, lim.transcript_cap,
        )])  # fmt: skip
        decoded: dict[str, Any] = json.loads(raw)
        return decoded

    async def remember_user_agent(self, tenant_id: str, channel: str, ext: str, agent: str) -> None:
        await self.redis.sadd(user_agents_key(tenant_id, channel, ext), agent)

    async def record_turn(self, ikey: str, turn_json: str) -> None:
        """Adds a turn to the transcript (a human agent's reply, sent from the desk)."""
        k = InteractionKeys(ikey)
        await self.redis.xadd(
            k.transcript, {"turn": turn_json}, maxlen=self.limits.transcript_cap, approximate=True
        )

    # Agent versions -------------------------------------------------------------------------

    async def apply_agent_version(
        self, tenant_id: str, agent_id: str, handoff: HandoffConfig, created_at: str, by: str
    ) -> int:
        """Apply: stores a new immutable version and returns its number."""
        body = json.dumps({"handoff": asdict(handoff), "created_at": created_at, "created_by": by})
        return int(
            await self.redis.fcall("ho_agent_apply", 1, agent_key(tenant_id, agent_id), body)
        )

    async def publish_agent_version(self, tenant_id: str, agent_id: str, version: int) -> None:
        try:
            call = ("FCALL", "ho_agent_publish", 1, agent_key(tenant_id, agent_id), version)
            await self._pipeline("agent_publish", [call])
        except ResponseError as exc:
            if "NO_SUCH_VERSION" in str(exc):
                raise UnknownVersionError(
                    f"{tenant_id}/{agent_id} has no version {version}"
                ) from exc
            raise

    async def agent_versions(
        self, tenant_id: str, agent_id: str
    ) -> tuple[list[AgentVersion], int | None]:
        raw = await self.redis.hgetall(agent_key(tenant_id, agent_id))
        return _versions(cast(dict[str, str], raw))

    # Timeouts ------------------------------------------------------------------------------

    async def expire_due(self, limit_per_shard: int) -> int:
        """Reverts every expired lease of every shard; the reverts land in the outboxes."""
        calls = [
            ("FCALL", "ho_expire_due", 2, deadlines_key(tag), outbox_key(tag),
             tag, limit_per_shard, self.limits.history_cap)
            for tag in map(shard_tag, range(SHARDS))
        ]  # fmt: skip
        return sum(int(c) for c in await self._pipeline("expire_due", calls))

    async def ensure_outbox_groups(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(SHARDS):
                pipe.xgroup_create(
                    outbox_key(shard_tag(shard)), OUTBOX_GROUP, id="0", mkstream=True
                )
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

    async def read_outbox(self, consumer: str, count: int, min_idle_ms: int) -> list[OutboxEntry]:
        """New outbox entries, plus entries another worker claimed and never acknowledged."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(SHARDS):
                key = outbox_key(shard_tag(shard))
                pipe.xautoclaim(key, OUTBOX_GROUP, consumer, min_idle_ms, "0-0", count=count)
                pipe.xreadgroup(OUTBOX_GROUP, consumer, {key: ">"}, count=count)
            results = await pipe.execute()
        entries = []
        for shard in range(SHARDS):
            tag = shard_tag(shard)
            claimed = results[2 * shard][1]
            fresh = results[2 * shard + 1][0][1] if results[2 * shard + 1] else []
            for entry_id, fields in [*claimed, *fresh]:
                if fields:  # a claimed entry deleted meanwhile has no fields
                    entries.append(OutboxEntry(tag, entry_id, json.loads(fields["change"])))
        return entries

    async def ack_outbox(self, entries: list[OutboxEntry]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in entries:
                pipe.xack(outbox_key(e.tag), OUTBOX_GROUP, e.entry_id)
                pipe.xdel(outbox_key(e.tag), e.entry_id)
            await pipe.execute()
