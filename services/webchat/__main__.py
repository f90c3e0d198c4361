"""`python -m services.webchat`: the web chat gateway, its page and its ops endpoints."""

from __future__ import annotations

import asyncio

from services.common import tracing
from services.common.files import FileStore
from services.common.logging import configure_logging
from services.common.service import run_service
from services.webchat import identity
from services.webchat.app import Gateway, create_app
from services.webchat.conversation import ConversationReader
from services.webchat.feed import Inbound, OutboundFeed
from services.webchat.settings import WebchatSettings


async def main() -> None:
    settings = WebchatSettings()
    configure_logging(settings.log_level, settings.log_redact)
    tracing.configure(settings, "webchat")
    data = settings.webchat_data_dir.resolve()
    feed, inbound = OutboundFeed(settings), Inbound(settings)
    # Reads the page's own transcript and mode (never writes): the gateway's readiness is
    # its Kafka workers' and this Redis.
    reader = ConversationReader.from_settings(settings, settings.webchat_history_turns)
    gateway = Gateway(
        settings,
        feed,
        inbound,
        FileStore(data, settings.webchat_base_url),
        identity.load_secret(settings.webchat_cookie_secret, data),
        reader,
    )
    await run_service(
        "webchat",
        settings,
        settings.webchat_http_port,
        reader,
        [feed, inbound],
        app=create_app(gateway),
    )


if __name__ == "__main__":
    asyncio.run(main())
