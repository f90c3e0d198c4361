"""`python -m devstack.compose_secrets [DIR]`: the secret files of the compose file's secured
profile (docker-compose.secured.yml), generated once into DIR (default deploy/secured/secrets,
which git ignores).

A CA and certificates for the Kafka broker (`kafka`), Redis (`redis`) and the clients; a
random password per Kafka principal and Redis ACL user of services/common/acl_table.py; the
admin's client config; and the Redis ACL file. Existing files are kept: rerun it safely.
For production, put your organisation's CA and secret store in place of these files.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from devstack.tls import CertificateAuthority
from services.common.acl_table import PRINCIPALS, REDIS_USERS, redis_acl_rules

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "secured" / "secrets"


def _password(directory: Path, name: str) -> str:
    path = directory / name
    if not path.exists():
        # No final newline: the broker reads its admin password verbatim from the file.
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def generate(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "ca.pem").exists():
        ca = CertificateAuthority(directory, name="handoff compose CA")
        ca.issue("kafka", hosts=("kafka", "localhost", "127.0.0.1"))
        ca.issue("redis", hosts=("redis", "localhost", "127.0.0.1"))
        ca.issue("client", hosts=("handoff-client",))
    admin = _password(directory, "kafka-admin")
    for principal in PRINCIPALS:
        _password(directory, f"kafka-{principal}")
    (directory / "kafka-admin.properties").write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{admin}";\n'
        "ssl.truststore.type=PEM\n"
        "ssl.truststore.location=/run/secrets/ca.pem\n"
    )
    lines = [
        "user default off",
        f"user admin on >{_password(directory, 'redis-admin')} ~* &* +@all",
    ]
    for user in REDIS_USERS:
        rules = redis_acl_rules(_password(directory, f"redis-{user}"), user)
        lines.append(f"user {user} {' '.join(rules)}")
    (directory / "redis-users.acl").write_text("\n".join(lines) + "\n")
    # Compose bind-mounts each file with its host mode and the containers run as other users,
    # so the files are readable and the directory is what keeps other host users out.
    for path in directory.iterdir():
        path.chmod(0o644)
    directory.chmod(0o700)


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR
    generate(directory)
    print(f"secured profile secrets in {directory}")


if __name__ == "__main__":
    main()
