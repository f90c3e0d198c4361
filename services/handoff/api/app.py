"""The handoff service's HTTP app: the operator API (/v1), its OpenAPI document and the
console (/console). run_service adds /healthz, /readyz and /metrics to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse

from services.handoff.api import analytics, compose, errors, lists, routes, tickets
from services.handoff.api.context import ApiContext
from services.handoff.api.guard import BodyGuard
from services.handoff.api.metrics import ApiMiddleware

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

DESCRIPTION = """\
Operator API of Handoff: see and switch each user's mode per agent (R7, R8), manage agents'
handoff settings (Apply, Publish), run the human desk, and work the queues and their tickets
(R14-R18).

**Auth.** Every `/v1` call needs `Authorization: Bearer <JWT>` with claims `sub`, `tenant`,
`role` (`viewer` reads; `editor` and `admin` also write) and `exp`. A path of another tenant
answers 404, exactly like a missing resource. Locally, `make token TENANT=acme ROLE=editor`
prints a token.

**Limits.** A body larger than `HANDOFF_API_MAX_BODY_BYTES` (1 MiB) answers 413
`body_too_large` before it is read (a file for a reply, `POST …/desk/files`: larger than
`HANDOFF_WEBCHAT_MAX_UPLOAD_BYTES`, 10 MB, 413 `file_too_large`); a write without a valid
token answers 401 before its body is read.

**Errors.** Every error is `{"error": {"code": "...", "detail": "..."}}`; `code` is stable.

**Audit.** Every state-changing call emits an `operator_action` record on `handoff.events`.
"""


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    return errors.error_json(503, "unavailable", "Redis did not answer; retry shortly.")


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="Handoff operator API",
        version="1",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "session", "description": "The caller's identity"},
            {"name": "users", "description": "A user's routing per agent, history, transcript"},
            {"name": "agents", "description": "Agent versions: Apply and Publish"},
            {"name": "desk", "description": "The human desk: open tickets, live feed, replies"},
            {"name": "queues", "description": "Queues: settings, hours, live status (R14-R18)"},
            {
                "name": "tickets",
                "description": "Tickets: claim, assign, transfer, release, resolve (R15)",
            },
            {"name": "analytics", "description": "The human side measured (R21)"},
            {"name": "ops", "description": "Liveness, readiness, Prometheus metrics"},
        ],
    )
    app.state.api = ctx
    errors.install(app)
    app.add_exception_handler(RedisConnectionError, _unavailable)
    app.add_exception_handler(RedisTimeoutError, _unavailable)
    app.add_middleware(
        BodyGuard,
        max_bytes=ctx.settings.api_max_body_bytes,
        upload_max_bytes=ctx.settings.webchat_max_upload_bytes,
    )
    app.add_middleware(ApiMiddleware)
    app.include_router(routes.session_router)
    # Before routes.router: its GET of a user (`{external_id:path}`) would take /composing.
    app.include_router(compose.router)
    app.include_router(routes.router)
    app.include_router(tickets.router)
    app.include_router(lists.router)
    app.include_router(analytics.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus what it cannot infer of the ops endpoints that run_service
    adds (Prometheus text, readiness's 503)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    paths = doc.get("paths", {})
    if "/metrics" in paths:
        paths["/metrics"]["get"]["responses"]["200"] = {
            "description": "Prometheus metrics, text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if "/readyz" in paths:
        paths["/readyz"]["get"]["responses"]["503"] = {
            "description": "Not ready: `checks` say which dependency is down, `stuck` which"
            " consumed partition keeps failing.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    app.openapi_schema = doc
    return doc
