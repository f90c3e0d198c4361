from __future__ import annotations

from services.common.settings import CommonSettings


class RouterSettings(CommonSettings):
    """Settings of the router and its reply gate (env `HANDOFF_...`)."""

    router_http_port: int = 8081
