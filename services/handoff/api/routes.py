"""The operator API's endpoints (../shared/design/ARCHITECTURE.md, "Operator HTTP API").

Users and modes (R7, R8), agent versions (Apply, Publish) and the desk. Tenancy and roles
are dependencies (auth.tenant_scope): a handler only runs for an operator of the path's
tenant, and a write only for an editor or admin.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import TypeAdapter, ValidationError

from schemas import (
    EndUser,
    HandoffCommand,
    TranscriptTurn,
    interaction_key,
    parse_interaction_key,
)
from schemas.events import ID_PATTERN, ExternalId, InteractionIds
from services.handoff.api import models as m
from services.handoff.api.audit import audit
from services.handoff.api.auth import Operator, current_operator, tenant_scope
from services.handoff.api.context import ApiContext, api_context
from services.handoff.api.desk import sse
from services.handoff.api.errors import ApiError, rejection, responses
from services.handoff.api.idempotency import check_reuse, idempotent_call
from services.handoff.domain import limits
from services.handoff.domain.modes import at_ms, optional_at_ms
from services.handoff.service.commands import API
from services.handoff.service.desk_reply import DeskReplies, DeskReply, NotInHumanModeError
from services.handoff.state.agent_versions import UnknownVersionError
from services.handoff.state.keys import queues_key

log = structlog.get_logger()
router = APIRouter(prefix="/v1/tenants/{t}")
session_router = APIRouter(prefix="/v1")


@session_router.get(
    "/session",
    response_model=m.Session,
    responses=responses(401),
    summary="Who the token says you are (the console signs in with it)",
    tags=["session"],
)
async def session(operator: Annotated[Operator, Depends(current_operator)]) -> m.Session:
    return m.Session(
        sub=operator.sub,
        tenant=operator.tenant,
        role=operator.role,
        can_write=operator.can_write,
        expires_at=datetime.fromtimestamp(operator.expires_at, UTC),
    )


@session_router.get(
    "/limits",
    responses=responses(401),
    summary="The bounds the API checks (idle timeouts, text lengths); the console reads them",
    tags=["session"],
)
async def bounds(_: Annotated[Operator, Depends(current_operator)]) -> dict[str, object]:
    return limits.table()


# Path parameters ----------------------------------------------------------------------------

Tenant = Annotated[str, Path(description="Tenant id; must be the token's `tenant`.")]
Channel = Annotated[str, Path(pattern=ID_PATTERN, description="The user's channel.")]
External = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        description="The user's id on the channel (1-256 printable characters, percent-encoded).",
    ),
]
Agent = Annotated[str, Path(pattern=ID_PATTERN, description="Agent id.")]
Ctx = Annotated[ApiContext, Depends(api_context)]
_EXTERNAL = TypeAdapter(ExternalId)


# What "missing" looks like, per resource. The tenant check raises the same error, built from
# the path only, so a token of another tenant learns nothing (auth.tenant_scope).
def user_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(404, "user_not_found", f"No user {p.get('channel')}/{p.get('external_id')}.")


def interaction_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(
        404,
        "interaction_not_found",
        f"User {p.get('channel')}/{p.get('external_id')} has no interaction with agent "
        f"{p.get('a')}.",
    )


def agent_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(404, "agent_not_found", f"No agent {p.get('a')}.")


def version_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(404, "unknown_version", f"Agent {p.get('a')} has no version {p.get('n')}.")


def desk_missing(_: dict[str, Any]) -> ApiError:
    return ApiError(404, "not_found", "No such resource.")


ReadUser = Annotated[Operator, Depends(tenant_scope(user_missing))]
ReadInteraction = Annotated[Operator, Depends(tenant_scope(interaction_missing))]
WriteUser = Annotated[Operator, Depends(tenant_scope(user_missing, write=True))]
WriteInteraction = Annotated[Operator, Depends(tenant_scope(interaction_missing, write=True))]
ReadAgent = Annotated[Operator, Depends(tenant_scope(agent_missing))]
WriteAgent = Annotated[Operator, Depends(tenant_scope(agent_missing, write=True))]
WriteVersion = Annotated[Operator, Depends(tenant_scope(version_missing, write=True))]
ReadDesk = Annotated[Operator, Depends(tenant_scope(desk_missing))]


def external(channel: str, external_id: str) -> str:
    """The path's external id. One that is not printable can never be a user (the events
    refuse it), so it is answered like any other user that does not exist."""
    try:
        return _EXTERNAL.validate_python(external_id)
    except ValidationError as exc:
        raise user_missing({"channel": channel, "external_id": external_id}) from exc


def interaction(t: str, channel: str, external_id: str, a: str) -> InteractionIds:
    user = EndUser(channel=channel, external_id=external(channel, external_id))
    return InteractionIds(tenant_id=t, agent_id=a, user=user)


async def require_interaction(ctx: ApiContext, ids: InteractionIds) -> str:
    ext = ids.user.external_id or ""
    if not await ctx.store.has_user_agent(ids.tenant_id, ids.user.channel, ext, ids.agent_id):
        raise interaction_missing(
            {"channel": ids.user.channel, "external_id": ext, "a": ids.agent_id}
        )
    return interaction_key(ids)


# Users and modes (R7, R8) -------------------------------------------------------------------


@router.put(
    "/users/{channel}/{external_id:path}/agents/{a}/mode",
    response_model=m.ModeChangedView,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Switch an interaction to human or back to AI (R7)",
    description="AI -> human needs the agent's published version to have handoff enabled "
    "(409 `agent_not_published`, `handoff_disabled`); human -> AI always works. 409 "
    "`already_in_mode` when nothing would change. Goes through the same transition as a "
    "Kafka command: the same ModeChanged, notice to the user and HandoffTicket are emitted: "
    "stored in Redis in the same atomic step as the change (the shard outbox) before the "
    "answer, and published on Kafka exactly once by the relay. A retry with the same "
    "`Idempotency-Key` (any client string) and body returns the first call's result; the key "
    "used is echoed back. A key is scoped to the operator and the interaction; reused with "
    "another body it answers 422 `idempotency_key_reused`.",
    tags=["users"],
)
async def switch_mode(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    body: m.ModeSwitch,
    operator: WriteUser,
    ctx: Ctx,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=128)
    ] = None,
) -> m.ModeChangedView:
    ids = interaction(t, channel, external_id, a)
    ikey = interaction_key(ids)
    call = idempotent_call(operator, ikey, idempotency_key, body)
    key, command_id = call.key, call.command_id
    command = HandoffCommand(
        **ids.model_dump(),
        command_id=command_id,
        action="to_human" if body.mode == "human" else "to_ai",
        source="operator",
        actor=operator.actor,
        reason=body.reason,
        idle_timeout_minutes=body.idle_timeout_minutes,
        requested_at=datetime.now(UTC),
    )
    result = await ctx.commands.execute(
        command,
        call.src,
        API,
        audit=lambda code: audit(operator, "mode_switch", ikey, ikey, code, command_id),
    )
    check_reuse(result.code, call)
    for counter in result.counters:  # counted once stored with its records (the outbox)
        counter.inc()
    response.headers["Idempotency-Key"] = key
    changed = result.changed
    if changed is None:
        rejected = result.rejected
        detail = rejected.detail if rejected else "The command id was used before."
        error = rejection(result.code, detail)
        error.headers = {"Idempotency-Key": key}
        raise error
    return m.ModeChangedView(
        agent_id=a,
        mode=changed.to_mode,
        from_mode=changed.from_mode,
        cause=changed.cause,
        actor=changed.actor,
        reason=changed.reason,
        changed_at=changed.changed_at,
        human_since=changed.changed_at if changed.to_mode == "human" else None,
        expires_at=changed.expires_at,
        idle_timeout_minutes=changed.idle_timeout_minutes,
        state_version=changed.state_version,
        command_id=command_id,
    )


@router.get(
    "/users/{channel}/{external_id:path}/agents/{a}/history",
    response_model=m.HistoryPage,
    responses=responses(401, 404, 422),
    summary="Mode changes of an interaction, newest first (R8)",
    tags=["users"],
)
async def history(
    request: Request,
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    operator: ReadInteraction,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[1-9][0-9]{0,17}$", description="From `next_cursor`.")
    ] = None,
) -> m.HistoryPage:
    ikey = await require_interaction(ctx, interaction(t, channel, external_id, a))
    before = int(cursor) if cursor else None
    changes = await ctx.store.history_page(ikey, before, limit + 1)
    items = [m.HistoryEntry.of(c, ctx.settings.minute_ms) for c in changes[:limit]]
    more = len(changes) > limit
    next_cursor = str(items[-1].state_version) if more and items else None
    return m.HistoryPage(
        items=items, next_cursor=next_cursor, next=_next(request, limit, next_cursor)
    )


@router.get(
    "/users/{channel}/{external_id:path}/agents/{a}/transcript",
    response_model=m.TranscriptPage,
    responses={
        304: {"description": "No turn since the `If-None-Match` ETag."},
        **responses(401, 404, 422),
    },
    summary="Recorded turns of an interaction, with their attachments",
    description="The latest `limit` turns, oldest first; `next` pages to older turns. The "
    "`ETag` names the page's newest turn: with `If-None-Match` set to it the answer is 304 "
    "and no body until a turn arrives (cheap polling for a live transcript).",
    tags=["users"],
)
async def transcript(
    request: Request,
    response: Response,
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    operator: ReadInteraction,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}-[0-9]{1,15}$", description="From `next_cursor`.")
    ] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=256)] = None,
) -> m.TranscriptPage | Response:
    ikey = await require_interaction(ctx, interaction(t, channel, external_id, a))
    before = "-".join(str(int(part)) for part in cursor.split("-")) if cursor else None
    # Nothing is older than the stream's first possible id.
    entries = [] if before == "0-0" else await ctx.store.transcript_page(ikey, before, limit + 1)
    # Turns are only ever appended (the oldest trimmed): the newest one names the page.
    etag = f'"{entries[0][0] if entries else "none"}"'
    if if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    page = entries[:limit]
    next_cursor = page[-1][0] if len(entries) > limit else None
    items = [TranscriptTurn.model_validate(turn) for _, turn in reversed(page)]
    return m.TranscriptPage(
        items=items, next_cursor=next_cursor, next=_next(request, limit, next_cursor)
    )


@router.post(
    "/users/{channel}/{external_id:path}/agents/{a}/messages",
    response_model=m.DeskReplySent,
    status_code=201,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Desk: reply to a user in human mode",
    description="Records the turn in the transcript, moves the idle expiry forward as a user "
    "message does (R19), and queues an OutboundMessage with sender `human` for chat.outbound "
    "with its audit record, all in one atomic step (published exactly once by the relay). "
    "409 `not_in_human_mode` when the AI has the conversation.",
    tags=["desk"],
)
async def desk_reply(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    body: m.DeskReply,
    operator: WriteInteraction,
    ctx: Ctx,
) -> m.DeskReplySent:
    ids = interaction(t, channel, external_id, a)
    ikey = await require_interaction(ctx, ids)
    reply = DeskReply(ids, body.text, body.attachments, body.in_reply_to, body.conversation_id)
    try:
        sent = await DeskReplies(ctx.store, ctx.settings.topics).send(
            reply,
            "api",
            lambda message: audit(operator, "desk_reply", ikey, ikey, "sent", message.event_id),
        )
    except NotInHumanModeError:
        raise ApiError(
            409, "not_in_human_mode", "The AI has this conversation; switch it to human first."
        ) from None
    # Teammates about to answer too are warned (state/presence.py); the reply itself is recorded.
    name = (await ctx.presence.name_of(ikey, operator.sub)) or operator.sub
    await ctx.presence.mark(ikey, operator.sub, name, "replied")
    return m.DeskReplySent(
        event_id=sent.message.event_id,
        conversation_id=sent.message.conversation_id,
        sent_at=sent.message.sent_at,
        expires_at=optional_at_ms(sent.expires_at_ms),
    )


@router.post(
    "/users/{channel}/{external_id:path}/agents/{a}/extend",
    response_model=m.IdleExtended,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Desk: extend the idle expiry of human mode (R19)",
    description="Human mode lasts at least `minutes` (default: the interaction's idle "
    "timeout) from now; the expiry never moves back. Audited (OperatorAction "
    "`idle_extend`). 409 `not_in_human_mode` when the AI has the conversation, "
    "`no_idle_timeout` when human mode has no idle timeout to extend.",
    tags=["desk"],
)
async def extend_idle(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    body: m.IdleExtend,
    operator: WriteInteraction,
    ctx: Ctx,
) -> m.IdleExtended:
    ids = interaction(t, channel, external_id, a)
    ikey = await require_interaction(ctx, ids)
    extra_ms = None if body.minutes is None else body.minutes * ctx.settings.minute_ms
    _, _, record = audit(operator, "idle_extend", ikey, ikey, "{outcome}")
    result = await ctx.store.extend_idle(ikey, extra_ms, record)
    if result["status"] != "extended":
        code = result["status"]
        detail = {
            "not_in_human_mode": "The AI has this conversation; there is no expiry to extend.",
            "no_idle_timeout": "Human mode has no idle timeout here; it lasts until a switch.",
        }[code]
        raise ApiError(409, code, detail)
    return m.IdleExtended(expires_at=at_ms(result["expires_at"]), state_version=result["version"])


@router.get(
    "/users/{channel}/{external_id:path}",
    response_model=m.UserView,
    responses=responses(401, 404, 422),
    summary="A user's routing per agent (R8)",
    description="For each agent the user has talked to or been handed off by: the mode, its "
    "cause, actor and reason, when it changed, when human mode expires, and whether the "
    "agent's published version has handoff enabled.",
    tags=["users"],
)
async def get_user(
    t: Tenant, channel: Channel, external_id: External, operator: ReadUser, ctx: Ctx
) -> m.UserView:
    ext = external(channel, external_id)
    agents = await ctx.store.user_agents(t, channel, ext)
    if not agents:
        raise user_missing({"channel": channel, "external_id": external_id})

    async def one(agent: str) -> m.AgentRouting:
        ids = InteractionIds(
            tenant_id=t, agent_id=agent, user=EndUser(channel=channel, external_id=ext)
        )
        state, (versions, published) = await asyncio.gather(
            ctx.store.read_state(interaction_key(ids)), ctx.store.agent_versions(t, agent)
        )
        live = next((v for v in versions if v.version == published), None)
        routing = m.RoutingState.of(state, ctx.settings.minute_ms)
        return m.AgentRouting(
            **routing.model_dump(),
            agent_id=agent,
            handoff=m.AgentHandoff(
                published_version=published, enabled=bool(live and live.handoff.enabled)
            ),
        )

    return m.UserView(
        tenant_id=t,
        channel=channel,
        external_id=ext,
        agents=list(await asyncio.gather(*(one(a) for a in agents))),
    )


# Agents ------------------------------------------------------------------------------------


async def _agent_view(ctx: ApiContext, t: str, a: str) -> m.AgentView:
    versions, published = await ctx.store.agent_versions(t, a)
    return m.AgentView(
        tenant_id=t,
        agent_id=a,
        published_version=published,
        versions=[m.AgentVersionView.of(v, published) for v in reversed(versions)],
    )


@router.get(
    "/agents/{a}",
    response_model=m.AgentView,
    responses=responses(401, 404, 422),
    summary="An agent's versions and the published one",
    tags=["agents"],
)
async def get_agent(t: Tenant, a: Agent, operator: ReadAgent, ctx: Ctx) -> m.AgentView:
    view = await _agent_view(ctx, t, a)
    if not view.versions:
        raise agent_missing({"a": a})
    return view


@router.post(
    "/agents/{a}/versions",
    response_model=m.AgentVersionView,
    status_code=201,
    responses=responses(401, 403, 404, 422, 503),
    summary="Apply: a new immutable version of the agent's handoff settings",
    description="Creates the agent on its first version. Publish it to make it live.",
    tags=["agents"],
)
async def apply_version(
    t: Tenant,
    a: Agent,
    body: m.AgentVersionBody,
    operator: WriteAgent,
    ctx: Ctx,
    response: Response,
) -> m.AgentVersionView:
    created_at = datetime.now(UTC).isoformat()
    config = body.handoff.to_config()
    # The audit record names the version, which the Redis step numbers: it fills `{version}`.
    record = audit(operator, "agent_apply", f"{t}:{a}", f"{a}@v{{version}}", "applied")
    n = await ctx.store.apply_agent_version(
        t, a, config, created_at, operator.actor, with_outputs=[record]
    )
    response.headers["Location"] = f"/v1/tenants/{t}/agents/{a}"
    return m.AgentVersionView(
        version=n,
        handoff=body.handoff,
        created_at=created_at,
        created_by=operator.actor,
        published=False,
    )


@router.post(
    "/agents/{a}/versions/{n}/publish",
    response_model=m.AgentView,
    responses=responses(401, 403, 404, 422, 503),
    summary="Publish version n: the live version of the agent (R2 reads it)",
    tags=["agents"],
)
async def publish_version(
    t: Tenant,
    a: Agent,
    n: Annotated[int, Path(ge=1, le=10**9)],
    operator: WriteVersion,
    ctx: Ctx,
) -> m.AgentView:
    record = audit(operator, "agent_publish", f"{t}:{a}", f"{a}@v{n}", "published")
    try:
        await ctx.store.publish_agent_version(t, a, n, operator.actor, with_outputs=[record])
    except UnknownVersionError as exc:
        raise version_missing({"a": a, "n": n}) from exc
    return await _agent_view(ctx, t, a)


# Desk ---------------------------------------------------------------------------------------


@router.get(
    "/desk/tickets",
    response_model=m.DeskTickets,
    responses=responses(401, 404),
    summary="Desk: the tenant's interactions in human mode, newest ticket first",
    tags=["desk"],
)
async def desk_tickets(t: Tenant, operator: ReadDesk, ctx: Ctx) -> m.DeskTickets:
    found = await ctx.store.desk_open_tickets(t, ctx.settings.desk_max_tickets)
    items = []
    for ikey, opened_ms, state in found:
        who = parse_interaction_key(ikey)
        items.append(
            m.DeskTicket(
                interaction=ikey,
                agent_id=who.agent_id,
                channel=who.user.channel,
                external_id=who.user.external_id or "",
                opened_at=datetime.fromtimestamp(opened_ms / 1000, UTC),
                state=m.RoutingState.of(state, ctx.settings.minute_ms),
            )
        )
    return m.DeskTickets(items=items)


@router.get(
    "/desk/stream",
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events: `ready` once subscribed, then `ticket`, "
            "`message`, `mode`, `activity` and `ticket_changed` (JSON data); a comment every "
            "few seconds. An editor's or admin's open stream counts them as a teammate online "
            "(R16).",
        },
        **responses(401, 404),
    },
    response_class=StreamingResponse,
    summary="Desk: the tenant's human queue and mode changes, live (SSE)",
    description="Read it with `fetch` and a stream reader (it needs the Authorization "
    "header, which EventSource cannot send). The stream ends when the token expires.",
    tags=["desk"],
)
async def desk_stream(t: Tenant, operator: ReadDesk, ctx: Ctx) -> StreamingResponse:
    client = ctx.desk.connect(t)
    heartbeat = ctx.settings.desk_heartbeat_seconds

    async def present() -> None:  # R16: a writer with the desk open is a teammate online
        if operator.can_write:
            now = await ctx.store.redis_now_ms(queues_key(t))
            await ctx.store.teammate_seen(t, operator.sub, now)

    async def events() -> Any:
        try:
            await present()
            yield sse("ready", {"tenant_id": t})
            while not client.dropped:
                if datetime.now(UTC).timestamp() >= operator.expires_at:
                    yield sse("expired", {})
                    break
                try:
                    item = await asyncio.wait_for(client.queue.get(), heartbeat)
                except TimeoutError:
                    await present()
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    break
                yield item
        finally:
            ctx.desk.disconnect(client)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _next(request: Request, limit: int, cursor: str | None) -> str | None:
    """The next page's path and query; the path as the client sent it (still encoded)."""
    if not cursor:
        return None
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    return f"{path}?limit={limit}&cursor={cursor}"
