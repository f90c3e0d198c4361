from __future__ import annotations

from pathlib import Path

from services.common.settings import CommonSettings


class HandoffSettings(CommonSettings):
    """Settings of the handoff service (env `HANDOFF_...`)."""

    handoff_http_port: int = 8080
    # How many of the interaction's last turns a HandoffTicket carries.
    ticket_transcript_turns: int = 20

    # Operator API auth (services/handoff/api/auth.py). HS256 tokens are signed with the
    # secret; when it is unset, a random one is generated once per install and kept (0600)
    # in `api_jwt_secret_file`, which `make token` reads too. Never a constant in the code.
    api_jwt_secret: str | None = None
    api_jwt_secret_file: Path | None = None  # default: $XDG_CONFIG_HOME/handoff/jwt-secret
    # Optional: also accept RS256 tokens, verified with this PEM public key (or a path to one).
    api_jwt_public_key: str | None = None
    # Clock skew allowed on `exp` / `nbf`.
    api_jwt_leeway_seconds: int = 30
    # Desk: how many open tickets the desk lists, and events buffered per connected desk.
    desk_max_tickets: int = 200
    desk_client_buffer: int = 1000
    desk_heartbeat_seconds: float = 15.0
    # Analytics (R21): how long hour buckets (and each interaction's journey) are kept, and
    # the longest range `GET /v1/tenants/{t}/analytics` answers.
    analytics_retention_days: float = 35.0
    analytics_max_range_days: int = 31
