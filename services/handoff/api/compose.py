"""The desk's reply box (issue 14): who is replying ("Jane is replying"), files a teammate
attaches to a reply, and the tenant's canned replies.

Same rules as the rest of the API: viewers read, editors and admins write, a path of another
tenant answers 404 like a missing resource; who is composing is always the token's `sub`.
Presence is ephemeral (state/presence.py): no audit record, nothing on the log. Canned replies
are stored per tenant and each change is audited (`canned_reply_update`,
`canned_reply_delete`). Files go to the web chat's file store (services/common/files.py),
with its limits, and their URL is what the reply's attachment carries.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from schemas import Attachment
from services.common.files import InvalidUploadError
from services.handoff.api import models as m
from services.handoff.api.audit import audit
from services.handoff.api.auth import Operator, tenant_scope
from services.handoff.api.context import ApiContext, api_context
from services.handoff.api.errors import ApiError, responses
from services.handoff.api.routes import (
    Agent,
    Channel,
    External,
    ReadInteraction,
    WriteInteraction,
    desk_missing,
    interaction,
    require_interaction,
)
from services.handoff.state.canned import CannedReply

router = APIRouter(prefix="/v1/tenants/{t}")
Tenant = Annotated[str, Path(description="Tenant id; must be the token's `tenant`.")]
CannedId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Canned reply id.")
]
Ctx = Annotated[ApiContext, Depends(api_context)]


def canned_missing(p: dict[str, Any]) -> ApiError:
    return ApiError(404, "canned_reply_not_found", f"No canned reply {p.get('reply_id')}.")


ReadCanned = Annotated[Operator, Depends(tenant_scope(desk_missing))]
WriteCanned = Annotated[Operator, Depends(tenant_scope(canned_missing, write=True))]
WriteDesk = Annotated[Operator, Depends(tenant_scope(desk_missing, write=True))]
COMPOSING = "/users/{channel}/{external_id:path}/agents/{a}/composing"


# Presence ------------------------------------------------------------------------------------


async def _others(ctx: ApiContext, ikey: str, operator: Operator) -> m.Composing:
    found = await ctx.presence.others(ikey, operator.sub)
    return m.Composing(
        teammates=[
            m.ComposingTeammate(
                sub=x.sub,
                display_name=x.display_name,
                activity=x.activity,
                at=datetime.fromtimestamp(x.at_ms / 1000, UTC),
            )
            for x in found
        ]
    )


@router.put(
    COMPOSING,
    response_model=m.Composing,
    responses=responses(401, 403, 404, 422, 503),
    summary="Desk: I am composing a reply to this user (a heartbeat)",
    description="Counts the caller (the token's `sub`) as composing for "
    "`HANDOFF_DESK_COMPOSING_SECONDS` (10 s); the desk repeats it while the teammate types. "
    "Answers the other teammates composing or who just replied. Ephemeral: no audit record.",
    tags=["desk"],
)
async def composing(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    body: m.ComposingBody,
    operator: WriteInteraction,
    ctx: Ctx,
) -> m.Composing:
    ikey = await require_interaction(ctx, interaction(t, channel, external_id, a))
    await ctx.presence.mark(ikey, operator.sub, body.display_name or operator.sub, "composing")
    return await _others(ctx, ikey, operator)


@router.delete(
    COMPOSING,
    status_code=204,
    responses=responses(401, 403, 404, 422, 503),
    summary="Desk: I stopped composing (the draft was cleared)",
    tags=["desk"],
)
async def stop_composing(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    operator: WriteInteraction,
    ctx: Ctx,
) -> Response:
    ikey = await require_interaction(ctx, interaction(t, channel, external_id, a))
    await ctx.presence.clear(ikey, operator.sub)
    return Response(status_code=204)


@router.get(
    COMPOSING,
    response_model=m.Composing,
    responses=responses(401, 404, 422, 503),
    summary="Desk: the other teammates composing a reply to this user, or who just replied",
    tags=["desk"],
)
async def who_is_composing(
    t: Tenant,
    channel: Channel,
    external_id: External,
    a: Agent,
    operator: ReadInteraction,
    ctx: Ctx,
) -> m.Composing:
    ikey = await require_interaction(ctx, interaction(t, channel, external_id, a))
    return await _others(ctx, ikey, operator)


# Files ---------------------------------------------------------------------------------------


@router.post(
    "/desk/files",
    status_code=201,
    response_model=Attachment,
    responses=responses(401, 403, 404, 413, 422, 503),
    summary="Desk: store a file to attach to a reply",
    description="The body is the file; its `Content-Type` header is the file's type (default: "
    "guessed from `name`). Stored like the web chat's uploads, with their limit "
    "(`HANDOFF_WEBCHAT_MAX_UPLOAD_BYTES`, 10 MB): 413 `file_too_large` above it, 422 "
    "`invalid_upload` for a content type that is not a media type. Answers the attachment "
    "to put in `POST …/messages`.",
    tags=["desk"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(
    t: Tenant,
    request: Request,
    operator: WriteDesk,
    ctx: Ctx,
    name: Annotated[str, Query(min_length=1, max_length=1024, description="The file's name.")],
) -> Attachment:
    data = await request.body()  # its size is held to the limit by the BodyGuard (guard.py)
    try:
        kind = request.headers.get("content-type")
        return await asyncio.to_thread(ctx.files.save, data, name, kind)
    except InvalidUploadError as exc:
        raise ApiError(422, "invalid_upload", f"That file cannot be attached: {exc}.") from exc


# Canned replies ------------------------------------------------------------------------------


def _canned_view(reply: CannedReply) -> m.CannedReplyView:
    return m.CannedReplyView(**reply.__dict__)


@router.get(
    "/canned-replies",
    response_model=m.CannedReplies,
    responses=responses(401, 404, 503),
    summary="Desk: the tenant's canned replies, by title",
    tags=["desk"],
)
async def list_canned(t: Tenant, operator: ReadCanned, ctx: Ctx) -> m.CannedReplies:
    return m.CannedReplies(items=[_canned_view(r) for r in await ctx.canned.list(t)])


@router.put(
    "/canned-replies/{reply_id}",
    response_model=m.CannedReplyView,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Desk: create or replace a canned reply",
    description="Audited (`operator_action` `canned_reply_update`, without the text). 409 "
    "`too_many_canned_replies` past `HANDOFF_DESK_MAX_CANNED_REPLIES` (500) per tenant.",
    tags=["desk"],
)
async def put_canned(
    t: Tenant, reply_id: CannedId, body: m.CannedReplyBody, operator: WriteCanned, ctx: Ctx
) -> m.CannedReplyView:
    reply = CannedReply(
        id=reply_id,
        title=body.title,
        text=body.text,
        updated_at=datetime.now(UTC).isoformat(),
        updated_by=operator.actor,
    )
    record = audit(operator, "canned_reply_update", t, f"canned_reply:{reply_id}", "applied")
    if await ctx.canned.put(t, reply, [record]) == "too_many":
        raise ApiError(
            409,
            "too_many_canned_replies",
            f"This team has {ctx.settings.desk_max_canned_replies} canned replies, the most "
            "allowed; delete one first.",
        )
    return _canned_view(reply)


@router.delete(
    "/canned-replies/{reply_id}",
    status_code=204,
    responses=responses(401, 403, 404, 422, 503),
    summary="Desk: delete a canned reply",
    description="Audited (`operator_action` `canned_reply_delete`).",
    tags=["desk"],
)
async def delete_canned(t: Tenant, reply_id: CannedId, operator: WriteCanned, ctx: Ctx) -> Response:
    record = audit(operator, "canned_reply_delete", t, f"canned_reply:{reply_id}", "deleted")
    if await ctx.canned.delete(t, reply_id, [record]) == "not_found":
        raise canned_missing({"reply_id": reply_id})
    return Response(status_code=204)
