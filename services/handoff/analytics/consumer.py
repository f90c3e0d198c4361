"""The analytics worker: reads `handoff.events` and `chat.outbound`, keeps the R21 figures.

A TransactionalProcessor (group `handoff-analytics`) with no outputs but dead letters: the
batch's offsets are committed after its records are applied. Each record is applied at most
once whatever happens (store.apply_once), so a replayed batch changes nothing twice. Records
are read as the contract defines them (schemas/), nothing else of the writers is assumed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from schemas import ModeChanged, OutboundMessage, TicketChanged, interaction_key
from schemas.events import Model
from services.common.kafka import Handled, Record, dead_letter
from services.common.settings import Topics
from services.handoff.analytics.domain import (
    Count,
    Fact,
    HumanReply,
    Journey,
    ModeChange,
    Sample,
    TicketChange,
    epoch_ms,
    fold,
)
from services.handoff.analytics.store import AnalyticsStore

log = structlog.get_logger()

WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
PICKUP_WAIT = Histogram(
    "handoff_pickup_wait_seconds",
    "Ticket created -> first assigned.",
    ["tenant", "queue"],
    buckets=WAIT_BUCKETS,
)
FIRST_HUMAN_REPLY = Histogram(
    "handoff_first_human_reply_seconds",
    "Handoff -> the first chat.outbound record with sender human.",
    ["tenant", "queue"],
    buckets=WAIT_BUCKETS,
)
HANDLE = Histogram(
    "handoff_handle_seconds",
    "Ticket first assigned -> resolved or closed.",
    ["tenant", "queue"],
    buckets=WAIT_BUCKETS,
)
HANDOFFS = Counter("handoff_handoffs_total", "Handoffs to a human.", ["tenant", "queue", "cause"])
RETURNS = Counter("handoff_returns_to_ai_total", "Returns to the AI.", ["tenant", "cause"])
BOUNCE_BACKS = Counter(
    "handoff_bounce_backs_total",
    "Handoffs less than 24 h after the user's last return to the AI.",
    ["tenant", "queue"],
)
SKIPPED = Counter(
    "handoff_analytics_duplicates_total",
    "Records the analytics had applied before (replays, repeats): counted once.",
)
_HISTOGRAMS = {"pickup": PICKUP_WAIT, "first_reply": FIRST_HUMAN_REPLY, "handle": HANDLE}


def _fact(model: Model) -> tuple[str, str, str, Fact] | None:
    """(tenant, interaction key, marker, fact) of a record the analytics read."""
    if isinstance(model, ModeChanged):
        at = epoch_ms(model.changed_at)
        fact: Fact = ModeChange(model.event_id, model.to_mode, model.cause, model.reason, at)
        return model.tenant_id, interaction_key(model), f"mc:{model.event_id}", fact
    if isinstance(model, TicketChanged):
        fact = TicketChange(
            model.ticket_id,
            model.queue,
            model.from_status,
            model.status,
            epoch_ms(model.changed_at),
        )
        return model.tenant_id, interaction_key(model), f"tc:{model.event_id}", fact
    if isinstance(model, OutboundMessage) and model.sender == "human":
        fact = HumanReply(epoch_ms(model.sent_at))
        return model.tenant_id, interaction_key(model), f"om:{model.event_id}", fact
    return None


class AnalyticsConsumer:
    """The batch handler: decodes, folds and applies each record, in the batch's order."""

    def __init__(self, store: AnalyticsStore, topics: Topics) -> None:
        self._store = store
        self._topics = topics
        self._models: dict[str, dict[str, type[Model]]] = {
            topics.events: {"mode_changed": ModeChanged, "ticket_changed": TicketChanged},
            topics.outbound: {"outbound_message": OutboundMessage},
        }

    async def __call__(self, records: Sequence[Record]) -> Handled:
        handled = Handled()
        journeys: dict[tuple[str, str], Journey] = {}  # as applied in this batch
        for record in records:
            model = self._decode(record, handled)
            found = _fact(model) if model is not None else None
            if found is None:
                continue
            tenant, ikey, marker, fact = found
            journey = journeys.get((tenant, ikey))
            if journey is None:
                journey = await self._store.journey(tenant, ikey)
            step = fold(journey, fact)
            if await self._store.apply_once(tenant, marker, ikey, step.journey, step.effects):
                journeys[(tenant, ikey)] = step.journey
                # Observed now, not at the commit: the Redis step just applied happens once
                # per record whatever becomes of this batch, and so does this.
                _observe(tenant, step.effects)
            else:
                SKIPPED.inc()
                journeys.pop((tenant, ikey), None)  # unchanged by this record: read it again
        return handled

    def _decode(self, record: Record, handled: Handled) -> Model | None:
        """The record as one of the models the analytics read; None for any other record
        (other types share these topics). A record of one of those types that does not
        validate is dead-lettered with the reason: it cannot be counted."""
        try:
            data: Any = json.loads(record.value or b"")
        except (ValueError, RecursionError):
            return None  # not JSON: not one of ours; its own consumers dead-letter it
        if not isinstance(data, dict):
            return None
        model = self._models.get(record.topic, {}).get(str(data.get("type")))
        if model is None or (model is OutboundMessage and data.get("sender") != "human"):
            return None  # not read (AI answers and notices are most of chat.outbound)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()
            )
            handled.dead_letter(
                self._topics.dead_letter, dead_letter(record, "schema_invalid", detail)
            )
            return None


def _observe(tenant: str, effects: list[Any]) -> None:
    for e in effects:
        if isinstance(e, Sample):
            _HISTOGRAMS[e.kind].labels(tenant, e.queue).observe(e.seconds)
        elif isinstance(e, Count):
            if e.kind == "handoffs":
                HANDOFFS.labels(tenant, e.queue, e.sub).inc()
            elif e.kind == "returns":
                RETURNS.labels(tenant, e.sub).inc()
            else:
                BOUNCE_BACKS.labels(tenant, e.queue).inc()
