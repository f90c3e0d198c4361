"""A real local Redis Cluster: three redis-server masters in cluster mode, slots spread by
`redis-cli --cluster create`. For the tests that prove the state code keeps every multi-key
step on one slot (`HANDOFF_TEST_REDIS_CLUSTER=1`)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, cast

from devstack.process import ProcessStartError
from devstack.redis import RedisProcess, RedisSecurity


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, and stays under 55536."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        if all(_free(p) for p in (port, port + 10_000)):
            return port
    raise ProcessStartError("no free port pair for a Redis Cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ClusterNodeProcess(RedisProcess):
    name = "redis-cluster-node"

    def _command(self) -> list[str]:
        # With TLS, the cluster bus and the slot map's addresses are TLS too.
        tls = ["--tls-cluster", "yes", "--tls-replication", "yes"] if self.security else []
        return [
            *super()._command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout", "2000",
            *tls,
        ]  # fmt: skip


class RedisClusterProcesses:
    """Three masters, no replicas. `url` names one of them; clients discover the rest."""

    def __init__(
        self, data_dir: Path, masters: int = 3, security: RedisSecurity | None = None
    ) -> None:
        self.security = security
        self.nodes = [
            ClusterNodeProcess(data_dir / f"node{n}", port=cluster_port(), security=security)
            for n in range(masters)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_ready(timeout)
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ProcessStartError("redis-cli not found: run `make deps` (redis-tools)")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, *self._cli_auth(), "--cluster", "create", *addresses,
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout, env=self._cli_env(),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not all(self._ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise ProcessStartError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)  # polling the cluster's own state

    def _cli_auth(self) -> list[str]:
        """redis-cli's TLS and admin arguments (the password in the environment, not argv)."""
        sec = self.security
        if sec is None:
            return []
        return [
            "--tls", "--cacert", str(sec.ca), "--cert", str(sec.client_cert),
            "--key", str(sec.client_key), "--user", sec.admin[0],
        ]  # fmt: skip

    def _cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.security is not None:
            env["REDISCLI_AUTH"] = self.security.admin[1]
        return env

    @staticmethod
    def _ok(node: RedisProcess) -> bool:
        info = str(cast(Any, node.client()).execute_command("CLUSTER", "INFO"))
        return "cluster_state:ok" in info

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
