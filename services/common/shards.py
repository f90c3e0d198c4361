"""Which shard a key belongs to: the Redis Cluster hash tag every service's state shares.

Every interaction (and agent, tenant) belongs to one of SHARDS shards by the crc32 of its key;
the shard's hash tag `{hN}` opens the names of the keys kept for it, so one interaction's keys
share one Redis Cluster slot whichever service writes them. SHARDS is part of the data
layout (and the partition count of handoff.timeout-shards): changing it strands existing
state, so it is a constant, not a setting.
"""

from __future__ import annotations

import zlib

SHARDS = 64


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def shard_tag(shard: int) -> str:
    return f"{{h{shard}}}"
