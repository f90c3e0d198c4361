from __future__ import annotations

from services.common.settings import CommonSettings


class TimeoutSettings(CommonSettings):
    """Settings of the timeout worker (env `HANDOFF_...`)."""

    timeout_http_port: int = 8082
    # How often the deadline index is swept when nothing is due.
    timeout_tick_ms: int = 200
    # Most reverts claimed, and published, per shard and sweep.
    timeout_batch: int = 500
