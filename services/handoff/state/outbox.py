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
from typing import Any

from services.handoff.state.keys import deadlines_key, outbox_key, shard_tag
from services.handoff.state.ticket_store import TicketStore

# A record queued in an outbox: (topic role, Kafka key, JSON value); see Topics.for_role.
QueuedOutput = tuple[str, str, str]
# W3C trace context fields (traceparent, tracestate) of a queued record: its Kafka headers.
TraceCarrier = dict[str, str]


@dataclass(frozen=True)
class OutboxEntry:
    """One entry of a shard's outbox: a timeout revert's change record (published as its
    ModeChanged, with its return notice in `outputs`), or records queued as they are by a
    change made outside a Kafka consumer."""

    shard: int
    seq: int  # the stream id as one increasing number (see outbox_seq)
    change: dict[str, Any] | None
    outputs: list[QueuedOutput]
    # outputs[i]'s trace context ({} = none): a queued record's optional fourth element.
    traces: list[TraceCarrier]

    @classmethod
    def of(cls, shard: int, entry_id: str, fields: dict[str, str]) -> OutboxEntry:
        change = json.loads(fields["change"]) if "change" in fields else None
        queued = json.loads(fields.get("out", "[]"))
        outputs = [(q[0], q[1], q[2]) for q in queued]
        traces = [dict(q[3]) if len(q) > 3 and q[3] else {} for q in queued]
        return cls(shard, outbox_seq(entry_id), change, outputs, traces)


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
        """Each shard's queued reverts numbered above `after[shard]` (its checkpoint), in
        order, at most `count` per shard; one round trip."""
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
