"""Settings every service shares; each service's own class extends it (env prefix `HANDOFF_`)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class Topics:
    inbound: str
    ai_requests: str
    human_queue: str
    agent_replies: str
    outbound: str
    commands: str
    operator_commands: str
    events: str
    dead_letter: str
    timeout_shards: str

    def for_role(self, role: str) -> str:
        """The topic of an output role, as queued outputs name it (events, outbound,
        human_queue): queued records name a role, not a topic, so a prefix or a renamed
        topic applies to them too."""
        return {
            "events": self.events,
            "outbound": self.outbound,
            "human_queue": self.human_queue,
        }[role]

    def all(self) -> list[str]:
        return [
            self.inbound,
            self.ai_requests,
            self.human_queue,
            self.agent_replies,
            self.outbound,
            self.commands,
            self.operator_commands,
            self.events,
            self.dead_letter,
            self.timeout_shards,
        ]


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # R23 transport security of every Kafka client (services/common/kafka_options.py).
    # PLAINTEXT is only for a broker on a private network (`make run`: localhost).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The password read from a file (a mounted secret); the password itself wins if both set.
    kafka_sasl_password_file: Path | None = None
    # PEM files: the CA that signed the brokers' certificates (unset: the system's CAs), and
    # this client's certificate and key for mTLS (key optionally encrypted with the password).
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    redis_url: str = "redis://127.0.0.1:6379/0"
    # In addition to what the URL carries (services/common/redis_options.py): the ACL user
    # and password (AUTH), and for a `rediss://` URL the CA and the client certificate.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    # The URL names one node of a Redis Cluster (database 0); the client finds the others.
    redis_cluster: bool = False
    # A Redis call that takes longer fails the batch (retried; readiness goes false): a
    # stalled Redis must not stall a consumer silently.
    redis_timeout_seconds: float = 2.0
    # Stable per running instance: it names the Kafka transactional id, so a restarted
    # instance fences its dead predecessor and aborts the transaction it left open.
    instance_id: str = Field(default_factory=socket.gethostname)
    log_level: str = "INFO"
    # Message text, reasons and end-user ids stay out of the logs unless this is turned off.
    log_redact: bool = True
    http_host: str = "127.0.0.1"
    # /metrics and the documents (/docs, /redoc, /openapi.json, /asyncapi.json): on the
    # service's port unless `ops_port` is set (then only there, bound to
    # `ops_host`, default `http_host`); off altogether when turned off here.
    ops_port: int | None = None
    ops_host: str | None = None
    http_metrics: bool = True
    http_docs: bool = True
    # OpenTelemetry (services/common/tracing.py): the OTLP/HTTP collector's base URL, e.g.
    # http://collector:4318 (spans go to <it>/v1/traces). Unset: tracing off, no spans made.
    otel_exporter_otlp_endpoint: str | None = None
    # How many seconds an "idle timeout minute" lasts. 60 in production; tests shrink it.
    minute_seconds: float = 60.0

    topic_prefix: str = ""
    topic_inbound: str = "chat.inbound"
    topic_ai_requests: str = "chat.ai-requests"
    topic_human_queue: str = "chat.human-queue"
    topic_agent_replies: str = "agent.replies"
    topic_outbound: str = "chat.outbound"
    # R22: handoff.commands grants agent authority only; operator commands come from the
    # operator API or from handoff.operator-commands, whose writers the ACLs restrict.
    topic_commands: str = "handoff.commands"
    topic_operator_commands: str = "handoff.operator-commands"
    topic_events: str = "handoff.events"
    topic_dead_letter: str = "chat.dead-letter"
    # Internal: never holds records. Its partitions are the state shards; the timeout
    # workers' consumer group splits them, and its committed offsets checkpoint each outbox.
    topic_timeout_shards: str = "handoff.timeout-shards"
    topic_partitions: int = 6

    # What the state functions keep (see services/handoff/state/reader.py StateLimits).
    dedupe_ttl_hours: float = 168.0
    transcript_max_turns: int = 500
    history_max_changes: int = 1000
    # R20: at most this many of the human stretch's last turns go to the AI in
    # routing.context (a prompt stays bounded however long a person had the user).
    return_context_turns: int = 20

    # Off: outputs are acknowledged (acks=all, idempotent) and then offsets committed, with no
    # Kafka transaction: faster, but a crash between the two repeats a batch's outputs
    # (same bytes, same ids) on the output topics. On is the default and the R10 guarantee.
    exactly_once: bool = True

    consumer_max_records: int = 500
    consumer_poll_ms: int = 100
    transaction_timeout_ms: int = 10_000
    # An instance silent this long leaves its consumer groups; its partitions move (static
    # membership: a restart within it takes them back at once). aiokafka's default, kept.
    kafka_session_timeout_ms: int = 10_000

    @model_validator(mode="after")
    def _transport_is_complete(self) -> Self:
        """A half-configured transport fails at start with the setting to fix, not at the
        first connection with a broker's or a TLS library's riddle."""
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and (self.kafka_sasl_password or self.kafka_sasl_password_file)
        ):
            raise ValueError(
                f"HANDOFF_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "HANDOFF_KAFKA_SASL_USERNAME and HANDOFF_KAFKA_SASL_PASSWORD "
                "(or HANDOFF_KAFKA_SASL_PASSWORD_FILE)"
            )
        kafka_tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        kafka_files = (self.kafka_ssl_ca_file, self.kafka_ssl_cert_file, self.kafka_ssl_key_file)
        if not kafka_tls and any(kafka_files):
            raise ValueError(
                "HANDOFF_KAFKA_SSL_* files need HANDOFF_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "HANDOFF_KAFKA_SSL_CERT_FILE and HANDOFF_KAFKA_SSL_KEY_FILE go together"
            )
        redis_files = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if any(redis_files) and not self.redis_url.startswith("rediss://"):
            raise ValueError("HANDOFF_REDIS_TLS_* files need a rediss:// HANDOFF_REDIS_URL")
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError(
                "HANDOFF_REDIS_TLS_CERT_FILE and HANDOFF_REDIS_TLS_KEY_FILE go together"
            )
        return self

    def kafka_sasl_password_value(self) -> str | None:
        return _secret(self.kafka_sasl_password, self.kafka_sasl_password_file)

    def redis_password_value(self) -> str | None:
        return _secret(self.redis_password, self.redis_password_file)

    @property
    def topics(self) -> Topics:
        p = self.topic_prefix
        return Topics(
            inbound=p + self.topic_inbound,
            ai_requests=p + self.topic_ai_requests,
            human_queue=p + self.topic_human_queue,
            agent_replies=p + self.topic_agent_replies,
            outbound=p + self.topic_outbound,
            commands=p + self.topic_commands,
            operator_commands=p + self.topic_operator_commands,
            events=p + self.topic_events,
            dead_letter=p + self.topic_dead_letter,
            timeout_shards=p + self.topic_timeout_shards,
        )

    @property
    def minute_ms(self) -> int:
        return int(self.minute_seconds * 1000)

    def group_id(self, service: str) -> str:
        return f"{self.topic_prefix}handoff-{service}"

    def transactional_id(self, service: str) -> str:
        return f"{self.topic_prefix}handoff-{service}-{self.instance_id}"


def _secret(value: SecretStr | None, file: Path | None) -> str | None:
    """A secret given directly, else the file's content without its final newline."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text().rstrip("\r\n")
    return None
