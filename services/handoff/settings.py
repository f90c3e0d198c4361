from __future__ import annotations

from services.common.settings import CommonSettings


class HandoffSettings(CommonSettings):
    """Settings of the handoff service (env `HANDOFF_...`)."""

    handoff_http_port: int = 8080
    # How many of the interaction's last turns a HandoffTicket carries.
    ticket_transcript_turns: int = 20
