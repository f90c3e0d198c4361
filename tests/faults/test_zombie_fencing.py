"""A zombie router is fenced (KIP-447): frozen mid-batch past its session timeout, it wakes up
after another router took its partitions and routed on, and its late transaction is refused.

The first router is frozen (SIGSTOP) while its batch waits on Redis, so that it holds records
it has polled and not committed: exactly the window in which a consumer without group-metadata
fencing (aiokafka's send_offsets_to_transaction(offsets, group_id)) commits its outputs a
second time when it wakes up. Redis is paused only to catch that moment: the router's command
is seen queued, unread, at the Redis server's socket. The router commits a batch while it
handles the next, so it may also be frozen with that commit's transaction open: the
coordinator aborts it for its age (transaction.timeout.ms), and its late end is refused as
well (fenced by epoch, or timed out on waking and aborted); the router carries on either way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.harness.events import Who
from devstack.harness.load import Load, check_routing, outputs_seen
from devstack.harness.sandbox import Sandbox, opened, wait_until
from devstack.stack import local_stack
from tests.faults.conftest import Stack

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

# Errors with which the group coordinator refuses the offsets of a member that left the group;
# and, when r1 was frozen with its previous batch's transaction open (it commits while the
# next batch is handled), the fencing by epoch of that transaction, which the coordinator
# aborted for its age (transaction.timeout.ms): r1 renews its producer and carries on.
FENCED = ("UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION", "FENCED_INSTANCE_ID", "_FENCED")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    with local_stack(tmp_path) as servers:
        # The frozen router's Redis call must outlive its freeze, not time out on waking.
        box = Sandbox(
            servers.kafka, servers.redis, tmp_path / "services", HANDOFF_REDIS_TIMEOUT_SECONDS="300"
        )
        async with opened(box) as opened_box:
            yield opened_box


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def command_unread_by_redis(pid: int, redis_port: int) -> bool:
    """Whether process `pid` has sent Redis a command that the (paused) server has not read:
    bytes in the receive queue of the server's end of one of `pid`'s connections."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    own = _socket_inodes(pid)
    ports = {  # the local ports of pid's connections to Redis
        row[1].split(":")[1]
        for row in rows
        if row[9] in own and int(row[2].split(":")[1], 16) == redis_port
    }
    for row in rows:
        local, remote, queues = row[1], row[2], row[4]
        server_end = int(local.split(":")[1], 16) == redis_port and remote.split(":")[1] in ports
        if server_end and int(queues.split(":")[1], 16) > 0:
            return True
    return False


async def test_a_router_frozen_past_its_session_timeout_is_fenced_when_it_wakes(
    stack: Stack,
) -> None:
    box, bus, _ = stack
    load = Load([Who("acme", "support", user=f"z{n:03}") for n in range(100)])
    first = box.service("services.router", "r1")
    pid = first.pid
    assert pid is not None
    producing = asyncio.create_task(load.produce(bus, 60, pace=0.2))  # 6,000 over ~3 s
    await wait_until(lambda: outputs_seen(bus) >= 1_000, 90, "r1 routing")

    box.redis.pause()
    try:
        if producing.done():  # r1 kept up with all of it: give it a batch to be frozen in
            await load.produce(bus, 1)
        await wait_until(lambda: command_unread_by_redis(pid, box.redis.port), 30, "r1 mid-batch")
        first.pause()  # frozen with a batch polled, handled in part, not committed
    finally:
        box.redis.resume()
    try:
        box.service("services.router", "r2")  # takes r1's partitions once r1's session ends
        await producing
        await wait_until(lambda: outputs_seen(bus) >= load.total, 120, "r2 routing everything")
        log_before_wake = len(first.log_since_start())
    finally:
        first.resume()

    # r1 finishes its batch and tries to commit it, then rejoins the group and routes again.
    await wait_until(
        lambda: "partitions_assigned" in first.log_since_start()[log_before_wake:],
        90,
        "r1 back in the group",
    )
    await load.produce(bus, 20)  # both routers route on
    await wait_until(lambda: outputs_seen(bus) >= load.total, 120, "the last messages routed")
    check_routing(bus, load)  # every event_id exactly once on the output topics, in order
    woken = first.log_since_start()[log_before_wake:]
    # Refused, by either fencing; or timed out on waking and then aborted (batch_failed).
    refused = any(code in woken for code in FENCED) or "batch_failed" in woken
    assert refused, "r1's late commit was not refused"
