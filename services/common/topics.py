"""`python -m services.common.topics`: creates the contract's topics (idempotent).

handoff.events keeps its records forever (retention.ms=-1): it is the log the mode state can
be rebuilt from. chat.dead-letter keeps 30 days. The rest use the broker's retention.
handoff.timeout-shards (internal, empty) has one partition per state shard.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings
from services.common.shards import SHARDS

DAY_MS = 24 * 3600 * 1000


def topic_specs(settings: CommonSettings) -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name -> (partitions, configs)."""
    topics = settings.topics
    specs: dict[str, tuple[int, dict[str, str]]] = {
        name: (settings.topic_partitions, {}) for name in topics.all()
    }
    specs[topics.events] = (settings.topic_partitions, {"retention.ms": "-1"})
    specs[topics.dead_letter] = (settings.topic_partitions, {"retention.ms": str(30 * DAY_MS)})
    specs[topics.timeout_shards] = (SHARDS, {})
    return specs


async def ensure_topics(settings: CommonSettings, replication: int = 1) -> list[str]:
    """Creates the missing topics; returns the names it created."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, partitions, replication, topic_configs=config)
            for name, (partitions, config) in topic_specs(settings).items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile elsewhere
                await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()


if __name__ == "__main__":
    created = asyncio.run(ensure_topics(CommonSettings()))
    print("created topics: " + (", ".join(created) if created else "none (all existed)"))
