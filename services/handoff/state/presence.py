"""Who is replying to a user right now ("Jane is replying", issue 14), in Redis.

Presence is ephemeral: it changes no state and decides nothing, so it is neither a
Redis function nor an event on the log. One hash per interaction (`keys.presence_key`), a
field per teammate with how long it holds; the key's TTL (the longest hold) removes it
once everyone has stopped, and reads skip the fields past their hold. Times are this
process's clock: a hold of seconds needs no shared one (no mode depends on it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Literal, cast

from services.handoff.state.keys import presence_key
from services.handoff.state.reader import StateClient

Activity = Literal["composing", "replied"]


@dataclass(frozen=True)
class Teammate:
    sub: str
    display_name: str
    activity: Activity
    at_ms: int  # when the activity was last seen


class PresenceStore:
    def __init__(self, state: StateClient, composing_ms: int, replied_ms: int) -> None:
        self._redis = state.redis
        self._hold_ms: dict[Activity, int] = {"composing": composing_ms, "replied": replied_ms}

    async def mark(self, ikey: str, sub: str, name: str, activity: Activity) -> None:
        now = int(time.time() * 1000)
        value = {"name": name, "activity": activity, "at": now}
        value["until"] = now + self._hold_ms[activity]
        key = presence_key(ikey)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, sub, json.dumps(value))
            pipe.pexpire(key, max(self._hold_ms.values()))
            await pipe.execute()

    async def clear(self, ikey: str, sub: str) -> None:
        """The teammate stopped composing (sent, or cleared the draft); a reply they just made
        stays shown (the reply replaced their composing)."""
        key = presence_key(ikey)
        raw = cast(str | None, await self._redis.hget(key, sub))
        if raw and json.loads(raw).get("activity") == "composing":
            await self._redis.hdel(key, sub)

    async def name_of(self, ikey: str, sub: str) -> str | None:
        """The display name the teammate gave with their last heartbeat here, if any."""
        raw = cast(str | None, await self._redis.hget(presence_key(ikey), sub))
        return str(json.loads(raw)["name"]) if raw else None

    async def others(self, ikey: str, sub: str) -> list[Teammate]:
        """The teammates other than `sub` composing or who just replied, the latest first."""
        raw = cast(dict[str, str], await self._redis.hgetall(presence_key(ikey)))
        now = int(time.time() * 1000)
        found = []
        for who, value in raw.items():
            if who == sub:
                continue
            doc = json.loads(value)
            if int(doc["until"]) > now:
                found.append(Teammate(who, str(doc["name"]), doc["activity"], int(doc["at"])))
        return sorted(found, key=lambda t: -t.at_ms)
