"""Health, readiness and metrics over HTTP, served beside each service's worker loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ASYNCAPI = resources.files("schemas").joinpath("asyncapi.json")
ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
StuckPartitions = Callable[[], list[dict[str, Any]]]


def ops_app(
    service: str,
    readiness: ReadinessCheck,
    app: FastAPI | None = None,
    stuck: StuckPartitions = list,
) -> FastAPI:
    """Adds /healthz, /readyz and /metrics to `app` (a new app when None). Not ready while a
    check fails or a consumed partition is stuck (its batch keeps failing); /readyz names
    each stuck partition."""
    app = app or FastAPI(title=f"handoff-{service}")

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

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> Response:
        """The AsyncAPI document of every topic (schemas/asyncapi.json, by `make docs`)."""
        return Response(ASYNCAPI.read_bytes(), media_type="application/json")

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


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
