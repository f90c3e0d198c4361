"""Queues and tickets of the operator API (R14-R18).

Same rules as the rest: viewers read, editors and admins write, a path of another tenant
answers 404 exactly like a missing queue or ticket. Ticket actions answer the new ticket;
409 with a stable code when the ticket's state refuses the action or a racing action won.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from services.handoff.api import models as m
from services.handoff.api.audit import audit
from services.handoff.api.auth import Operator, tenant_scope
from services.handoff.api.context import ApiContext, api_context
from services.handoff.api.errors import ApiError, responses
from services.handoff.domain.modes import at_ms
from services.handoff.domain.tickets import DEFAULT_QUEUE, QueueSettings, Refusal
from services.handoff.service.ticket_actions import ActionRequest, Caller
from services.handoff.service.waiting import queue_status
from services.handoff.state.keys import queues_key
from services.handoff.state.ticket_store import QueueRecord, QueueVersionConflictError

router = APIRouter(prefix="/v1/tenants/{t}")

Tenant = Annotated[str, Path(description="Tenant id; must be the token's `tenant`.")]
QueueName = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="Queue id.")
]
TicketId = Annotated[str, Path(min_length=1, max_length=128, description="Ticket id.")]
Ctx = Annotated[ApiContext, Depends(api_context)]


def queue_missing(_: dict[str, Any]) -> ApiError:
    # Every queue id of one's own tenant answers (unconfigured: the defaults), so another
    # tenant's queues answer like an unknown path.
    return ApiError(404, "not_found", "No such resource.")


def ticket_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(404, "ticket_not_found", f"No ticket {p.get('ticket_id')}.")


ReadQueue = Annotated[Operator, Depends(tenant_scope(queue_missing))]
WriteQueue = Annotated[Operator, Depends(tenant_scope(queue_missing, write=True))]
ReadTicket = Annotated[Operator, Depends(tenant_scope(ticket_missing))]
WriteTicket = Annotated[Operator, Depends(tenant_scope(ticket_missing, write=True))]


def _view(queue: str, record: QueueRecord | None) -> m.QueueView:
    return m.QueueView(
        queue=queue,
        configured=record is not None,
        version=record.version if record else 0,
        updated_at=record.updated_at if record else None,
        updated_by=record.updated_by if record else None,
        settings=record.settings if record else QueueSettings(),
    )


async def _now(ctx: ApiContext, t: str) -> int:
    return await ctx.store.redis_now_ms(queues_key(t))


async def _status(ctx: ApiContext, t: str, q: str, settings: QueueSettings) -> m.QueueStatusView:
    s = ctx.settings
    now = await _now(ctx, t)
    hours_now = now + (await ctx.store.test_clock_offset(t) if s.test_clock else 0)
    status = await queue_status(ctx.store, t, q, now, s.minute_ms, s.teammate_online_ms)
    hours = settings.opening_hours()
    opens = hours.next_opening_ms(hours_now)
    oldest = status.oldest_wait_ms(now)
    p50, p90 = status.pickup_p50_ms(), status.pickup_p90_ms()
    return m.QueueStatusView(
        open_now=hours.is_open(hours_now),
        next_opening=at_ms(opens) if opens is not None else None,
        next_opening_text=hours.describe(opens) if opens is not None else None,
        waiting=status.waiting,
        assigned=status.assigned,
        oldest_wait_seconds=oldest / 1000 if oldest is not None else None,
        pickups_last_hour=len(status.pickup_waits_ms),
        pickup_p50_seconds=p50 / 1000 if p50 is not None else None,
        pickup_p90_seconds=p90 / 1000 if p90 is not None else None,
        teammates_online=status.teammates_online,
        eta_minutes_next=status.eta_minutes(status.waiting + 1),
    )


@router.get(
    "/queues",
    response_model=m.QueueList,
    responses=responses(401, 404),
    summary="The tenant's queues (R14): the configured ones and `default`",
    tags=["queues"],
)
async def list_queues(t: Tenant, operator: ReadQueue, ctx: Ctx) -> m.QueueList:
    records = {r.queue: r for r in await ctx.store.queues(t)}
    names = sorted(set(records) | {DEFAULT_QUEUE})
    return m.QueueList(items=[_view(q, records.get(q)) for q in names])


@router.get(
    "/queues/{q}",
    response_model=m.QueueView,
    responses=responses(401, 404, 422),
    summary="A queue's settings and live status (R14, R16, R17)",
    description="Any queue id answers: one never configured has the defaults (always "
    "open, no pickup target) and `configured: false`. Status: waiting and assigned "
    "counts, the oldest wait, pickup p50/p90 over the last hour, teammates online, whether "
    "it is open and when it opens next.",
    tags=["queues"],
)
async def get_queue(t: Tenant, q: QueueName, operator: ReadQueue, ctx: Ctx) -> m.QueueView:
    record = await ctx.store.queue(t, q)
    view = _view(q, record)
    view.status = await _status(ctx, t, q, view.settings)
    return view


@router.put(
    "/queues/{q}",
    response_model=m.QueueView,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Create or replace a queue's settings (R14, R17, R18)",
    description="Versioned (each PUT adds one) and audited (`operator_action` "
    "`queue_update`). With `version`, 409 `version_conflict` when the queue is at another "
    "version. Tickets already queued keep their pickup deadline; the no-pickup policy "
    "applied is the one in force when the deadline passes.",
    tags=["queues"],
)
async def put_queue(
    t: Tenant, q: QueueName, body: m.QueueSettingsBody, operator: WriteQueue, ctx: Ctx
) -> m.QueueView:
    at = datetime.now(UTC).isoformat()
    record = audit(operator, "queue_update", t, f"queue:{q}", "applied")
    try:
        await ctx.store.put_queue(
            t, q, body.settings(), at, operator.actor, body.version, with_outputs=[record]
        )
    except QueueVersionConflictError as exc:
        raise ApiError(
            409, "version_conflict", f"The queue is at version {exc.current}, not {body.version}."
        ) from exc
    return await get_queue(t, q, operator, ctx)


@router.get(
    "/queues/{q}/tickets",
    response_model=m.QueueTickets,
    responses=responses(401, 404, 422),
    summary="A queue's open tickets, oldest first, with position and waiting time (R14)",
    tags=["queues"],
)
async def queue_tickets(t: Tenant, q: QueueName, operator: ReadQueue, ctx: Ctx) -> m.QueueTickets:
    now = await _now(ctx, t)
    if operator.can_write:  # a teammate looking at the queue is online (R16)
        await ctx.store.teammate_seen(t, operator.sub, now)
    status = await queue_status(
        ctx.store, t, q, now, ctx.settings.minute_ms, ctx.settings.teammate_online_ms
    )
    return m.QueueTickets(
        queue=q,
        items=[m.TicketView.of(x, status.positions.get(x.ticket_id), now) for x in status.tickets],
    )


@router.get(
    "/tickets/{ticket_id}",
    response_model=m.TicketDetail,
    responses=responses(401, 404, 422),
    summary="One ticket and its TicketChanged history (R15)",
    tags=["tickets"],
)
async def get_ticket(
    t: Tenant, ticket_id: TicketId, operator: ReadTicket, ctx: Ctx
) -> m.TicketDetail:
    ticket = await ctx.tickets.ticket_of(t, ticket_id)
    if ticket is None:
        raise ticket_missing({"ticket_id": ticket_id})
    now = await _now(ctx, t)
    position = await ctx.tickets.queue_position(ticket, now)
    history = await ctx.store.ticket_history(ticket_id)
    view = m.TicketView.of(ticket, position, now)
    return m.TicketDetail(**view.model_dump(), history=history)


async def _act(
    ctx: ApiContext, t: str, ticket_id: str, request: ActionRequest, operator: Operator
) -> m.TicketView:
    caller = Caller(operator.sub, operator.actor, operator.role, operator.token_id)
    result = await ctx.tickets.act(t, ticket_id, request, caller)
    if isinstance(result, Refusal):
        raise ApiError(result.status, result.code, result.detail)
    now = await _now(ctx, t)
    return m.TicketView.of(result.ticket, result.position, now)


_ACTION_ERRORS = responses(401, 403, 404, 409, 422, 503)


@router.post(
    "/tickets/{ticket_id}/claim",
    response_model=m.TicketView,
    responses=_ACTION_ERRORS,
    summary="Claim a queued ticket: the caller (`sub`) becomes its assignee (R15)",
    description="Of many teammates claiming at once exactly one gets 200; the others get "
    "409 `already_assigned`. 409 `ticket_closed` once resolved or closed, "
    "`version_conflict` with a stale `ticket_version`.",
    tags=["tickets"],
)
async def claim(
    t: Tenant, ticket_id: TicketId, operator: WriteTicket, ctx: Ctx, body: m.ClaimBody | None = None
) -> m.TicketView:
    b = body or m.ClaimBody()
    request = ActionRequest("claim", display_name=b.display_name, expected_version=b.ticket_version)
    return await _act(ctx, t, ticket_id, request, operator)


@router.post(
    "/tickets/{ticket_id}/assign",
    response_model=m.TicketView,
    responses=_ACTION_ERRORS,
    summary="Assign an open ticket to a named teammate (R15, editor or admin)",
    description="409 `already_assigned` when it is theirs already, `ticket_closed`.",
    tags=["tickets"],
)
async def assign(
    t: Tenant, ticket_id: TicketId, body: m.AssignBody, operator: WriteTicket, ctx: Ctx
) -> m.TicketView:
    request = ActionRequest(
        "assign",
        assignee=body.assignee,
        display_name=body.display_name,
        expected_version=body.ticket_version,
    )
    return await _act(ctx, t, ticket_id, request, operator)


@router.post(
    "/tickets/{ticket_id}/transfer",
    response_model=m.TicketView,
    responses=_ACTION_ERRORS,
    summary="Move an open ticket to another queue: queued again, unassigned (R15)",
    description="The user keeps their place by handoff time; the new queue's pickup target "
    "counts from now. 409 `unknown_queue` (not configured, not listed by the agent's "
    "version, not `default`), `same_queue`, `ticket_closed`.",
    tags=["tickets"],
)
async def transfer(
    t: Tenant, ticket_id: TicketId, body: m.TransferBody, operator: WriteTicket, ctx: Ctx
) -> m.TicketView:
    request = ActionRequest(
        "transfer", queue=body.queue, note=body.note, expected_version=body.ticket_version
    )
    return await _act(ctx, t, ticket_id, request, operator)


@router.post(
    "/tickets/{ticket_id}/release",
    response_model=m.TicketView,
    responses=_ACTION_ERRORS,
    summary="Give an assigned ticket back to its queue, unassigned (R15)",
    description="409 `not_assigned` when it has no assignee, `ticket_closed`.",
    tags=["tickets"],
)
async def release(
    t: Tenant,
    ticket_id: TicketId,
    operator: WriteTicket,
    ctx: Ctx,
    body: m.ReleaseBody | None = None,
) -> m.TicketView:
    b = body or m.ReleaseBody()
    request = ActionRequest("release", note=b.note, expected_version=b.ticket_version)
    return await _act(ctx, t, ticket_id, request, operator)


@router.post(
    "/tickets/{ticket_id}/resolve",
    response_model=m.TicketView,
    responses=_ACTION_ERRORS,
    summary="Resolve an open ticket, by default returning the user to the AI (R15)",
    description="With `return_to_ai` (default) the interaction goes back to the AI in the "
    "same step (ModeChanged cause `operator`, the reason names the resolution); the note "
    "is kept as `resolution_note`. 409 `ticket_closed`.",
    tags=["tickets"],
)
async def resolve(
    t: Tenant,
    ticket_id: TicketId,
    operator: WriteTicket,
    ctx: Ctx,
    body: m.ResolveBody | None = None,
) -> m.TicketView:
    b = body or m.ResolveBody()
    request = ActionRequest(
        "resolve", note=b.note, return_to_ai=b.return_to_ai, expected_version=b.ticket_version
    )
    return await _act(ctx, t, ticket_id, request, operator)
