"""`python -m services.timeout`: the timeout worker and its ops HTTP endpoints."""

from __future__ import annotations

import asyncio

from services.common import tracing
from services.common.logging import configure_logging
from services.common.service import run_service
from services.handoff.state.store import ModeStore
from services.timeout.settings import TimeoutSettings
from services.timeout.worker import TimeoutWorker


async def main() -> None:
    settings = TimeoutSettings()
    configure_logging(settings.log_level, settings.log_redact)
    tracing.configure(settings, "timeout")
    store = ModeStore.from_settings(settings)
    await store.load_functions()
    worker = TimeoutWorker(store, settings)
    await run_service("timeout", settings, settings.timeout_http_port, store, [worker])


if __name__ == "__main__":
    asyncio.run(main())
