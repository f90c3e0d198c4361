"""How every Kafka client the project ships connects: one place for the connection settings.

`aiokafka_options` gives the keyword arguments of aiokafka's clients, `librdkafka_options`
the configuration of confluent-kafka's (librdkafka) clients. Transport security (R23:
`security.protocol`, SASL, TLS certificates) is added here, so that no client is left out.
"""

from __future__ import annotations

from typing import Any

from services.common.settings import CommonSettings


def aiokafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    return {"bootstrap_servers": settings.kafka_bootstrap}


def librdkafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Configuration entries for confluent_kafka.Producer / Consumer / AdminClient."""
    return {"bootstrap.servers": settings.kafka_bootstrap}
