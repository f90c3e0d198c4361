"""The analytics in Redis: per tenant, per hour bucket; each record applied at most once.

Every key of a tenant carries the hash tag `{ana:<tenant>}` (one Redis Cluster slot), so a
record's effects, its interaction's journey and its dedupe marker are written in one
script call: the marker is set only if absent, and the writes happen only then. A record read
twice (a replayed batch, the same event sent twice) therefore counts once.

- `ho:ana:{ana:T}:seen:<kind>:<event id>`: the dedupe marker (kept `dedupe_ttl_hours`);
- `ho:ana:{ana:T}:j:<interaction key>`: the interaction's journey (JSON);
- `ho:ana:{ana:T}:n:<hour ms>` hash `<kind>|<queue>|<cause>` -> count;
- `ho:ana:{ana:T}:r:<hour ms>` hash `<queue>|<reason>` -> handoffs with that reason;
- `ho:ana:{ana:T}:s:<sample kind>:<hour ms>` sorted set `<queue>|<id>` -> seconds;
- `ho:ana:{ana:T}:queues` set: the queues seen.
Buckets expire `retention_days` after their hour.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis

from services.common.settings import CommonSettings
from services.handoff.analytics.domain import (
    HOUR_MS,
    SAMPLE_KINDS,
    Count,
    Effect,
    Journey,
    Reason,
    SampleKind,
    hours_between,
)

# KEYS[1]: the marker; KEYS[2..]: the keys the ops name by index. ARGV[1]: marker TTL (ms);
# ARGV[2]: the ops, JSON [[op, key index, args...], ...]. Decisions are made in Python; this
# only makes "not seen before" and the writes one atomic step.
_APPLY_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
for _, op in ipairs(cjson.decode(ARGV[2])) do
  local key = KEYS[op[2]]
  if op[1] == 'hincrby' then redis.call('HINCRBY', key, op[3], op[4])
  elseif op[1] == 'zadd' then redis.call('ZADD', key, op[3], op[4])
  elseif op[1] == 'sadd' then redis.call('SADD', key, op[3])
  elseif op[1] == 'set' then redis.call('SET', key, op[3], 'PX', op[4])
  elseif op[1] == 'pexpireat' then redis.call('PEXPIREAT', key, op[3])
  end
end
return 1
"""


def tenant_prefix(tenant: str) -> str:
    return f"ho:ana:{{ana:{tenant}}}"


@dataclass
class _Ops:
    keys: list[str] = field(default_factory=list)
    ops: list[list[Any]] = field(default_factory=list)
    expiring: dict[str, int] = field(default_factory=dict)

    def key(self, name: str) -> int:
        if name not in self.keys:
            self.keys.append(name)
        return self.keys.index(name) + 2  # KEYS[1] is the marker

    def add(self, op: str, key: str, *args: Any) -> None:
        self.ops.append([op, self.key(key), *args])


@dataclass(frozen=True)
class Limits:
    marker_ttl_ms: int
    retention_ms: int
    journey_ttl_ms: int


class AnalyticsStore:
    def __init__(self, redis: aioredis.Redis, limits: Limits) -> None:
        self._redis = redis
        self._limits = limits

    async def journey(self, tenant: str, ikey: str) -> Journey:
        raw = await self._redis.get(f"{tenant_prefix(tenant)}:j:{ikey}")
        if not raw:
            return Journey()
        data = json.loads(raw)
        data["early_replies"] = tuple(data.get("early_replies", ()))
        return Journey(**data)

    async def apply_once(
        self,
        tenant: str,
        marker: str,
        ikey: str,
        journey: Journey,
        effects: list[Effect],
    ) -> bool:
        """Writes the record's effects and the interaction's new journey, unless `marker`
        (the record's kind and event id) was applied before. True when applied now."""
        p = tenant_prefix(tenant)
        o = _Ops()
        o.add("set", f"{p}:j:{ikey}", json.dumps(asdict(journey)), self._limits.journey_ttl_ms)
        for e in effects:
            bucket_key: str
            if isinstance(e, Count):
                bucket_key = f"{p}:n:{e.hour}"
                o.add("hincrby", bucket_key, f"{e.kind}|{e.queue}|{e.sub}", 1)
            elif isinstance(e, Reason):
                bucket_key = f"{p}:r:{e.hour}"
                o.add("hincrby", bucket_key, f"{e.queue}|{e.reason}", 1)
            else:
                bucket_key = f"{p}:s:{e.kind}:{e.hour}"
                o.add("zadd", bucket_key, e.seconds, f"{e.queue}|{e.member}")
            o.add("sadd", f"{p}:queues", e.queue)
            o.expiring[bucket_key] = e.hour + HOUR_MS + self._limits.retention_ms
        for key, at in o.expiring.items():
            o.add("pexpireat", key, at)
        keys = [f"{p}:seen:{marker}", *o.keys]
        ttl, ops = self._limits.marker_ttl_ms, json.dumps(o.ops)
        applied = await self._redis.eval(_APPLY_ONCE, len(keys), *keys, ttl, ops)
        return bool(applied)

    async def read(self, tenant: str, start_ms: int, end_ms: int) -> Buckets:
        """Every bucket of the tenant overlapping [start_ms, end_ms), in one pipeline."""
        p = tenant_prefix(tenant)
        hours = hours_between(start_ms, end_ms)
        pipe = self._redis.pipeline(transaction=False)
        pipe.smembers(f"{p}:queues")
        for hour in hours:
            pipe.hgetall(f"{p}:n:{hour}")
            pipe.hgetall(f"{p}:r:{hour}")
            for kind in SAMPLE_KINDS:
                pipe.zrange(f"{p}:s:{kind}:{hour}", 0, -1, withscores=True)
        replies = await pipe.execute()
        out = Buckets(queues=set(replies[0]))
        per_hour = 2 + len(SAMPLE_KINDS)
        for i, hour in enumerate(hours):
            counts, reasons, *samples = replies[1 + i * per_hour : 1 + (i + 1) * per_hour]
            for name, value in counts.items():
                kind, queue, sub = name.split("|", 2)
                out.counts[(hour, queue, kind, sub)] += int(value)
            for name, value in reasons.items():
                queue, reason = name.split("|", 1)
                out.reasons[(hour, queue, reason)] += int(value)
            for kind, members in zip(SAMPLE_KINDS, samples, strict=True):
                for member, seconds in members:
                    queue = member.split("|", 1)[0]
                    out.samples[(hour, queue, kind)].append(float(seconds))
        return out


@dataclass
class Buckets:
    """What the store holds for a range: keyed by (hour, queue, ...)."""

    queues: set[str]
    counts: defaultdict[tuple[int, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    reasons: defaultdict[tuple[int, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    samples: defaultdict[tuple[int, str, SampleKind], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )


def limits_of(settings: CommonSettings, retention_days: float) -> Limits:
    return Limits(
        marker_ttl_ms=int(settings.dedupe_ttl_hours * HOUR_MS),
        retention_ms=int(retention_days * 24 * HOUR_MS),
        journey_ttl_ms=int(retention_days * 24 * HOUR_MS),
    )
