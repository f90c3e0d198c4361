"""Reading the topics as an ops person does: a time window, decoded, in order.

Reads with a consumer outside any group (it commits nothing and disturbs no service), in
read_committed, from the first offset at `since` (or the beginning) to the end offsets seen
when it started, or forever with `follow`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    raw: bytes
    value: dict[str, Any] | None  # the decoded JSON object, None when it is not one
    headers: tuple[tuple[str, bytes | None], ...] = ()  # e.g. the trace context

    @property
    def type(self) -> str:
        return str(self.value.get("type", "")) if self.value else "(undecodable)"

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def parse_since(text: str | None, now: float | None = None) -> int | None:
    """`15m`, `2h`, `1d` ago, or an ISO time, as epoch milliseconds; None for "from the start"."""
    if not text:
        return None
    match = _DURATION.match(text.strip())
    if match:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        return int(((now if now is not None else time.time()) - seconds) * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a duration like 15m/2h/1d nor an ISO time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def since_option(text: str | None, option: str = "--since") -> int | None:
    """parse_since for a command's option: a bad value is a usage error (exit 2)."""
    try:
        return parse_since(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def resolve_topic(settings: CommonSettings, name: str) -> str:
    """A contract name (chat.inbound) or an already prefixed one, as this deployment names it."""
    by_contract = {
        "chat.inbound": settings.topics.inbound,
        "chat.ai-requests": settings.topics.ai_requests,
        "chat.human-queue": settings.topics.human_queue,
        "agent.replies": settings.topics.agent_replies,
        "chat.outbound": settings.topics.outbound,
        "handoff.commands": settings.topics.commands,
        "handoff.operator-commands": settings.topics.operator_commands,
        "handoff.events": settings.topics.events,
        "chat.dead-letter": settings.topics.dead_letter,
    }
    return by_contract.get(name, name)


def decode_value(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


async def read_topics(
    settings: CommonSettings,
    topics: list[str],
    since_ms: int | None = None,
    until_ms: int | None = None,
    follow: bool = False,
) -> AsyncIterator[Rec]:
    """The records of `topics` from `since_ms`, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(
        **aiokafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    consumer.subscribe(topics)  # without a group: every partition, with fresh metadata
    await consumer.start()
    try:
        partitions = sorted(consumer.assignment())
        missing = set(topics) - {tp.topic for tp in partitions}
        if missing:
            raise LookupError(f"no such topic: {', '.join(sorted(missing))}")
        await _seek(consumer, partitions, since_ms)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while follow or pending:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for r in records:
                    if until_ms is not None and r.timestamp > until_ms:
                        pending.discard(tp)
                        break
                    yield Rec(r.topic, r.partition, r.offset, r.timestamp,
                              r.key.decode("utf-8", "replace") if r.key is not None else None,
                              r.value or b"", decode_value(r.value or b""),
                              tuple(r.headers))  # fmt: skip
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


async def _seek(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: int | None
) -> None:
    if since is None:
        await consumer.seek_to_beginning(*partitions)
        return
    found = await consumer.offsets_for_times({tp: since for tp in partitions})
    ends = await consumer.end_offsets(partitions)
    for tp in partitions:
        hit = found.get(tp)
        consumer.seek(tp, hit.offset if hit is not None else ends[tp])
