"""A local redis-server process with AOF persistence, for tests and ``make run``.

The services count on Redis keeping acknowledged writes across a crash (AOF, fsync every
second), so the fault tests need a real server they can SIGKILL and SIGSTOP.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.ports import ensure_free, free_port
from devstack.process import ManagedProcess, ProcessStartError

__all__ = ["RedisNotInstalledError", "RedisProcess", "RedisSecurity"]


class RedisNotInstalledError(ProcessStartError):
    """redis-server is not on PATH; installing it is the Makefile's job, not ours."""


@dataclass(frozen=True)
class RedisSecurity:
    """TLS only (no plaintext port), client certificates required, and ACL users only.

    The default user is off; `admin` (name, password) may do everything (devstack's own
    probe and SHUTDOWN use it); `users` maps each further user to its ACL rules after the
    name (`on`, `>password`, key patterns, commands), as `ACL SETUSER` takes them. The
    client certificate (`client_cert`, `client_key`) is the one devstack presents.
    """

    cert: Path
    key: Path
    ca: Path
    client_cert: Path
    client_key: Path
    admin: tuple[str, str]
    users: dict[str, list[str]] = field(default_factory=dict)

    def acl_lines(self) -> list[str]:
        name, password = self.admin
        lines = ["user default off", f"user {name} on >{password} ~* &* +@all"]
        return lines + [f"user {user} {' '.join(rules)}" for user, rules in self.users.items()]

    def client_options(self) -> dict[str, Any]:
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
            "username": self.admin[0],
            "password": self.admin[1],
        }


class RedisProcess(ManagedProcess):
    """redis-server bound to 127.0.0.1 with its AOF and log under ``data_dir``.

    RDB snapshots are off (``--save ''``) so the AOF alone decides what survives a crash,
    which is the behaviour the durability tests pin down.
    """

    name = "redis"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        die_with_parent: bool = True,
        security: RedisSecurity | None = None,
    ) -> None:
        super().__init__(data_dir, "redis.log", die_with_parent=die_with_parent)
        self.security = security
        self.acl_path = self.data_dir / "users.acl"
        self.port = port if port is not None else free_port()
        self._paused = False

    @property
    def url(self) -> str:
        """Client URL, database 0: ``redis://127.0.0.1:PORT/0`` (``rediss://`` with TLS)."""
        scheme = "rediss" if self.security else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A synchronous client that fails after ``timeout`` instead of retrying.

        redis-py retries connection errors three times with backoff by default, which turns
        a SHUTDOWN (the server hangs up, as it should) into seconds of retries and makes a
        paused server look slow rather than unresponsive in fault tests.
        """
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **(self.security.client_options() if self.security else {}),
        )

    def _prepare(self) -> None:
        ensure_free(self.port, "redis")
        self._paused = False
        if self.security:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.acl_path.write_text("\n".join(self.security.acl_lines()) + "\n")
            self.acl_path.chmod(0o600)

    def _command(self) -> list[str]:
        server = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin")
        if server is None:
            raise RedisNotInstalledError(
                "redis-server not found: run `make deps` (apt-get install redis-server)"
            )
        return [
            server,
            *self._listener_args(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            # Redis 7.0 preallocates this much for a stream's first node: 4096 by default,
            # i.e. ~4.7 KB for a one-turn transcript. 1024 keeps short ones ~1.6 KB and long
            # ones about as compact (bench/memory.py).
            "--stream-node-max-bytes",
            "1024",
            # A hash stays a compact listpack while every value is at most this long: 64 by
            # default, which the state's return notice or context and a ticket's ids pass,
            # and a hashtable costs ~1.2-1.7 KB for those ~15 fields instead of ~0.3-0.5 KB
            # (bench/memory.py). The hashes are small (at most ~20 fields), so a scan is cheap.
            "--hash-max-listpack-value",
            "1024",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_path),
        ]

    def _listener_args(self) -> list[str]:
        if self.security is None:
            return ["--port", str(self.port)]
        sec = self.security
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(sec.cert), "--tls-key-file", str(sec.key),
            "--tls-ca-cert-file", str(sec.ca), "--tls-auth-clients", "yes",
            "--aclfile", str(self.acl_path),
        ]  # fmt: skip

    def _probe(self) -> bool:
        """PING answers PONG; while replaying a big AOF Redis answers LOADING instead."""
        try:
            with self.client(timeout=1.0) as conn:
                return bool(conn.ping())
        except redis.RedisError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """SHUTDOWN (fsyncs the AOF, then exits); SIGTERM/SIGKILL only if that fails."""
        if self.is_running():
            self.resume()
            try:
                with self.client(timeout=5.0) as conn:
                    conn.shutdown()
            except redis.RedisError:
                pass  # fall through: the base class sends SIGTERM, which also saves
        super().stop(timeout)
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: only what the AOF had written to the OS survives."""
        super().kill()
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing, like a hung host."""
        if self.is_running() and not self._paused:
            self._signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; queued requests are then served."""
        if self.is_running() and self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused
