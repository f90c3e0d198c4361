from __future__ import annotations

from services.handoff.settings import TicketSettings


class TimeoutSettings(TicketSettings):
    """Settings of the timeout worker (env `HANDOFF_...`)."""

    timeout_http_port: int = 8082
    # How often the deadline index is swept when nothing is due.
    timeout_tick_ms: int = 200
    # Most reverts claimed and published per sweep (spread over the owned shards): small
    # enough that the first reverts of a burst go out while later ones are still due.
    timeout_batch: int = 2000
    # How often the waiting sweep looks for queued users whose position improved (R16); each
    # user is told at most once a minute.
    waiting_sweep_ms: int = 5000
