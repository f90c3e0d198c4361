"""Health, readiness, metrics and documents over HTTP, served beside each service's worker loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.settings import CommonSettings

ASYNCAPI = resources.files("schemas").joinpath("asyncapi.json")
ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
StuckPartitions = Callable[[], list[dict[str, Any]]]
# On every response of a page-serving app (the console, the web chat): never framed, never
# sniffed, no Referer to wherever a link goes.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """A pure ASGI middleware (streams flow through untouched): SECURITY_HEADERS and a
    Content-Security-Policy on every response."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.headers = [*SECURITY_HEADERS, (b"content-security-policy", csp.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self.headers}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                message = {**message, "headers": kept + self.headers}
            await send(message)

        await self.app(scope, receive, with_headers)


# FastAPI's own document routes; they move with /metrics (see `http_apps`).
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


@dataclass(frozen=True)
class Listener:
    app: FastAPI
    host: str
    port: int


def http_apps(
    service: str,
    settings: CommonSettings,
    port: int,
    readiness: ReadinessCheck,
    app: FastAPI | None = None,
    stuck: StuckPartitions = list,
) -> list[Listener]:
    """The service's HTTP listeners. `app` (a new one when None) on `port` gets /healthz and
    /readyz (not ready while a check fails or a consumed partition is stuck: its batch keeps
    failing; /readyz names each stuck partition). /metrics and the documents (FastAPI's /docs,
    /redoc, /openapi.json, and
    /asyncapi.json) go with it, or to a separate app on `ops_port` (an address the
    public cannot reach), or nowhere when `http_metrics` / `http_docs` are off."""
    main = app or FastAPI(title=f"handoff-{service}")
    docs = [r for r in main.router.routes if getattr(r, "path", None) in DOC_PATHS]
    main.router.routes[:] = [r for r in main.router.routes if r not in docs]
    listeners = [Listener(main, settings.http_host, port)]
    ops = main
    if settings.ops_port is not None:
        ops = FastAPI(
            title=f"handoff-{service} ops", docs_url=None, redoc_url=None, openapi_url=None
        )
        host = settings.ops_host or settings.http_host
        listeners.append(Listener(ops, host, settings.ops_port))
        _probes(ops, service, readiness, stuck)
    _probes(main, service, readiness, stuck)
    if settings.http_metrics:
        _metrics(ops)
    if settings.http_docs:
        ops.router.routes.extend(docs)
        _asyncapi(ops)
    return listeners


def _probes(app: FastAPI, service: str, readiness: ReadinessCheck, stuck: StuckPartitions) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        checks = await readiness()
        stuck_now = stuck()
        ready = all(checks.values()) and not stuck_now
        return JSONResponse(
            {"ready": ready, "service": service, "checks": checks, "stuck": stuck_now},
            status_code=200 if ready else 503,
        )


def _asyncapi(app: FastAPI) -> None:
    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> Response:
        """The AsyncAPI document of every topic (schemas/asyncapi.json, by `make docs`)."""
        return Response(ASYNCAPI.read_bytes(), media_type="application/json")


def _metrics(app: FastAPI) -> None:
    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def serve(app: FastAPI, host: str, port: int) -> None:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    await server.serve()


async def run_until_first_exit(*jobs: Awaitable[None]) -> None:
    """Runs the jobs together; when one ends (Ctrl-C stops uvicorn) or fails, stops the rest."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()  # re-raises a worker's failure, so the process exits non-zero
