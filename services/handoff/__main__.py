"""`python -m services.handoff`: the handoff command consumer and its HTTP endpoints."""

from __future__ import annotations

import asyncio

import structlog

from services.common.http import ops_app, run_until_first_exit, serve
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.handoff.commands import CommandConsumer, CommandService
from services.handoff.settings import HandoffSettings
from services.handoff.store import ModeStore

log = structlog.get_logger()


async def main() -> None:
    settings = HandoffSettings()
    configure_logging(settings.log_level, settings.log_redact)
    store = ModeStore.from_settings(settings)
    await store.load_functions()
    commands = CommandService(store, settings.minute_ms, settings.ticket_transcript_turns)
    topics = settings.topics
    processor = TransactionalProcessor(
        settings, "handoff", [topics.commands], CommandConsumer(commands, topics)
    )

    async def readiness() -> dict[str, bool]:
        return {"redis": await store.ping(), "kafka": processor.healthy}

    await processor.start()
    log.info("handoff_started", commands=topics.commands)
    try:
        await run_until_first_exit(
            processor.run(),
            serve(ops_app("handoff", readiness), settings.http_host, settings.handoff_http_port),
        )
    finally:
        await processor.stop()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
