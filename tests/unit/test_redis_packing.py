"""Commands packed in C (hiredis) are the bytes redis-py's own packer sends
(services/common/redis_options.py): the async client would pack them in Python."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import DataError

from services.common.redis_options import connect, packed_in_c

COMMANDS: list[tuple[Any, ...]] = [
    ("FCALL", "ho_route_many", 3, "ho:dl:{h1}", "ho:ob:{h1}", "ho:seen:{h1}:x", "{h1}", 86_400_000),
    ("FUNCTION LOAD", "REPLACE", "#!lua name=x\nredis.register_function('f', f)"),
    (b"CONFIG GET", "maxmemory"),
    ("SET", "k", "Grüße 你好 \u2028", "PX", 1000),
    ("XADD", b"bytes-key", "*", "turn", b'{"text":"\\u00e9"}', "score", 2.5),
    ("SET", "big", "x" * 20_000),  # over redis-py's 6 KB cutoff, where it sends in chunks
]


def as_sent(chunks: list[bytes] | list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_one_command_is_packed_as_redis_py_packs_it(command: tuple[Any, ...]) -> None:
    ours, theirs = packed_in_c(Connection)(), Connection()
    assert as_sent(ours.pack_command(*command)) == as_sent(theirs.pack_command(*command))


def test_a_pipeline_is_packed_as_redis_py_packs_it() -> None:
    ours, theirs = packed_in_c(Connection)(), Connection()
    assert as_sent(ours.pack_commands(COMMANDS)) == as_sent(theirs.pack_commands(COMMANDS))


def test_an_argument_hiredis_refuses_gets_redis_pys_own_error() -> None:
    with pytest.raises(DataError):
        packed_in_c(Connection)().pack_command("SET", "k", None)  # type: ignore[arg-type]


def test_every_client_packs_in_c_plain_tls_and_cluster() -> None:
    plain = connect("redis://127.0.0.1:1/0")
    assert plain.connection_pool.connection_class is packed_in_c(Connection)
    tls = connect("rediss://127.0.0.1:1/0")
    assert tls.connection_pool.connection_class is packed_in_c(SSLConnection)
    cluster = connect("redis://127.0.0.1:1", cluster=True)
    assert isinstance(cluster, RedisCluster)
    assert cluster.connection_kwargs["connection_class"] is packed_in_c(Connection)
    nodes = cluster.nodes_manager.startup_nodes.values()
    assert nodes and all(n.connection_class is packed_in_c(Connection) for n in nodes)
