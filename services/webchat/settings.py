from __future__ import annotations

from pathlib import Path

from services.common.settings import CommonSettings

WEBCHAT_PORT = 8084


class FileSettings(CommonSettings):
    """Where uploaded files live and the URL they are served at: the web chat gateway serves
    them, and the operator API (a teammate's attachment) and handoffctl store them there too,
    so every service of one install reads the same `HANDOFF_WEBCHAT_*` values."""

    # Uploaded files (files/<id>/<name>) and the cookie secret live here.
    webchat_data_dir: Path = Path(".run/webchat")
    # The base URL of the links to uploaded files that messages carry; default
    # http://{http_host}:{the gateway's port}. Set it when the gateway sits behind a proxy,
    # and for the other services when the gateway is not on this host's port 8084.
    webchat_public_url: str | None = None
    webchat_max_upload_bytes: int = 10 * 1024 * 1024

    @property
    def webchat_port(self) -> int:
        """The gateway's port, as far as this service knows (only the gateway sets it)."""
        return WEBCHAT_PORT

    @property
    def webchat_base_url(self) -> str:
        if self.webchat_public_url:
            return self.webchat_public_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{host}:{self.webchat_port}"


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
