"""The agent's own state: how many turns in a row it could not answer, per interaction.

The count lives under the interaction's shard tag (the same Redis Cluster slot as its mode
state), with a TTL that each message renews. Counting is replay-safe: each message's result
is remembered under its event id, so a batch handled again (a transaction aborted, a
restart) gets the same count back instead of counting twice. A Live Test conversation counts
apart from the live user's (R12: it never touches a live user's state).
"""

from __future__ import annotations

from typing import Literal

import redis.asyncio as aioredis

from services.handoff.state.keys import InteractionKeys

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


def failures_key(ikey: str, live_test: bool) -> str:
    k = InteractionKeys(ikey)
    return f"ho:agent-failures:{k.tag}:{ikey}" + (":live-test" if live_test else "")


class FailureCounter:
    def __init__(self, redis: aioredis.Redis, ttl_ms: int) -> None:
        self._redis = redis
        self._ttl_ms = ttl_ms
        self._step = redis.register_script(_STEP)

    async def step(
        self, ikey: str, live_test: bool, event_id: str, op: Literal["fail", "reset"]
    ) -> int:
        """Counts one more failed turn, or resets the count; returns the count after it."""
        key = failures_key(ikey, live_test)
        result = await self._step(keys=[key, f"{key}\x1f{event_id}"], args=[op, self._ttl_ms])
        return int(result)
