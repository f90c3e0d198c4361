"""The timeout worker's store: the sweeps' atomic steps and the shard outbox it relays.

Every change made outside a Kafka consumer's transaction (a timeout revert, an operator API
call, a ticket step) is written into its shard's outbox stream (`ho:outbox:{hN}`) in the same
Redis function call as the state change; the relay (services/timeout/worker.py) publishes
each entry once, in a Kafka transaction that also commits its per-shard checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from services.handoff.state.keys import deadlines_key, outbox_key, shard_tag
from services.handoff.state.ticket_store import TicketStore

# A record queued in an outbox: (topic role, Kafka key, JSON value); see Topics.for_role.
QueuedOutput = tuple[str, str, str]
# W3C trace context fields (traceparent, tracestate) of a queued record: its Kafka headers.
TraceCarrier = dict[str, str]


class Revert(NamedTuple):
    """A timeout revert among an outbox entry's records (for the relay's metrics and logs)."""

    ikey: str
    event_id: str
    version: int
    due_at_ms: int | None


# handoff.lua's separators in a revert entry (see REVERTS_PER_ENTRY there): JSON text holds no
# raw control character, and interaction keys are printable.
UNIT, RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class OutboxEntry:
    """One entry of a shard's outbox, published whole: the records queued by a change made
    outside a Kafka consumer, or by timeout reverts (each one's ModeChanged, return notice
    and ticket change, written by handoff.lua)."""

    shard: int
    seq: int  # the stream id as one increasing number (see outbox_seq)
    outputs: list[QueuedOutput]
    # outputs[i]'s trace context ({} = none): a queued record's optional fourth element.
    traces: list[TraceCarrier]
    reverts: list[Revert]
    # An entry queued by the library of before issue 15: one revert whose ModeChanged the
    # relay builds from this change record (`outputs` hold its other records).
    legacy_change: dict[str, Any] | None = None

    @property
    def weight(self) -> int:
        """What it counts for in the relay's budget per sweep: its reverts, or one."""
        return max(1, len(self.reverts))

    @classmethod
    def of(cls, shard: int, entry_id: str, fields: dict[str, str]) -> OutboxEntry:
        seq = outbox_seq(entry_id)
        if "records" in fields:  # timeout reverts
            outputs: list[QueuedOutput] = []
            for record in fields["records"].split(RECORD):
                role, key, value = record.split(UNIT)
                outputs.append((role, key, value))
            reverts = [_revert(r.split(UNIT)) for r in fields["reverts"].split(RECORD)]
            return cls(shard, seq, outputs, [{}] * len(outputs), reverts)
        queued = json.loads(fields.get("out", "[]"))
        outputs = [(q[0], q[1], q[2]) for q in queued]
        traces = [dict(q[3]) if len(q) > 3 and q[3] else {} for q in queued]
        legacy = json.loads(fields["change"]) if "change" in fields else None
        if legacy is None:
            return cls(shard, seq, outputs, traces, [])
        old = Revert(legacy["ikey"], legacy["event_id"], legacy["version"], legacy.get("due_at"))
        return cls(shard, seq, outputs, traces, [old], legacy)


def _revert(parts: list[str]) -> Revert:
    ikey, event_id, version, due_at = parts
    return Revert(ikey, event_id, int(version), int(due_at) if due_at else None)


def outbox_seq(entry_id: str) -> int:
    """A stream id `<ms>-<n>` as one int64 that orders like it: the Kafka checkpoint.

    Ids are time-based, so numbers keep growing even when Redis lost the stream."""
    ms, n = entry_id.split("-")
    return (int(ms) << 20) | int(n)


def stream_id(seq: int) -> str:
    return f"{seq >> 20}-{seq & 0xFFFFF}"


class TimeoutStore(TicketStore):
    async def expire_due(self, shards: Iterable[int], limit_per_shard: int) -> int:
        """Reverts every expired lease of these shards; the reverts land in their outboxes."""
        lim = self.limits
        calls = [
            ("FCALL", "ho_expire_due", 2, deadlines_key(tag), outbox_key(tag),
             tag, limit_per_shard, lim.history_cap, lim.transcript_cap)
            for tag in map(shard_tag, shards)
        ]  # fmt: skip
        return sum(int(c) for c in await self._pipeline("expire_due", calls)) if calls else 0

    async def read_outboxes(self, after: dict[int, int], count: int) -> list[OutboxEntry]:
        """Each shard's entries numbered above `after[shard]` (its checkpoint), in order, at
        most `count` per shard; one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, seq in after.items():
                pipe.xrange(outbox_key(shard_tag(shard)), min=f"({stream_id(seq)}", count=count)
            results = await pipe.execute()
        return [
            OutboxEntry.of(shard, entry_id, fields)
            for shard, entries in zip(after, results, strict=True)
            for entry_id, fields in entries
        ]

    async def trim_outbox(self, upto: dict[int, int]) -> None:
        """Drops entries already published (numbered up to `upto[shard]`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, seq in upto.items():
                pipe.xtrim(outbox_key(shard_tag(shard)), minid=stream_id(seq + 1))
            await pipe.execute()
