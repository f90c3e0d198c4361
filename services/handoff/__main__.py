"""`python -m services.handoff`: the handoff command consumer, the operator API and console."""

from __future__ import annotations

import asyncio

import structlog

from services.common import tracing
from services.common.kafka import TransactionalProcessor
from services.common.logging import configure_logging
from services.common.service import run_service
from services.handoff.analytics.consumer import AnalyticsConsumer
from services.handoff.analytics.store import AnalyticsStore, limits_of
from services.handoff.api.app import create_app
from services.handoff.api.auth import JwtVerifier, read_public_key
from services.handoff.api.context import ApiContext
from services.handoff.api.desk import DeskFeed
from services.handoff.api.secret import resolve_secret
from services.handoff.consumer import CommandConsumer
from services.handoff.replies import ExternalReplies
from services.handoff.service.commands import CommandService
from services.handoff.settings import HandoffSettings
from services.handoff.state.store import ModeStore

log = structlog.get_logger()


async def main() -> None:
    settings = HandoffSettings()
    configure_logging(settings.log_level, settings.log_redact)
    tracing.configure(settings, "handoff")
    verifier = JwtVerifier(
        resolve_secret(settings.api_jwt_secret, settings.api_jwt_secret_file),
        read_public_key(settings.api_jwt_public_key),
        settings.api_jwt_leeway_seconds,
    )
    store = ModeStore.from_settings(settings)
    await store.load_functions()
    agents, interactions = await store.backfill_list_indexes()
    if agents or interactions:
        log.info("list_indexes_backfilled", agents=agents, interactions=interactions)
    commands = CommandService(
        store,
        settings.minute_ms,
        settings.ticket_transcript_turns,
        settings.teammate_online_ms,
        settings.test_clock,
    )
    consumer = CommandConsumer(commands, settings.topics)
    processor = TransactionalProcessor(settings, "handoff", consumer.topic_names, consumer)
    # R19: teammates' replies external desks send straight to chat.outbound (replies.py).
    replies = TransactionalProcessor(
        settings, "desk-replies", [settings.topics.outbound], ExternalReplies(store)
    )
    # Started in this order: the desk feed is at the end of its topics before the command
    # processor emits anything, so a desk misses no ticket of this instance.
    desk = DeskFeed(settings, store)
    analytics = TransactionalProcessor(
        settings,
        "analytics",
        [settings.topics.events, settings.topics.outbound],
        AnalyticsConsumer(
            AnalyticsStore(store.redis, limits_of(settings, settings.analytics_retention_days)),
            settings.topics,
        ),
    )
    context = ApiContext.of(settings, store, commands, desk, verifier)
    app = create_app(context)
    await run_service(
        "handoff",
        settings,
        settings.handoff_http_port,
        store,
        [desk, processor, replies, analytics],
        app=app,
    )


if __name__ == "__main__":
    asyncio.run(main())
