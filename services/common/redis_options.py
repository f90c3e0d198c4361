"""How every Redis client the project ships authenticates and encrypts, besides its URL.

The URL may carry a user and password (`redis://user:pass@host`) and TLS (`rediss://`);
these settings add what a URL should not carry (a password from a mounted file) or cannot
(the CA and the client certificate). A setting wins over the URL's part.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from services.common.settings import CommonSettings


def redis_options(settings: CommonSettings) -> dict[str, Any]:
    """Keyword arguments for redis.asyncio.from_url / RedisCluster.from_url."""
    options: dict[str, Any] = {}
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    password = settings.redis_password_value()
    if password is not None:
        options["password"] = password
    if settings.redis_url.startswith("rediss://"):
        # Verify the server's certificate (and host name) always; the settings only choose
        # which CA to trust and whether to present a client certificate.
        options["ssl_cert_reqs"] = "required"
        files = {
            "ssl_ca_certs": settings.redis_tls_ca_file,
            "ssl_certfile": settings.redis_tls_cert_file,
            "ssl_keyfile": settings.redis_tls_key_file,
        }
        options.update({key: str(path) for key, path in files.items() if path is not None})
    return options


class _PackedInC(AbstractConnection):
    """Commands packed by hiredis, in C. redis-py's asyncio client packs them in Python
    whatever is installed (hiredis only parses its replies): that was a sixth of the
    router's CPU, one batch being some sixty FCALLs of ~3,000 arguments. An argument hiredis
    does not take (None, a bool) goes to redis-py's packer, for redis-py's own error."""

    def pack_command(self, *args: Any) -> list[bytes]:
        try:
            return [hiredis.pack_command(_name_split(args))]
        except TypeError:
            return super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        return [b"".join(b"".join(self.pack_command(*command)) for command in commands)]


def _name_split(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # A command name of two words ("FUNCTION LOAD") is two arguments, as redis-py sends it.
    name = args[0]
    if (isinstance(name, str) and " " in name) or (isinstance(name, bytes) and b" " in name):
        return (*name.split(), *args[1:])
    return args


C = TypeVar("C", bound=AbstractConnection)
_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def packed_in_c(connection_class: type[C]) -> type[C]:
    """`connection_class` (plain, TLS or Unix socket, as the URL chose) packing with hiredis."""
    if connection_class not in _PACKED:
        name = f"PackedInC{connection_class.__name__}"
        _PACKED[connection_class] = type(name, (_PackedInC, connection_class), {})
    return cast(type[C], _PACKED[connection_class])


def connect(
    url: str,
    cluster: bool = False,
    timeout: float | None = None,
    options: dict[str, Any] | None = None,
) -> aioredis.Redis:
    """A Redis client, or a Redis Cluster one: the state code is the same for both, since
    every multi-key step stays on one slot (the keys' shard tag) and pipelines are split per
    node. `options` are the credentials and TLS files (`redis_options`)."""
    kwargs = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **(options or {})}
    if cluster:
        nodes = RedisCluster.from_url(url, decode_responses=True, **kwargs)
        # The class every node's connections are made of: the nodes known now, and those
        # found later (made from these keyword arguments).
        nodes.connection_kwargs["connection_class"] = packed_in_c(
            nodes.connection_kwargs["connection_class"]
        )
        for node in nodes.nodes_manager.startup_nodes.values():
            node.connection_class = packed_in_c(node.connection_class)
        return cast(aioredis.Redis, nodes)
    client = aioredis.from_url(url, decode_responses=True, **kwargs)
    pool = client.connection_pool
    pool.connection_class = packed_in_c(pool.connection_class)
    return client


def connect_with(settings: CommonSettings) -> aioredis.Redis:
    """The service's Redis client, as its settings say."""
    return connect(
        settings.redis_url,
        settings.redis_cluster,
        settings.redis_timeout_seconds,
        redis_options(settings),
    )


async def answers(redis: aioredis.Redis) -> bool:
    """Whether Redis answers a PING (readiness): any error is a no, never an exception."""
    try:
        return bool(await redis.ping())
    except Exception:
        return False
