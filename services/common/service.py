"""The edge every service shares: start the workers, serve ops HTTP, stop in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import structlog
from fastapi import FastAPI

from services.common.http import http_apps, run_until_first_exit, serve
from services.common.settings import CommonSettings

log = structlog.get_logger()


class Worker(Protocol):
    """A long-running loop (a Kafka processor, the timeout sweeper)."""

    @property
    def healthy(self) -> bool: ...  # an attribute or a property: /readyz only reads it

    async def start(self) -> None: ...
    async def run(self) -> None: ...
    async def stop(self) -> None: ...


@runtime_checkable
class PartitionWorker(Protocol):
    """A worker of consumed partitions that can say which of them are stuck."""

    def stuck_partitions(self) -> list[dict[str, Any]]: ...


class Store(Protocol):
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


async def run_service(
    name: str,
    settings: CommonSettings,
    port: int,
    store: Store,
    workers: Sequence[Worker],
    app: FastAPI | None = None,
) -> None:
    """Runs until Ctrl-C/SIGTERM (uvicorn returns) or a worker fails (re-raised: exit != 0).

    `app` is the service's own HTTP app, if it has one; the ops endpoints are added to it.
    """

    async def readiness() -> dict[str, bool]:
        return {"redis": await store.ping(), "workers": all(w.healthy for w in workers)}

    def stuck() -> list[dict[str, Any]]:
        return [p for w in workers if isinstance(w, PartitionWorker) for p in w.stuck_partitions()]

    try:
        for worker in workers:
            await worker.start()
        listeners = http_apps(name, settings, port, readiness, app, stuck)
        log.info("service_started", service=name, http_ports=[h.port for h in listeners])
        await run_until_first_exit(
            *(w.run() for w in workers),
            *(serve(h.app, h.host, h.port) for h in listeners),
        )
    finally:
        for worker in workers:
            await worker.stop()
        await store.close()
