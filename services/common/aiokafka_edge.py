"""The edge's producer on aiokafka: the web chat's desk feed, the CLI, the demo.

These write a few records at a time outside any consumer's transaction, from asyncio code,
so aiokafka (pure Python, asyncio-native) is the simpler client for them. The exactly-once
core (every consume -> produce service, the relay) is on librdkafka: services/common/kafka.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from services.common.kafka import BROKER_MAX_MESSAGE_BYTES, Output
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings


async def send_idempotent(producer: AIOKafkaProducer, outputs: Sequence[Output]) -> None:
    """Sends in order and waits for every ack: with acks=all on an idempotent producer, each
    record is written once, in order."""
    futures = [
        await producer.send(o.topic, o.value, key=o.key.encode(), headers=list(o.headers) or None)
        for o in outputs
    ]
    await asyncio.gather(*futures)


def idempotent_producer(settings: CommonSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **aiokafka_options(settings),
        enable_idempotence=True,
        acks="all",
        max_request_size=BROKER_MAX_MESSAGE_BYTES,
    )
