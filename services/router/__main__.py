"""`python -m services.router`: the router and the reply gate, with their ops HTTP endpoints."""

from __future__ import annotations

import asyncio

from services.common import tracing
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.common.service import run_service
from services.handoff.state.reader import StateClient
from services.router.handlers import InboundRouter, ReplyGate
from services.router.settings import RouterSettings


async def main() -> None:
    settings = RouterSettings()
    configure_logging(settings.log_level, settings.log_redact)
    tracing.configure(settings, "router")
    state = StateClient.from_settings(settings)
    await state.load_functions()
    topics = settings.topics
    # Both handlers are replay-safe per record (the Redis functions keep what they decided
    # for each source offset), so each batch is handled while the one before commits.
    processors = [
        TransactionalProcessor(
            settings, "router", [topics.inbound], InboundRouter(state, topics), overlap=True
        ),
        TransactionalProcessor(
            settings, "reply-gate", [topics.agent_replies], ReplyGate(state, topics), overlap=True
        ),
    ]
    await run_service("router", settings, settings.router_http_port, state, processors)


if __name__ == "__main__":
    asyncio.run(main())
