"""The agent's own state in Redis, under its own prefix (`agent:`): what it learnt of its
versions from the log, how many turns in a row it could not answer, and its recent turns.

Nothing here is the handoff service's: the agent never reads or writes `ho:` keys. Each key
still opens with the shard tag of its interaction (or agent), computed as every service
computes it (services/common/shards.py), so one interaction's keys share a Redis Cluster
slot and each script below touches one slot.

- `agent:versions:{hN}:{tenant}:{agent}`, a hash: `v<n>` -> the agent's model of version n
  (JSON), `published` -> the live version, `published_at` -> the position of the
  `agent_version_published` record that made it live. Folded from handoff.events: a version
  is immutable (written once), and a publish counts only if it comes later in the log than
  the one in force, so a record folded again, or late, changes nothing.
- `agent:failures:{hN}:<interaction key>[:live-test]`: the count of failed turns, with a TTL
  each message renews. Each message's result is remembered under its event id, so a batch
  handled again (a transaction aborted, a restart) gets the same count back. A Live Test
  conversation counts apart from the live user's (R12).
- `agent:turns:{hN}:<interaction key>`: the recent turns the LLM brain sees, oldest first,
  capped, with a TTL. A message's turns are recorded once (remembered under its event id),
  and a message handled again sees the turns from before it, not its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from services.agent.domain import PublishedVersion
from services.common.shards import shard_of, shard_tag

PREFIX = "agent:"
Role = Literal["user", "ai", "system", "human"]


def versions_key(tenant_id: str, agent_id: str) -> str:
    agent = f"{tenant_id}:{agent_id}"
    return f"{PREFIX}versions:{shard_tag(shard_of(agent))}:{agent}"


def failures_key(ikey: str, live_test: bool) -> str:
    key = f"{PREFIX}failures:{shard_tag(shard_of(ikey))}:{ikey}"
    return key + (":live-test" if live_test else "")


def turns_key(ikey: str) -> str:
    return f"{PREFIX}turns:{shard_tag(shard_of(ikey))}:{ikey}"


def memo_key(key: str, event_id: str) -> str:
    return f"{key}\x1f{event_id}"


# KEYS[1]: the versions hash. ARGV: version, the agent's model of it (JSON).
_FOLD_APPLIED = """
return redis.call('HSETNX', KEYS[1], 'v' .. ARGV[1], ARGV[2])
"""

# KEYS[1]: the versions hash. ARGV: version, the record's position in its partition. An
# agent's records share a partition (keyed by the agent), so their offsets are the log's order.
_FOLD_PUBLISHED = """
local at = tonumber(redis.call('HGET', KEYS[1], 'published_at') or '-1')
if tonumber(ARGV[2]) <= at then return 0 end
redis.call('HSET', KEYS[1], 'published', ARGV[1], 'published_at', ARGV[2])
return 1
"""

# KEYS[1]: the versions hash. The live version's number and model, or nil.
_PUBLISHED = """
local n = redis.call('HGET', KEYS[1], 'published')
if not n then return false end
local body = redis.call('HGET', KEYS[1], 'v' .. n)
if not body then return false end
return {n, body}
"""

# KEYS[1]: the counter, KEYS[2]: this message's memo. ARGV: 'fail' | 'reset', TTL in ms.
_STEP = """
local memo = redis.call('GET', KEYS[2])
if memo then return tonumber(memo) end
local n = 0
if ARGV[1] == 'fail' then
  n = redis.call('INCR', KEYS[1])
else
  redis.call('SET', KEYS[1], 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], n, 'PX', ARGV[2])
return n
"""

# KEYS[1]: the turns list, KEYS[2]: this message's memo. ARGV: TTL in ms, cap, turns (JSON).
_RECORD = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], 1, 'PX', ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Applied:
    """An `agent_version_applied` record, as the agent keeps it."""

    tenant_id: str
    agent_id: str
    version: PublishedVersion


@dataclass(frozen=True)
class Published:
    """An `agent_version_published` record and its offset in its partition."""

    tenant_id: str
    agent_id: str
    version: int
    offset: int


Fold = Applied | Published


class AgentStore:
    def __init__(self, redis: aioredis.Redis, ttl_ms: int = 3_600_000, turns_cap: int = 50) -> None:
        self.redis = redis
        self._ttl_ms = ttl_ms
        self._turns_cap = turns_cap
        self._fold_applied = redis.register_script(_FOLD_APPLIED)
        self._fold_published = redis.register_script(_FOLD_PUBLISHED)
        self._published = redis.register_script(_PUBLISHED)
        self._step = redis.register_script(_STEP)
        self._record = redis.register_script(_RECORD)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self.redis.aclose()

    # Versions --------------------------------------------------------------------------------

    async def fold(self, folds: Sequence[Fold]) -> None:
        """Writes what these records say, in their order (one agent's records in log order)."""
        for fold in folds:  # each on its agent's slot; few, and in order
            key = versions_key(fold.tenant_id, fold.agent_id)
            if isinstance(fold, Applied):
                body = json.dumps(asdict(fold.version))
                await self._fold_applied(keys=[key], args=[fold.version.version, body])
            else:
                await self._fold_published(keys=[key], args=[fold.version, fold.offset])

    async def published(self, tenant_id: str, agent_id: str) -> PublishedVersion | None:
        """The live version as far as the agent has read the log; None: none published."""
        found = await self._published(keys=[versions_key(tenant_id, agent_id)])
        if not found:
            return None
        data: dict[str, Any] = json.loads(found[1])
        data["queues"] = tuple(data.get("queues", ()))
        return PublishedVersion(**data)

    # Failed turns ------------------------------------------------------------------------------

    async def step_failures(
        self, ikey: str, live_test: bool, event_id: str, op: Literal["fail", "reset"]
    ) -> int:
        """Counts one more failed turn, or resets the count; returns the count after it."""
        key = failures_key(ikey, live_test)
        result = await self._step(keys=[key, memo_key(key, event_id)], args=[op, self._ttl_ms])
        return int(result)

    # Recent turns ------------------------------------------------------------------------------

    async def turns_before(self, ikey: str, event_id: str, count: int) -> list[tuple[str, str]]:
        """The last `count` recorded turns before message `event_id`'s own, as (role, text)."""
        if count <= 0:
            return []
        turns = [json.loads(t) for t in await self.redis.lrange(turns_key(ikey), 0, -1)]
        mine = next((i for i, t in enumerate(turns) if t["event_id"] == event_id), len(turns))
        return [(t["role"], t["text"]) for t in turns[:mine][-count:]]

    async def record_turns(
        self, ikey: str, event_id: str, turns: Sequence[tuple[Role, str]]
    ) -> None:
        """Records message `event_id`'s turns (what came back from a teammate, the user's
        text, the answer), once."""
        key = turns_key(ikey)
        values = [json.dumps({"event_id": event_id, "role": r, "text": t}) for r, t in turns]
        args: list[str | int] = [self._ttl_ms, self._turns_cap, *values]
        await self._record(keys=[key, memo_key(key, event_id)], args=args)
