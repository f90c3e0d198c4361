"""The baseline: a bare aiokafka consume → produce passthrough, with the router's batch
settings, acks and partitions, and no Redis. `python bench/passthrough.py IN OUT GROUP [--eos]`.

--eos wraps each batch in a Kafka transaction with its offsets, as the router does by default;
without it, outputs are acknowledged and then offsets committed (HANDOFF_EXACTLY_ONCE=false).
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings


async def main(source: str, sink: str, group: str, eos: bool) -> None:
    kafka = aiokafka_options(CommonSettings())  # HANDOFF_KAFKA_* from the environment
    producer = (
        AIOKafkaProducer(**kafka, transactional_id=f"{group}-tx")
        if eos
        else AIOKafkaProducer(**kafka, enable_idempotence=True, acks="all")
    )
    consumer = AIOKafkaConsumer(
        source, **kafka, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", isolation_level="read_committed",
        max_poll_records=500, fetch_max_wait_ms=100,
    )  # fmt: skip
    await producer.start()
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            if not batches:
                continue
            offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
            records = [r for rs in batches.values() for r in rs]
            if eos:
                async with producer.transaction():
                    sent = [await producer.send(sink, r.value, key=r.key) for r in records]
                    await asyncio.gather(*sent)
                    await producer.send_offsets_to_transaction(offsets, group)
            else:
                sent = [await producer.send(sink, r.value, key=r.key) for r in records]
                await asyncio.gather(*sent)
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], "--eos" in sys.argv))
