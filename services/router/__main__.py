"""`python -m services.router`: the router and the reply gate, with their ops HTTP endpoints."""

from __future__ import annotations

import asyncio

import structlog

from services.common.http import ops_app, run_until_first_exit, serve
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.handoff.client import StateClient
from services.router.handlers import InboundRouter, ReplyGate
from services.router.settings import RouterSettings

log = structlog.get_logger()


async def main() -> None:
    settings = RouterSettings()
    configure_logging(settings.log_level, settings.log_redact)
    state = StateClient.from_settings(settings)
    await state.load_functions()
    topics = settings.topics
    processors = [
        TransactionalProcessor(settings, "router", [topics.inbound], InboundRouter(state, topics)),
        TransactionalProcessor(
            settings, "reply-gate", [topics.agent_replies], ReplyGate(state, topics)
        ),
    ]

    async def readiness() -> dict[str, bool]:
        return {"redis": await state.ping(), "kafka": all(p.healthy for p in processors)}

    for p in processors:
        await p.start()
    log.info("router_started", inbound=topics.inbound, replies=topics.agent_replies)
    try:
        await run_until_first_exit(
            *(p.run() for p in processors),
            serve(ops_app("router", readiness), settings.http_host, settings.router_http_port),
        )
    finally:
        for p in processors:
            await p.stop()
        await state.close()


if __name__ == "__main__":
    asyncio.run(main())
