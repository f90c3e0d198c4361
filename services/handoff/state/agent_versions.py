"""Agent versions in Redis: Apply (a new immutable version), Publish (the live one), the
tenant's list, and a rebuild from AgentVersionApplied / AgentVersionPublished."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from redis.exceptions import ResponseError

from schemas import AgentVersionApplied, AgentVersionPublished
from services.handoff.domain.modes import AgentVersion, HandoffConfig
from services.handoff.state.keys import agent_key, agent_tag, agents_index_key, outbox_key
from services.handoff.state.outbox import QueuedOutput
from services.handoff.state.reader import StateClient, versions_of


@dataclass(frozen=True)
class AgentListing:
    """An agent as the tenant's list shows it."""

    agent_id: str
    latest: AgentVersion
    published: int | None
    updated_at_ms: int | None  # the last Apply or Publish; None: stored before it was kept


class UnknownVersionError(LookupError):
    pass


def version_body(event: AgentVersionApplied) -> str:
    """How Redis stores a version: what its AgentVersionApplied says, times as the log has
    them, so a version rebuilt from the log is the same to the byte."""
    data = json.loads(event.model_dump_json())
    return json.dumps({k: data[k] for k in ("handoff", "created_at", "created_by")})


class AgentVersionStore(StateClient):
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
            versions, published = versions_of(raw)
            if versions:
                updated = int(raw["updated_at"]) if raw.get("updated_at") else None
                listed.append(AgentListing(agent, versions[-1], published, updated))
        return listed
