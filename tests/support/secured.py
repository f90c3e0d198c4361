"""A secured stack for the R23 tests: Kafka with a SASL_SSL (SCRAM-SHA-512) listener and
StandardAuthorizer ACLs, Redis over TLS (client certificates required) with ACL users.

Both are given exactly what services/common/acl_table.py says: the Kafka ACLs of every
principal and a Redis ACL user per stateful part. Every part connects with its own
credentials, read from files (as a deployment mounts secrets).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest

from devstack.harness.env import service_env
from devstack.kafka import BrokerSecurity, KafkaProcess
from devstack.redis import RedisProcess, RedisSecurity
from devstack.redis_cluster import RedisClusterProcesses
from devstack.tls import CertificateAuthority
from services.common.acl_table import PRINCIPALS, REDIS_USERS, Acl, acls, redis_acl_rules
from services.common.kafka_options import aiokafka_options
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

ADMIN = "admin"
# Kafka's protocol codes (org.apache.kafka.common.acl / resource).
_RESOURCE = {"topic": 2, "group": 3, "transactional-id": 5}
_PATTERN = {"literal": 3, "prefixed": 4}
_OPERATION = {"Read": 3, "Write": 4, "Describe": 8}
_ALLOW = 3


class SecuredStack:
    """The CA, the two servers, and every principal's password files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority(root / "tls")
        self.client_tls = self.ca.issue("handoff-client")
        self.secrets = root / "secrets"
        self.secrets.mkdir(parents=True, exist_ok=True)
        self.kafka_passwords = {p: secrets.token_urlsafe(18) for p in (ADMIN, *PRINCIPALS)}
        self.redis_passwords = {u: secrets.token_urlsafe(18) for u in (ADMIN, *REDIS_USERS)}
        for name, password in self.kafka_passwords.items():
            self._secret(f"kafka-{name}", password)
        for name, password in self.redis_passwords.items():
            self._secret(f"redis-{name}", password)
        broker = self.ca.issue("kafka-broker")
        self.kafka = KafkaProcess(
            root / "kafka",
            extra_props={"num.partitions": "3"},
            security=BrokerSecurity(
                keystore=broker.keystore,
                truststore=self.ca.ca_file,
                admin=(ADMIN, self.kafka_passwords[ADMIN]),
                users={p: self.kafka_passwords[p] for p in PRINCIPALS},
            ),
        )
        server = self.ca.issue("redis-server")
        self.redis_security = RedisSecurity(
            cert=server.cert,
            key=server.key,
            ca=self.ca.ca_file,
            client_cert=self.client_tls.cert,
            client_key=self.client_tls.key,
            admin=(ADMIN, self.redis_passwords[ADMIN]),
            users={u: redis_acl_rules(self.redis_passwords[u], u) for u in REDIS_USERS},
        )
        self.redis = RedisProcess(root / "redis", security=self.redis_security)

    def _secret(self, name: str, value: str) -> None:
        path = self.secrets / name
        path.write_text(value + "\n")  # a trailing newline, as `echo … > file` leaves
        path.chmod(0o600)

    def transport(self, kafka_user: str, redis_user: str | None = None) -> dict[str, str]:
        """The HANDOFF_* transport settings of one part (Redis as `redis_user`, if any)."""
        env = {
            "HANDOFF_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HANDOFF_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "HANDOFF_KAFKA_SASL_USERNAME": kafka_user,
            "HANDOFF_KAFKA_SASL_PASSWORD_FILE": str(self.secrets / f"kafka-{kafka_user}"),
            "HANDOFF_KAFKA_SSL_CA_FILE": str(self.ca.ca_file),
        }
        if redis_user is not None:
            env |= {
                "HANDOFF_REDIS_USERNAME": redis_user,
                "HANDOFF_REDIS_PASSWORD_FILE": str(self.secrets / f"redis-{redis_user}"),
                "HANDOFF_REDIS_TLS_CA_FILE": str(self.ca.ca_file),
                "HANDOFF_REDIS_TLS_CERT_FILE": str(self.client_tls.cert),
                "HANDOFF_REDIS_TLS_KEY_FILE": str(self.client_tls.key),
            }
        return env

    def env(self, kafka_user: str, redis_user: str | None = None) -> dict[str, str]:
        """A service's whole environment, as tests/conftest.py gives the plain stack's."""
        return {**service_env(self.kafka, self.redis.url), **self.transport(kafka_user, redis_user)}

    def settings(self, kafka_user: str, redis_user: str | None = None) -> CommonSettings:
        values: dict[str, Any] = {
            key.removeprefix("HANDOFF_").lower(): value
            for key, value in self.env(kafka_user, redis_user).items()
            if key.startswith("HANDOFF_")
        }
        return CommonSettings(**values)

    def redis_cluster(self) -> RedisClusterProcesses:
        """A three-master Redis Cluster with the same TLS and ACL users (not started)."""
        return RedisClusterProcesses(self.root / "redis-cluster", security=self.redis_security)

    def start(self) -> None:
        self.kafka.start()
        self.redis.start()
        self.redis.wait_ready(30)
        self.kafka.wait_ready(120)

    async def provision(self) -> None:
        """As a deployment's admin would: the topics, then the table's ACLs."""
        admin = self.settings(ADMIN)
        await ensure_topics(admin)
        await create_acls(admin, acls(admin))

    def stop(self) -> None:
        self.kafka.stop()
        self.redis.stop()


async def create_acls(settings: CommonSettings, entries: list[Acl]) -> None:
    """CreateAcls, one entry per request (aiokafka's admin client has no ACL call)."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        for a in entries:
            request = CreateAclsRequest(
                _RESOURCE[a.resource], a.name, _PATTERN[a.pattern], a.principal, "*",
                _OPERATION[a.operation], _ALLOW,
            )  # fmt: skip
            response = await admin._send_to_controller(request)
            errors = [(code, message) for code, message in response.creation_responses if code]
            if errors:
                raise RuntimeError(f"CreateAcls {a}: {errors}")
    finally:
        await admin.close()
