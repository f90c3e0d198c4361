"""The API's Kafka producer: idempotent, acks=all; a call returns once every record is acked.

A worker of the handoff service (started before the HTTP server, stopped after it), so
readiness reports it. The mode switch's records are the ones CommandService returned, the
same as the Kafka command path emits; their ids are derived from the command id, so sending
them again (a retry with the same Idempotency-Key) repeats ids that consumers drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from services.common.kafka import Output, idempotent_producer, send_idempotent
from services.common.settings import CommonSettings
from services.handoff.api.errors import ApiError


class Publisher:
    def __init__(self, settings: CommonSettings, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self.healthy = False

    async def start(self) -> None:
        self._producer = idempotent_producer(self._settings)
        await self._producer.start()
        self.healthy = True

    async def run(self) -> None:
        await asyncio.Event().wait()  # nothing to loop on: sends happen in requests

    async def stop(self) -> None:
        self.healthy = False
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, outputs: Sequence[Output]) -> None:
        """Sends in order and waits for every ack, or raises a 503 ApiError."""
        if self._producer is None:
            raise ApiError(503, "unavailable", "The service is starting; retry shortly.")
        try:
            await asyncio.wait_for(send_idempotent(self._producer, outputs), self._timeout_s)
        except Exception as exc:
            raise ApiError(
                503,
                "unavailable",
                "Kafka did not acknowledge the records in time. The change may be stored "
                "already: retry with the same Idempotency-Key to finish it.",
            ) from exc
