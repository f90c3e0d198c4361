"""What the page shows of its own conversation: the recorded transcript and who is answering.

Read-only, straight from Redis: the handoff service records every turn (user, AI, notice,
desk) in the interaction's transcript stream and keeps the mode and the ticket in hashes. The
gateway reads them itself rather than calling the operator API: that API's tokens are scoped
to one tenant and carry an operator's role, and the gateway serves every tenant as their end
users, whose only authority is the signed cookie. It never writes here.

The key layout is the handoff service's (services/handoff/state/keys.py); the gateway must not
import that service, so the few names it reads are spelled here (the shards come from
services/common/shards.py, as for every service), and
tests/unit/test_webchat_conversation.py pins them to keys.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from services.common.redis_options import redis_options
from services.common.settings import CommonSettings
from services.common.shards import shard_of
from services.common.shards import shard_tag as tag_of

Answering = Literal["ai", "waiting", "human"]


def shard_tag(ikey: str) -> str:
    return tag_of(shard_of(ikey))


def state_key(ikey: str) -> str:
    return f"ho:state:{shard_tag(ikey)}:{ikey}"


def transcript_key(ikey: str) -> str:
    return f"ho:transcript:{shard_tag(ikey)}:{ikey}"


def ticket_key(ikey: str, ticket_id: str) -> str:
    return f"ho:ticket:{shard_tag(ikey)}:{ticket_id}"


@dataclass(frozen=True)
class Who:
    """Who answers the user now: the AI, nobody yet (queued: `position` in line), or a
    teammate (`name`: the display name they claimed with)."""

    by: Answering
    name: str | None = None
    position: int | None = None


class ConversationReader:
    def __init__(self, redis: aioredis.Redis, turns: int) -> None:
        self._redis = redis
        self._turns = turns

    @classmethod
    def from_settings(cls, settings: CommonSettings, turns: int) -> ConversationReader:
        """Connected as the settings say, transport security (R23) included."""
        url, timeout = settings.redis_url, settings.redis_timeout_seconds
        options = {"decode_responses": True, "socket_timeout": timeout, **redis_options(settings)}
        if settings.redis_cluster:
            client = cast(aioredis.Redis, RedisCluster.from_url(url, **options))
        else:
            client = aioredis.from_url(url, **options)
        return cls(client, turns)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()

    async def turns(self, ikey: str) -> list[dict[str, Any]]:
        """The last recorded turns, oldest first (TranscriptTurn JSON)."""
        entries = await self._redis.xrevrange(transcript_key(ikey), count=self._turns)
        return [json.loads(f["turn"]) for _, f in reversed(cast(list[Any], entries))]

    async def answering(self, ikey: str) -> Who:
        state = cast(dict[str, str], await self._redis.hgetall(state_key(ikey)))
        if state.get("mode") != "human":
            return Who("ai")
        ticket_id = state.get("ticket_id")
        ticket: dict[str, str] = {}
        if ticket_id:
            ticket = cast(dict[str, str], await self._redis.hgetall(ticket_key(ikey, ticket_id)))
        if ticket.get("status") == "assigned" and ticket.get("assignee"):
            return Who("human", name=ticket.get("assignee_name") or "A teammate")
        position = ticket.get("notified_position")
        return Who("waiting", position=int(position) if position else None)
