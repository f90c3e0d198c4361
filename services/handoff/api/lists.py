"""The tenant's lists of the operator API: its agents and its users, with search.

What they read are per-shard lexical indexes (keys.py) that the Redis functions writing an
agent or an interaction update in the same step, so a list never misses a change that was
answered. Same rules as the rest: viewers read, and a path of another tenant answers 404
exactly like an unknown resource (the desk's `not_found`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request

from schemas.events import ID_PATTERN
from services.handoff.api import models as m
from services.handoff.api.auth import Operator, tenant_scope
from services.handoff.api.context import ApiContext, api_context
from services.handoff.api.errors import ApiError, responses
from services.handoff.domain.modes import optional_at_ms

router = APIRouter(prefix="/v1/tenants/{t}")

Tenant = Annotated[str, Path(description="Tenant id; must be the token's `tenant`.")]
Ctx = Annotated[ApiContext, Depends(api_context)]
Search = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description="Case-insensitive part of the id."),
]

# A tenant's agents are listed whole (they are few); a longer list is cut here.
MAX_AGENTS = 1000
# How many index entries one users page reads at most while searching for `q`: a page with
# fewer than `limit` matches and a `next_cursor` means "not all searched yet, go on".
SCAN_BUDGET = 2000
SCAN_BATCH = 500


def tenant_list_missing(_: dict[str, Any]) -> ApiError:
    return ApiError(404, "not_found", "No such resource.")


ReadTenant = Annotated[Operator, Depends(tenant_scope(tenant_list_missing))]


@router.get(
    "/agents",
    response_model=m.AgentList,
    responses=responses(401, 404, 422),
    summary="The tenant's agents: published and newest version, last change",
    description="Every agent with at least one version (Apply), by id; `q` keeps those whose "
    f"id contains it (case-insensitive). At most {MAX_AGENTS}.",
    tags=["agents"],
)
async def list_agents(t: Tenant, operator: ReadTenant, ctx: Ctx, q: Search = None) -> m.AgentList:
    items = [
        m.AgentSummary(
            agent_id=a.agent_id,
            published_version=a.published,
            latest_version=a.latest.version,
            # Agents applied before the hash kept `updated_at`: their newest version's time.
            updated_at=optional_at_ms(a.updated_at_ms) or a.latest.created_at,
        )
        for a in await ctx.store.tenant_agents(t, MAX_AGENTS)
        if not q or q.casefold() in a.agent_id.casefold()
    ]
    return m.AgentList(items=items)


@router.get(
    "/users",
    response_model=m.UserList,
    responses=responses(401, 404, 422),
    summary="The tenant's users, per agent: mode, cause, expiry, last activity",
    description="One item per user and agent they talked to (or were switched for), by agent, "
    "channel and user id. `agent` keeps one agent's; `q` keeps the users whose id contains "
    "it (case-insensitive, so a prefix too). Pages of `limit`; `next_cursor` continues. While "
    f"searching, one page reads at most {SCAN_BUDGET} users: a page may then hold fewer than "
    "`limit` items and still have a `next_cursor`.",
    tags=["users"],
)
async def list_users(
    request: Request,
    t: Tenant,
    operator: ReadTenant,
    ctx: Ctx,
    agent: Annotated[str | None, Query(pattern=ID_PATTERN, description="Agent id.")] = None,
    q: Search = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="From `next_cursor`.")
    ] = None,
) -> m.UserList:
    prefix = f"{t}:{agent}:" if agent else f"{t}:"
    # The cursor is the last position read, after the prefix: whatever a client sends, the
    # position stays inside this list.
    after = prefix + cursor if cursor else None
    needle = q.casefold() if q else None
    found: list[str] = []
    scanned, more = 0, True
    while more and len(found) < limit and scanned < SCAN_BUDGET:
        batch = limit if needle is None else SCAN_BATCH
        members, more = await ctx.store.interactions_after(prefix, after, batch)
        scanned += len(members)
        for ikey in members:
            after = ikey
            if needle is None or needle in ikey.split(":", 3)[3].casefold():
                found.append(ikey)
                if len(found) == limit:
                    more = more or ikey != members[-1]
                    break
    summaries = await ctx.store.interaction_summaries(found)
    items = []
    for ikey, (state, last_ms) in zip(found, summaries, strict=True):
        _, agent_id, channel, ext = ikey.split(":", 3)
        items.append(
            m.UserSummary(
                agent_id=agent_id,
                channel=channel,
                external_id=ext,
                mode=state.mode,
                cause=state.cause,
                expires_at=optional_at_ms(state.expires_at_ms),
                state_version=state.version,
                last_activity_at=optional_at_ms(last_ms),
            )
        )
    next_cursor = after[len(prefix) :] if more and after else None
    return m.UserList(items=items, next_cursor=next_cursor, next=_next(request, next_cursor))


def _next(request: Request, cursor: str | None) -> str | None:
    """The next page's path and query: this one's, with the cursor replaced."""
    if cursor is None:
        return None
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    return f"{request.url.path}?{urlencode([*query, ('cursor', cursor)])}"
