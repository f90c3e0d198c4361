"""The analytics API's answer, computed from the stored buckets (no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from services.handoff.analytics.domain import HOUR_MS, SampleKind, hours_between, percentile, rate
from services.handoff.analytics.store import Buckets

TOP_REASONS = 10


class Durations(BaseModel):
    count: int = Field(description="How many were measured.")
    p50: float | None = Field(description="Median, seconds (nearest rank); null: none measured.")
    p90: float | None = Field(description="90th percentile, seconds (nearest rank).")


class ReasonCount(BaseModel):
    reason: str
    count: int


class Figures(BaseModel):
    handoffs: int = Field(description="Handoffs (ModeChanged to human) in the range.")
    handoffs_by_cause: dict[str, int]
    top_reasons: list[ReasonCount] = Field(description=f"The {TOP_REASONS} commonest reasons.")
    returns_to_ai: int = Field(description="Returns to the AI (ModeChanged to ai).")
    returns_by_cause: dict[str, int]
    bounce_backs: int = Field(description="Handoffs within 24 h of the user's last return.")
    bounce_back_rate: float | None = Field(description="bounce_backs / handoffs; null: none.")
    pickup_wait_seconds: Durations = Field(description="Ticket created -> first assigned.")
    first_human_reply_seconds: Durations = Field(description="Handoff -> first human reply.")
    handle_seconds: Durations = Field(description="First assigned -> resolved or closed.")


class Point(BaseModel):
    start: datetime = Field(description="The bucket's start (an hour).")
    handoffs: int
    handoffs_by_queue: dict[str, int]
    handoffs_by_cause: dict[str, int]
    returns_by_cause: dict[str, int]
    pickups: int
    pickup_wait_p50: float | None
    pickup_wait_p90: float | None


class QueueFigures(Figures):
    queue: str
    series: list[Point]


class Analytics(BaseModel):
    tenant: str
    from_: datetime = Field(alias="from", description="Start of the range (inclusive).")
    to: datetime = Field(description="End of the range (exclusive).")
    bucket_seconds: int = Field(description="The series' bucket: one hour.")
    totals: Figures
    series: list[Point] = Field(description="Every bucket of the range, all queues together.")
    queues: list[QueueFigures] = Field(description="The same per queue, by name.")

    model_config = {"populate_by_name": True}


QueueFilter = Callable[[str], bool]


def report(tenant: str, start: datetime, end: datetime, b: Buckets) -> Analytics:
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    hours = hours_between(start_ms, end_ms)
    queues = sorted(b.queues)
    return Analytics(
        tenant=tenant,
        from_=start,
        to=end,
        bucket_seconds=HOUR_MS // 1000,
        totals=_figures(b, lambda q: True),
        series=[_point(b, h, lambda q: True) for h in hours],
        queues=[
            QueueFigures(
                queue=q,
                series=[_point(b, h, q.__eq__) for h in hours],
                **_figures(b, q.__eq__).model_dump(),
            )
            for q in queues
        ],
    )


def _by(b: Buckets, kind: str, keep: QueueFilter, hour: int | None = None) -> dict[str, int]:
    out: defaultdict[str, int] = defaultdict(int)
    for (h, queue, k, sub), n in b.counts.items():
        if k == kind and keep(queue) and (hour is None or h == hour):
            out[sub] += n
    return dict(sorted(out.items()))


def _samples(
    b: Buckets, kind: SampleKind, keep: QueueFilter, hour: int | None = None
) -> list[float]:
    return [
        s
        for (h, queue, k), values in b.samples.items()
        if k == kind and keep(queue) and (hour is None or h == hour)
        for s in values
    ]


def _durations(values: list[float]) -> Durations:
    return Durations(count=len(values), p50=percentile(values, 0.5), p90=percentile(values, 0.9))


def _figures(b: Buckets, keep: QueueFilter) -> Figures:
    handoffs = _by(b, "handoffs", keep)
    returns = _by(b, "returns", keep)
    bounces = sum(_by(b, "bounce_backs", keep).values())
    reasons: defaultdict[str, int] = defaultdict(int)
    for (_, queue, reason), n in b.reasons.items():
        if keep(queue):
            reasons[reason] += n
    top = sorted(reasons.items(), key=lambda r: (-r[1], r[0]))[:TOP_REASONS]
    total = sum(handoffs.values())
    return Figures(
        handoffs=total,
        handoffs_by_cause=handoffs,
        top_reasons=[ReasonCount(reason=r, count=n) for r, n in top],
        returns_to_ai=sum(returns.values()),
        returns_by_cause=returns,
        bounce_backs=bounces,
        bounce_back_rate=rate(bounces, total),
        pickup_wait_seconds=_durations(_samples(b, "pickup", keep)),
        first_human_reply_seconds=_durations(_samples(b, "first_reply", keep)),
        handle_seconds=_durations(_samples(b, "handle", keep)),
    )


def _point(b: Buckets, hour: int, keep: QueueFilter) -> Point:
    by_queue: defaultdict[str, int] = defaultdict(int)
    for (h, queue, k, _), n in b.counts.items():
        if k == "handoffs" and h == hour and keep(queue):
            by_queue[queue] += n
    waits = _samples(b, "pickup", keep, hour)
    return Point(
        start=datetime.fromtimestamp(hour / 1000, UTC),
        handoffs=sum(by_queue.values()),
        handoffs_by_queue=dict(sorted(by_queue.items())),
        handoffs_by_cause=_by(b, "handoffs", keep, hour),
        returns_by_cause=_by(b, "returns", keep, hour),
        pickups=len(waits),
        pickup_wait_p50=percentile(waits, 0.5),
        pickup_wait_p90=percentile(waits, 0.9),
    )
