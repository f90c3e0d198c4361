from __future__ import annotations

from pathlib import Path

from services.common.files import FileSettings
from services.common.settings import CommonSettings


class TicketSettings(CommonSettings):
    """What the handoff service and the timeout worker share about tickets (R14-R18)."""

    # A teammate (an editor or admin) counts as online this long after their last ticket
    # action, desk reply or desk stream heartbeat (R16's "teammates online", the ETA).
    teammate_online_seconds: float = 300.0
    # TEST ONLY. Honour a per-tenant clock offset for opening hours (R17): the Redis key
    # `ho:testclock:{tenant}` holds milliseconds added to Redis TIME when a queue's hours
    # are evaluated, so a test picks a weekday and time without waiting. Nothing else
    # (leases, pickup targets, timestamps) moves. Never turn it on in a deployment.
    test_clock: bool = False

    @property
    def teammate_online_ms(self) -> int:
        return int(self.teammate_online_seconds * 1000)


class HandoffSettings(TicketSettings, FileSettings):
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
    # A request body larger than this is refused (413) before it is read (api/guard.py).
    api_max_body_bytes: int = 1024 * 1024
    # Desk: how many open tickets the desk lists, and events buffered per connected desk.
    desk_max_tickets: int = 200
    desk_client_buffer: int = 1000
    desk_heartbeat_seconds: float = 15.0
    # Presence in the reply box ("Jane is replying", state/presence.py): a teammate counts as
    # composing this long after their last heartbeat (the desk sends one every few seconds
    # while they type), and as having just replied this long after their reply.
    desk_composing_seconds: float = 10.0
    desk_replied_seconds: float = 30.0
    # Canned replies per tenant (state/canned.py, api/compose.py).
    desk_max_canned_replies: int = 500
    # Analytics (R21): how long hour buckets (and each interaction's journey) are kept, and
    # the longest range `GET /v1/tenants/{t}/analytics` answers.
    analytics_retention_days: float = 35.0
    analytics_max_range_days: int = 31
