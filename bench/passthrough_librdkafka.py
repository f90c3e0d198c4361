"""The librdkafka baseline: a bare confluent-kafka consume → produce passthrough, with the
router's batch size, acks, partitioner and partitions, and no Redis: what the client library
lets Python move on this machine. `python bench/passthrough_librdkafka.py IN OUT GROUP [--eos]`.

--eos wraps each batch in a Kafka transaction with its offsets and the consumer's group
metadata (KIP-447), as the router does by default (and with its retry.backoff.ms); without it, outputs are acknowledged and
then offsets committed (HANDOFF_EXACTLY_ONCE=false).
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer, Producer, TopicPartition


def main(source: str, sink: str, group: str, eos: bool) -> None:
    common = {"bootstrap.servers": os.environ["HANDOFF_KAFKA_BOOTSTRAP"]}
    tuning = {"partitioner": "murmur2_random", "message.max.bytes": 1_048_588}
    producer = Producer(
        {**common, **tuning, "transactional.id": f"{group}-tx", "retry.backoff.ms": 10}
        if eos
        else {**common, **tuning, "enable.idempotence": True, "acks": "all"}
    )
    consumer = Consumer(
        {**common, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
         "isolation.level": "read_committed", "fetch.wait.max.ms": 100,
         "partition.assignment.strategy": "cooperative-sticky"}
    )  # fmt: skip
    consumer.subscribe([source])
    if eos:
        producer.init_transactions(30)
    try:
        while True:
            first = consumer.poll(0.1)
            if first is None:
                continue
            records = [first, *consumer.consume(499, 0)]
            offsets: dict[tuple[str, int], int] = {}
            if eos:
                producer.begin_transaction()
            for r in records:
                if r.error() is not None:
                    continue
                while True:
                    try:
                        producer.produce(sink, r.value(), r.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
                offsets[(r.topic() or "", r.partition() or 0)] = (r.offset() or 0) + 1
            positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            if eos:
                meta = consumer.consumer_group_metadata()
                producer.send_offsets_to_transaction(positions, meta, 30)
                producer.commit_transaction(30)
            else:
                producer.flush(30)
                consumer.commit(offsets=positions, asynchronous=False)
    finally:
        consumer.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--eos" in sys.argv)
