"""`python -m services.timeout`: the timeout worker and its ops HTTP endpoints."""

from __future__ import annotations

import asyncio

import structlog

from services.common.http import ops_app, run_until_first_exit, serve
from services.common.kafka import idempotent_producer
from services.common.logging import configure_logging
from services.handoff.store import ModeStore
from services.timeout.settings import TimeoutSettings
from services.timeout.worker import TimeoutWorker

log = structlog.get_logger()


async def main() -> None:
    settings = TimeoutSettings()
    configure_logging(settings.log_level, settings.log_redact)
    store = ModeStore.from_settings(settings)
    await store.load_functions()
    producer = idempotent_producer(settings)
    await producer.start()
    worker = TimeoutWorker(store, producer, settings)

    async def readiness() -> dict[str, bool]:
        return {"redis": await store.ping(), "sweeping": worker.healthy}

    log.info("timeout_started", events=settings.topics.events)
    try:
        await run_until_first_exit(
            worker.run(),
            serve(ops_app("timeout", readiness), settings.http_host, settings.timeout_http_port),
        )
    finally:
        await producer.stop()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
