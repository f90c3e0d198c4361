"""How every Redis client the project ships authenticates and encrypts, besides its URL.

The URL may carry a user and password (`redis://user:pass@host`) and TLS (`rediss://`);
these settings add what a URL should not carry (a password from a mounted file) or cannot
(the CA and the client certificate). A setting wins over the URL's part.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

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
        client = RedisCluster.from_url(url, decode_responses=True, **kwargs)
        return cast(aioredis.Redis, client)
    return aioredis.from_url(url, decode_responses=True, **kwargs)


def connect_with(settings: CommonSettings) -> aioredis.Redis:
    """The service's Redis client, as its settings say."""
    return connect(
        settings.redis_url,
        settings.redis_cluster,
        settings.redis_timeout_seconds,
        redis_options(settings),
    )
