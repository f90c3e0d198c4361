from __future__ import annotations

from services.common.files import WEBCHAT_PORT, FileSettings


class WebchatSettings(FileSettings):
    """Settings of the web chat gateway (env `HANDOFF_...`)."""

    webchat_http_port: int = WEBCHAT_PORT

    @property
    def webchat_port(self) -> int:
        return self.webchat_http_port

    # Who a page talks to when its URL names no ?tenant= / ?agent=.
    webchat_tenant: str = "acme"
    webchat_agent: str = "support"
    webchat_channel: str = "web"
    # The signed cookie's key; when unset, one is generated once into the data folder.
    webchat_cookie_secret: str | None = None
    # Dev setup only: ?user=alice names the end user (else the signed cookie's random id
    # does). Anyone could then read and write as any user: `make run` turns it on, nothing
    # else should.
    webchat_query_user: bool = False
    # Behind a reverse proxy that terminates TLS: trust its X-Forwarded-Proto (the cookie is
    # then `Secure` on https requests). It always is when webchat_public_url is https.
    webchat_trust_proxy: bool = False
    # Messages buffered per open page; a page too slow to drain them is disconnected.
    webchat_client_buffer: int = 200
    webchat_heartbeat_seconds: float = 15.0
    # The turns a page loads of its conversation (the latest; the transcript keeps more).
    webchat_history_turns: int = 200
