"""The latency bench's load: UserMessages at a fixed rate, in a process of its own, so that
producing never delays the reading of the outputs (bench/route_latency.py reads them).

    python -m bench.load_generator BOOTSTRAP TOPIC RATE SECONDS TAG WARMUP_SECONDS

Each message's event id is `TAG-<n>-<µs since the epoch>` of the moment it is handed to
librdkafka, and its record's CreateTime is that moment too (in ms): the reader takes the
inbound time from the id, at µs precision. The first WARMUP_SECONDS at the same rate carry
ids `TAGw-…` that the reader ignores: the path reaches its steady state (batch sizes,
transactions in flight) before anything is measured. librdkafka with linger.ms=0 sends each at once,
acks=all, keys partitioned as Java's and aiokafka's clients do. Prints the number sent.
"""

from __future__ import annotations

import re
import sys
import time

from confluent_kafka import Producer

from bench.route_throughput import INTERACTIONS, interaction, message


def event_id(tag: str, n: int, at_us: int) -> str:
    return f"{tag}-{n}-{at_us}"


def event_ids(tag: str) -> re.Pattern[bytes]:
    """Finds an `event_id` of this run in a record's bytes: groups n and the µs sent."""
    return re.compile(rb'"' + re.escape(tag.encode()) + rb'-(\d+)-(\d+)"')


def generate(
    bootstrap: str, topic: str, rate: float, seconds: float, tag: str, warmup: float
) -> int:
    """Sends at `rate` for `warmup` + `seconds`; returns how many were sent after the warm-up."""
    producer = Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
        "partitioner": "murmur2_random", "enable.idempotence": True,
    })  # fmt: skip
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Connected, with the topic's metadata and a producer id, before the clock starts: else
    # the first messages wait for all three and the start-up shows as latency.
    warm = message(0, now).replace(b"e000000000", f"{tag}-warm".encode())
    producer.produce(topic, warm, interaction(0).encode())
    producer.flush(30)
    sent, measured_from = 0, round(warmup * rate)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < warmup + seconds:
        due = int(elapsed * rate) + 1  # how many the offered rate has asked for by now
        while sent < due:
            template = message(sent, now)
            at_us = time.time_ns() // 1000
            which = tag if sent >= measured_from else f"{tag}w"
            value = template.replace(f"e{sent:09d}".encode(), event_id(which, sent, at_us).encode())
            producer.produce(
                topic, value, interaction(sent % INTERACTIONS).encode(), timestamp=at_us // 1000
            )
            sent += 1
        producer.poll(0)
        time.sleep(0.0005)  # the pacing tick: at most 0.5 ms late
    producer.flush(30)
    return sent - measured_from


if __name__ == "__main__":
    bootstrap, topic, rate, seconds, tag, warmup = sys.argv[1:7]
    print(generate(bootstrap, topic, float(rate), float(seconds), tag, float(warmup)), flush=True)
