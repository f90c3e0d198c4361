"""`python -m services.webchat`: the web chat gateway, its page and its ops endpoints."""

from __future__ import annotations

import asyncio

from services.common.logging import configure_logging
from services.common.service import run_service
from services.webchat import identity
from services.webchat.app import Gateway, create_app
from services.webchat.feed import Inbound, OutboundFeed
from services.webchat.files import FileStore
from services.webchat.settings import WebchatSettings


class NoState:
    """The gateway keeps no Redis state: its readiness is its Kafka workers'."""

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


async def main() -> None:
    settings = WebchatSettings()
    configure_logging(settings.log_level, settings.log_redact)
    data = settings.webchat_data_dir.resolve()
    feed, inbound = OutboundFeed(settings), Inbound(settings)
    gateway = Gateway(
        settings,
        feed,
        inbound,
        FileStore(data, settings.webchat_base_url),
        identity.load_secret(settings.webchat_cookie_secret, data),
    )
    await run_service(
        "webchat",
        settings,
        settings.webchat_http_port,
        NoState(),
        [feed, inbound],
        app=create_app(gateway),
    )


if __name__ == "__main__":
    asyncio.run(main())
