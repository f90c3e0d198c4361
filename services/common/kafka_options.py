"""How every Kafka client the project ships connects: one place for the connection settings.

`aiokafka_options` gives the keyword arguments of aiokafka's clients, `librdkafka_options`
the configuration of confluent-kafka's (librdkafka) clients. Transport security (R23:
`security.protocol`, SASL, TLS certificates) is added here, so that no client is left out.
The settings check that what a protocol needs is there (CommonSettings).
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from services.common.settings import CommonSettings


def _uses_tls(settings: CommonSettings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(settings: CommonSettings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def ssl_context(settings: CommonSettings) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name (against the CA file, else the
    system's CAs) and presents the client certificate when one is set (mTLS)."""
    key_password = settings.kafka_ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None,
        certfile=str(settings.kafka_ssl_cert_file) if settings.kafka_ssl_cert_file else None,
        keyfile=str(settings.kafka_ssl_key_file) if settings.kafka_ssl_key_file else None,
        password=key_password.get_secret_value() if key_password else None,
    )
    return context


def aiokafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if _uses_tls(settings):
        options["ssl_context"] = ssl_context(settings)
    if _uses_sasl(settings):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password_value()
    return options


def librdkafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Configuration entries for confluent_kafka.Producer / Consumer / AdminClient."""
    options: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
    }
    if _uses_tls(settings):
        # librdkafka verifies the broker's host name by default (since 1.9); say so anyway.
        options["ssl.endpoint.identification.algorithm"] = "https"
        files = {
            "ssl.ca.location": settings.kafka_ssl_ca_file,
            "ssl.certificate.location": settings.kafka_ssl_cert_file,
            "ssl.key.location": settings.kafka_ssl_key_file,
        }
        options.update({key: str(path) for key, path in files.items() if path is not None})
        if settings.kafka_ssl_key_password is not None:
            options["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    if _uses_sasl(settings):
        options["sasl.mechanisms"] = settings.kafka_sasl_mechanism
        options["sasl.username"] = settings.kafka_sasl_username
        options["sasl.password"] = settings.kafka_sasl_password_value()
    return options
