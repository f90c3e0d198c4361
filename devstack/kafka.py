"""A single-node Apache Kafka broker in KRaft mode, run as a local JVM process.

The services rely on transactions and consumer groups, which in-memory fakes do not model
faithfully, so tests and ``make run`` use the genuine broker from Maven Central jars.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devstack.kafka_cds import (
    archive_is_valid,
    cds_archive_path,
    cds_enabled,
    java_binary,
    usable_cds_archive,
)
from devstack.kafka_jars import kafka_jars_dir
from devstack.ports import ensure_free, free_port
from devstack.process import ManagedProcess, ProcessStartError

__all__ = ["BrokerSecurity", "KafkaProcess", "build_cds_archive", "kafka_jars_dir"]

STARTED_LINE = "Kafka Server started"

# C1-only JIT: measured ~0.5 s faster to ready on the 2-core dev machine, and peak JIT
# quality does not matter at test-scale traffic. Serial GC: start time neutral, but fewer
# threads and less memory than G1 next to the test processes.
JVM_OPTS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xss1m",
    "-Djava.awt.headless=true",
)

# Everything a one-broker cluster needs to accept transactional producers and consumer
# groups. Internal topics get few partitions: creating the default 50 each makes the first
# consumer group and the first transaction seconds slower, and nothing here needs them.
BASE_PROPS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "inter.broker.listener.name": "PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # After a SIGKILL the controller keeps the dead incarnation registered until its
    # session expires, and the restarted broker waits for that (9 s by default). A shorter
    # session makes crash-restart tests ~6 s faster; 3 s still rides out GC/CI stalls.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "num.partitions": "1",
}

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by devstack. WARN keeps the log readable; the one INFO logger is the
     "{started}" line that KafkaProcess.wait_ready looks for. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="{level}"><AppenderRef ref="STDOUT"/></Root>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
  </Loggers>
</Configuration>
"""


@dataclass(frozen=True)
class BrokerSecurity:
    """The client listener as SASL_SSL with SCRAM-SHA-512, and ACLs (StandardAuthorizer).

    `keystore` holds the broker's unencrypted PKCS#8 key and certificate chain (PEM),
    `truststore` the CA. `admin` is the super user the broker itself authenticates as on
    the inter-broker listener; `users` (name -> password) are the SCRAM users created when
    the storage is formatted (`kafka-storage format --add-scram`). Nobody else may do
    anything until an ACL allows it (`allow.everyone.if.no.acl.found=false`).

    The controller listener (on 127.0.0.1, broker-to-controller traffic only) is
    SASL_PLAINTEXT with PLAIN for the same admin: SCRAM is not available on KRaft controller
    listeners, since its credentials live in the metadata the controller serves.
    """

    keystore: Path
    truststore: Path
    admin: tuple[str, str]
    users: dict[str, str] = field(default_factory=dict)

    def properties(self) -> dict[str, str]:
        name, password = self.admin
        scram = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{name}" password="{password}";'
        )
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{name}" password="{password}" user_{name}="{password}";'
        )
        return {
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.truststore),
            "authorizer.class.name": ("org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
            "super.users": f"User:{name}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def scram_args(self) -> list[str]:
        """`kafka-storage format` arguments creating the admin and every user."""
        users = {self.admin[0]: self.admin[1], **self.users}
        return [
            arg
            for name, password in users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.truststore))


