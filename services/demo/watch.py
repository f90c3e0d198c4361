"""The demo's eyes: every record about one interaction on the topics it watches, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.common.follow import Follower
from services.common.settings import CommonSettings, Topics


@dataclass(frozen=True)
class Seen:
    topic: str
    value: dict[str, Any]


def key_of(value: dict[str, Any]) -> str:
    ids = value.get("message", value)
    user = ids.get("user") or {}
    return f"{ids.get('tenant_id')}:{ids.get('agent_id')}:{user.get('channel')}:" + (
        user.get("external_id") or ""
    )


class Watch:
    def __init__(self, settings: CommonSettings, topics: Topics, ikey: str) -> None:
        self.topics = topics
        self.ikey = ikey
        watched = [
            topics.ai_requests, topics.human_queue, topics.agent_replies, topics.outbound,
            topics.commands, topics.events,
        ]  # fmt: skip
        self._follower = Follower(settings, watched)
        self.seen: list[Seen] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._follower.start()
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._follower.stop()

    async def _collect(self) -> None:
        while True:
            records = await self._follower.poll()
            for r in records:
                if r.key is None or r.key.decode("utf-8", "replace") != self.ikey:
                    continue
                try:
                    value = json.loads(r.value or b"")
                except ValueError:
                    continue
                if isinstance(value, dict):
                    self.seen.append(Seen(r.topic, value))
            if records:
                self._changed.set()

    def on(self, topic: str, where: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [s.value for s in self.seen if s.topic == topic and where(s.value)]

    async def first(
        self, topic: str, where: Callable[[dict[str, Any]], bool], within_s: float, what: str
    ) -> dict[str, Any]:
        """The first record of `topic` matching `where`, waiting up to `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while not (found := self.on(topic, where)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {within_s:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return found[0]
