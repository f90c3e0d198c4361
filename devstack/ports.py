"""Loopback port helpers shared by the Kafka and Redis launchers."""

from __future__ import annotations

import socket


class PortInUseError(RuntimeError):
    """Raised before launching a server whose port is already taken.

    Checking up front turns a buried bind error in a server log into a message that names
    the port, which is what someone running ``make run`` next to another Kafka needs to see.
    """


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago.

    The OS picks it (bind to port 0), so parallel test sessions do not collide on a fixed
    number. The port is released before returning, so there is a small race window; the
    launchers re-check with :func:`ensure_free` right before starting a server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_free(port: int, what: str) -> None:
    """Raise :class:`PortInUseError` if something already listens on 127.0.0.1:``port``.

    SO_REUSEADDR mirrors what Kafka and Redis set on their own listeners, so sockets left in
    TIME_WAIT by a previous run (e.g. right after a kill in a fault test) do not count as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"{what}: port 127.0.0.1:{port} is already in use "
                "(another server running? pick another port or stop it)"
            ) from exc
