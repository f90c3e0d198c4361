"""`python -m services.handoff`: the handoff command consumer and its HTTP endpoints."""

from __future__ import annotations

import asyncio

from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.common.service import run_service
from services.handoff.commands import CommandConsumer, CommandService
from services.handoff.settings import HandoffSettings
from services.handoff.store import ModeStore


async def main() -> None:
    settings = HandoffSettings()
    configure_logging(settings.log_level, settings.log_redact)
    store = ModeStore.from_settings(settings)
    await store.load_functions()
    commands = CommandService(store, settings.minute_ms, settings.ticket_transcript_turns)
    consumer = CommandConsumer(commands, settings.topics)
    processor = TransactionalProcessor(settings, "handoff", [settings.topics.commands], consumer)
    await run_service("handoff", settings, settings.handoff_http_port, store, [processor])


if __name__ == "__main__":
    asyncio.run(main())
