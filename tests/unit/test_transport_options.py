"""R23: how the transport settings become aiokafka's and librdkafka's options, and Redis'.

Pure translation; that the clients connect with them to a real SASL_SSL broker and a TLS
Redis is tests/integration/test_r23_transport.py.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devstack.tls import CertificateAuthority
from services.common.acl_table import acls, grants, kafka_acls_commands
from services.common.kafka_options import aiokafka_options, librdkafka_options
from services.common.redis_options import redis_options
from services.common.settings import CommonSettings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    client = ca.issue("client")
    return ca.ca_file, client.cert, client.key


def test_the_default_is_plaintext_as_make_run_needs() -> None:
    s = CommonSettings()
    assert aiokafka_options(s) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert librdkafka_options(s) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }
    assert redis_options(s) == {}


def test_sasl_ssl_with_scram_and_mtls(pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ca, cert, key = pki
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    s = CommonSettings(
        kafka_bootstrap="k1:9093,k2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="router",
        kafka_sasl_password_file=secret,
        kafka_ssl_ca_file=ca,
        kafka_ssl_cert_file=cert,
        kafka_ssl_key_file=key,
    )
    options = aiokafka_options(s)
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "router",
        "sasl_plain_password": "s3cret",  # the file's content without its newline
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "handoff test CA"),),)
    ]
    assert librdkafka_options(s) == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca),
        "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key),
        "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": "router",
        "sasl.password": "s3cret",
    }


def test_the_password_setting_wins_over_the_file_and_stays_secret(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file")
    s = CommonSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="ops",
        kafka_sasl_password="direct",
        kafka_sasl_password_file=secret,
    )
    assert "direct" not in repr(s) and "direct" not in str(s.model_dump())
    assert "ssl_context" not in aiokafka_options(s)
    assert aiokafka_options(s)["sasl_plain_password"] == "direct"
    assert librdkafka_options(s) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "ops",
        "sasl.password": "direct",
    }


def test_ssl_without_a_ca_file_trusts_the_systems_cas() -> None:
    s = CommonSettings(kafka_security_protocol="SSL", kafka_ssl_key_password="kp")
    context = aiokafka_options(s)["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert librdkafka_options(s) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.key.password": "kp",
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs HANDOFF_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
            "HANDOFF_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_ssl_ca_file": "/ca.pem"}, "need HANDOFF_KAFKA_SECURITY_PROTOCOL=SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"},
            "go together",
        ),
        ({"redis_tls_ca_file": "/ca.pem"}, "need a rediss://"),
        (
            {"redis_url": "rediss://r:6380/0", "redis_tls_key_file": "/k.pem"},
            "go together",
        ),
        ({"kafka_security_protocol": "TLS"}, "PLAINTEXT"),
    ],
)
def test_a_half_configured_transport_fails_at_start(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CommonSettings(**settings)


def test_redis_credentials_and_tls_files(pki: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ca, cert, key = pki
    secret = tmp_path / "redis-password"
    secret.write_text("r-pass\n")
    s = CommonSettings(
        redis_url="rediss://redis.internal:6380/0",
        redis_username="router",
        redis_password_file=secret,
        redis_tls_ca_file=ca,
        redis_tls_cert_file=cert,
        redis_tls_key_file=key,
    )
    assert redis_options(s) == {
        "username": "router",
        "password": "r-pass",
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": str(ca),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }
    plain = CommonSettings(redis_password="p")  # requirepass, the default user
    assert redis_options(plain) == {"password": "p"}


def test_acl_table_grants_each_part_only_its_topics() -> None:
    s = CommonSettings(topic_prefix="prod.")
    table = acls(s)

    def allowed(principal: str, operation: str) -> set[str]:
        return {
            a.name
            for a in table
            if a.principal == f"User:{principal}" and a.operation == operation
            and a.resource == "topic"
        }  # fmt: skip

    t = s.topics
    assert allowed("channels", "Write") == {t.inbound}
    assert allowed("channels", "Read") == {t.outbound, t.events}
    assert t.human_queue not in allowed("agents", "Read")
    assert allowed("agents", "Write") == {t.agent_replies, t.commands, t.dead_letter}
    writers = {
        a.principal for a in table if a.name == t.operator_commands and a.operation == "Write"
    }
    assert writers == {"User:api", "User:ops"}
    assert [a.name for a in table if a.principal == "User:router" and a.resource != "topic"] == [
        "prod.handoff-reply-gate", "prod.handoff-router",  # groups
        "prod.handoff-reply-gate-", "prod.handoff-reply-gate-",  # transactional ids, prefixed
        "prod.handoff-router-", "prod.handoff-router-",
    ]  # fmt: skip
    commands = kafka_acls_commands(s, "k:9093", "admin.properties")
    assert len(commands) == len(table)
    assert (
        "kafka-acls.sh --bootstrap-server k:9093 --command-config admin.properties --add "
        "--allow-principal User:channels --operation Write --topic prod.chat.inbound "
        "--resource-pattern-type literal"
    ) in commands


def test_the_readme_shows_the_acl_table_as_the_code_has_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    header = "| principal | reads (Read, Describe) |"
    lines = readme[readme.index(header) :].splitlines()[2:]
    shown: dict[str, list[set[str]]] = {}
    for line in lines:
        if not line.strip().startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        shown[cells[0].strip("`")] = [
            {c} if c == "every topic" else set(re.findall(r"`([^`]+)`", c)) for c in cells[1:]
        ]
    s = CommonSettings()
    expected = {}
    for part, grant in grants(s).items():
        reads = {"every topic"} if set(grant.reads) == set(s.topics.all()) else set(grant.reads)
        expected[part] = [
            reads,
            set(grant.writes),
            {s.group_id(g) for g in grant.groups},
            {f"handoff-{t}-" for t in grant.transactional},
        ]
    assert shown == expected
