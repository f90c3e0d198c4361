"""`GET /v1/tenants/{t}/analytics` (R21): the human side's figures for a time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.handoff.analytics.report import Analytics, report
from services.handoff.analytics.store import AnalyticsStore, limits_of
from services.handoff.api.auth import Operator, tenant_scope
from services.handoff.api.context import ApiContext, api_context
from services.handoff.api.errors import ApiError, responses

router = APIRouter(prefix="/v1/tenants/{t}")


def _missing(_: dict[str, Any]) -> ApiError:
    return ApiError(404, "not_found", "No such resource.")


ReadTenant = Annotated[Operator, Depends(tenant_scope(_missing))]
Ctx = Annotated[ApiContext, Depends(api_context)]
When = Annotated[
    datetime | None,
    Query(description="RFC 3339 with a time zone, e.g. `2026-11-25T10:00:00Z`."),
]


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ApiError(422, "invalid_range", f"`{name}` needs a time zone (e.g. a trailing Z).")
    return value.astimezone(UTC)


@router.get(
    "/analytics",
    response_model=Analytics,
    response_model_by_alias=True,
    responses=responses(401, 404, 422, 503),
    summary="Handoffs, pickup wait, replies, handle time, returns and bounce-backs (R21)",
    description="Totals and hourly series of the range [`from`, `to`), for all queues and per "
    "queue. Defaults: the last 24 hours. A bucket is an hour; it belongs to the range when it "
    "overlaps it, so figures are whole hours. 422 `invalid_range` when `from` is not before "
    "`to` or the range is longer than the longest allowed (31 days by default). How each "
    "figure is computed: README, Analytics.",
    tags=["analytics"],
)
async def analytics(
    t: str,
    operator: ReadTenant,
    ctx: Ctx,
    from_: Annotated[When, Query(alias="from")] = None,
    to: When = None,
) -> Analytics:
    try:
        end = _aware("to", to) if to is not None else datetime.now(UTC)
        start = _aware("from", from_) if from_ is not None else end - timedelta(hours=24)
    except OverflowError as exc:  # e.g. year 9999 with a negative offset: past UTC's range
        raise ApiError(422, "invalid_range", "A time is outside the supported range.") from exc
    longest = timedelta(days=ctx.settings.analytics_max_range_days)
    if start >= end:
        raise ApiError(422, "invalid_range", "`from` must be before `to`.")
    if end - start > longest:
        raise ApiError(
            422,
            "invalid_range",
            f"The range is longer than {ctx.settings.analytics_max_range_days} days.",
        )
    limits = limits_of(ctx.settings, ctx.settings.analytics_retention_days)
    store = AnalyticsStore(ctx.store.redis, limits)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    return report(t, start, end, await store.read(t, start_ms, end_ms))