class KafkaProcess(ManagedProcess):
    """One KRaft broker+controller listening on 127.0.0.1, data under ``data_dir``.

    Storage is formatted only on the first start; the cluster id is kept in
    ``data_dir/cluster-id`` so a restart after :meth:`kill` recovers the same logs, which
    is exactly what the crash tests want to observe. Output goes to ``data_dir/kafka.log``.
    """

    name = "kafka"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        extra_props: dict[str, str] | None = None,
        *,
        jars_dir: Path | None = None,
        log_level: str = "WARN",
        jvm_args: Sequence[str] = (),
        die_with_parent: bool = True,
        security: BrokerSecurity | None = None,
    ) -> None:
        super().__init__(data_dir, "kafka.log", die_with_parent=die_with_parent)
        self.security = security
        self.port = port if port is not None else free_port()
        self.controller_port = controller_port if controller_port is not None else free_port()
        self.heap = heap
        self.extra_props = dict(extra_props or {})
        self.log_level = log_level
        self.jvm_args = tuple(jvm_args)
        self._jars_dir = jars_dir
        self.logs_dir = self.data_dir / "kraft-logs"
        self.props_path = self.data_dir / "server.properties"
        self.log4j_path = self.data_dir / "log4j2.xml"

    @property
    def bootstrap(self) -> str:
        """``bootstrap_servers`` value for clients: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def cluster_id(self) -> str:
        """The KRaft cluster id: the formatted one if storage exists, else created and kept."""
        meta = self.logs_dir / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
        path = self.data_dir / "cluster-id"
        if path.exists():
            return path.read_text().strip()
        cid = _random_cluster_id()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(cid + "\n")
        return cid

    def properties(self) -> dict[str, str]:
        """The broker config written to ``server.properties`` on every start."""
        props = dict(BASE_PROPS)
        client = "SASL_SSL" if self.security else "PLAINTEXT"
        props.update(
            {
                "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
                "listeners": (
                    f"{client}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
                ),
                "advertised.listeners": f"{client}://127.0.0.1:{self.port}",
                "log.dirs": str(self.logs_dir),
            }
        )
        if self.security:
            props.update(self.security.properties())
        props.update(self.extra_props)
        return props

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = java_binary()
        if java is None:
            raise ProcessStartError(
                "java not found: run `make deps` (apt-get install openjdk-17-jre-headless)"
            )
        jars = self._jars_dir or kafka_jars_dir()
        cds: list[str] = []
        dumping = any(a.startswith("-XX:ArchiveClassesAtExit") for a in self.jvm_args)
        archive = None if dumping else usable_cds_archive(jars, JVM_OPTS)
        if archive is not None:
            cds = [f"-XX:SharedArchiveFile={archive}"]
        return [
            java,
            f"-Xmx{self.heap}",
            *JVM_OPTS,
            *cds,
            *self.jvm_args,
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            "-cp",
            f"{jars}/*",
            main_class,
            *args,
        ]

    def _prepare(self) -> None:
        ensure_free(self.port, "kafka")
        ensure_free(self.controller_port, "kafka controller")
        self.log4j_path.write_text(_LOG4J2.format(level=self.log_level, started=STARTED_LINE))
        body = "".join(f"{k}={v}\n" for k, v in self.properties().items())
        self.props_path.write_text("# Written by devstack on every start.\n" + body)
        if not (self.logs_dir / "meta.properties").exists():
            self._format_storage()

    def _format_storage(self) -> None:
        """Run ``kafka-storage format`` once; KRaft refuses to start unformatted dirs."""
        cmd = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            self.cluster_id,
            "-c",
            str(self.props_path),
            *(self.security.scram_args() if self.security else ()),
        )
        with self.log_path.open("ab") as log:
            log.write(b"==== devstack: formatting storage ====\n")
            log.flush()
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        if code != 0:
            raise ProcessStartError(
                f"kafka storage format failed (exit {code}); log {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def _command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.props_path))

    def _probe(self) -> bool:
        """Ready = this run logged the started line AND the broker answers a request.

        The log line alone can precede the listener accepting on a busy machine, and a TCP
        connect alone succeeds long before the broker is unfenced and serves metadata.
        """
        context = self.security.client_context() if self.security else None
        return STARTED_LINE in self.log_since_start() and api_versions_ok(
            "127.0.0.1", self.port, tls=context
        )


def build_cds_archive(jars_dir: Path | None = None, timeout: float = 120.0) -> Path | None:
    """Dump the class-data-sharing archive from one real broker run; see :mod:`kafka_cds`.

    Returns the archive (existing or new), or None when CDS is disabled. The dump goes to a
    scratch name and is renamed into place only after the JVM has accepted it.
    """
    if not cds_enabled():
        return None
    jars = jars_dir or kafka_jars_dir()
    archive = cds_archive_path(jars)
    if archive_is_valid(archive, jars, JVM_OPTS):
        return archive
    scratch = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    dump = (f"-XX:ArchiveClassesAtExit={scratch}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")
    try:
        with tempfile.TemporaryDirectory(prefix="devstack-cds-") as tmp:
            broker = KafkaProcess(Path(tmp), jars_dir=jars, jvm_args=dump)
            broker.start()
            try:
                broker.wait_ready(timeout)
            finally:
                broker.stop(timeout)  # the JVM writes the archive while exiting
        if not archive_is_valid(scratch, jars, JVM_OPTS):
            raise ProcessStartError(f"the JVM produced no usable CDS archive at {scratch}")
        scratch.replace(archive)
    finally:
        scratch.unlink(missing_ok=True)
    return archive


def _random_cluster_id() -> str:
    """Same format as ``kafka-storage random-uuid``, without paying a JVM start for it."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka rejects ids that look like a CLI flag
            return cid


def api_versions_ok(
    host: str, port: int, timeout: float = 2.0, tls: ssl.SSLContext | None = None
) -> bool:
    """Send a Kafka ApiVersions v0 request and check for a well-formed, error-free reply.

    Raw bytes keep the readiness check free of client libraries and event loops; every
    broker version answers ApiVersions v0, on a SASL listener too (before authentication),
    so on a SASL_SSL listener only the TLS handshake (`tls`) comes first.
    """
    client_id = b"devstack"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
            sock.sendall(struct.pack(">i", len(header)) + header)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            body = _recv_exact(sock, size)
        correlation_id, error_code = struct.unpack(">ih", body[:6])
    except (OSError, struct.error):
        return False
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-reply")
        data += chunk
    return data
