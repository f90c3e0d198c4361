"""R23 on real servers: Kafka with a SASL_SSL (SCRAM-SHA-512) listener and StandardAuthorizer
ACLs from services/common/acl_table.py, Redis over TLS with ACL users and no default user.

Router, handoff and timeout run as processes, each with its own Kafka principal and Redis
user; the test speaks as a channel, an agent and ops, each with its own principal too. One
broker and one Redis for the whole module (they start in ~20 s).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from devstack.harness.bus import Bus
from devstack.harness.events import Who, key_of
from devstack.harness.sandbox import NOTICE, agent_knows, human_until, publish_agent, redis_now_ms
from devstack.process import ProcessStartError
from devstack.services import ServiceProcess
from services.common.kafka_options import aiokafka_options
from services.common.redis_options import connect_with
from services.handoff.state.keys import InteractionKeys
from services.handoff.state.reader import StateClient
from services.handoff.state.store import ModeStore
from tests.support.secured import SecuredStack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

# Each service: its module, Kafka principal and Redis user (the web chat's reads only).
SERVICES = {
    "router": ("services.router", "router", "router"),
    "handoff": ("services.handoff", "handoff", "handoff"),
    "timeout": ("services.timeout", "timeout", "timeout"),
    "agent": ("services.agent", "agents", "agents"),
    "webchat": ("services.webchat", "channels", "webchat"),
}


@pytest.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredStack]:
    stack = SecuredStack(tmp_path_factory.mktemp("secured"))
    stack.start()
    try:
        await stack.provision()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def secured_services(secured: SecuredStack) -> Iterator[dict[str, ServiceProcess]]:
    root = secured.root / "services"
    procs = {
        name: ServiceProcess(
            module,
            {**secured.env(principal, user), "HANDOFF_WEBCHAT_DATA_DIR": str(root / "webchat")},
            root,
            "s1",
        )
        for name, (module, principal, user) in SERVICES.items()
    }
    for proc in procs.values():
        proc.start()
    try:
        for proc in procs.values():
            proc.wait_ready(60)
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture(scope="module")
async def ops_bus(
    secured: SecuredStack, secured_services: dict[str, ServiceProcess]
) -> AsyncIterator[Bus]:
    ops = secured.settings("ops")
    bus = Bus(ops.kafka_bootstrap, ops.topics, aiokafka_options(ops))
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(scope="module")
async def ops_store(secured: SecuredStack) -> AsyncIterator[ModeStore]:
    store = ModeStore.from_settings(secured.settings("ops", "ops"))
    await store.load_functions()
    yield store
    await store.close()


async def producer_as(secured: SecuredStack, principal: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(**aiokafka_options(secured.settings(principal)), acks="all")
    await producer.start()
    return producer


async def send(producer: AIOKafkaProducer, topic: str, key: str, value: dict[str, Any]) -> None:
    await producer.send_and_wait(topic, json.dumps(value).encode(), key=key.encode())


def for_key(who: Who, type_: str) -> Any:
    return lambda v: isinstance(v, dict) and v.get("type") == type_ and key_of(v) == who.key


async def test_the_system_works_end_to_end_with_a_principal_per_part(
    secured: SecuredStack, ops_bus: Bus, ops_store: ModeStore
) -> None:
    """Over SASL_SSL and TLS, each service with its own principal and Redis user: a message
    routed (router) and answered (agent, reply gate), a handoff the agent asks for accepted
    with its notice delivered (handoff), and the idle timeout's revert (timeout)."""
    topics = ops_bus.topics
    who = Who("secure", "support")
    version = await publish_agent(ops_store, who, idle=1)  # one idle minute lasts a second
    agents = connect_with(secured.settings("agents", "agents"))  # only they read agent:*
    try:
        await agent_knows(agents, who, version)
    finally:
        await agents.aclose()
    channel = await producer_as(secured, "channels")
    try:
        hello = who.message("hello")
        await send(channel, topics.inbound, who.key, hello)
        topic, routed = await ops_bus.wait_routed(hello["event_id"])
        assert topic == topics.ai_requests and routed["routing"]["mode"] == "ai"
        answers = await ops_bus.wait_for(
            topics.outbound,
            lambda v: for_key(who, "outbound_message")(v) and v["in_reply_to"] == hello["event_id"],
        )
        assert answers[0]["sender"] == "ai"

        await send(channel, topics.inbound, who.key, who.message("I want to talk to a person"))
        changed = await ops_bus.wait_for(topics.events, for_key(who, "mode_changed"))
        assert changed[0]["to_mode"] == "human" and changed[0]["actor"].startswith("agent:")
        notices = await ops_bus.wait_for(
            topics.outbound,
            lambda v: for_key(who, "outbound_message")(v) and v["sender"] == "system",
        )
        waiting = "You're number 1 in line. We don't have a wait estimate yet."  # R16
        assert [n["text"] for n in notices] == [f"{NOTICE} {waiting}"]
        tickets = await ops_bus.wait_for(topics.human_queue, for_key(who, "handoff_ticket"))
        assert tickets[0]["cause"] == "agent"

        reverted = await ops_bus.wait_for(
            topics.events,
            lambda v: for_key(who, "mode_changed")(v) and v.get("cause") == "timeout",
        )
        assert reverted[0]["to_mode"] == "ai" and reverted[0]["actor"] == "system:timeout"
    finally:
        await channel.stop()


async def test_a_channel_cannot_write_operator_commands_nor_outbound(
    secured: SecuredStack, ops_bus: Bus
) -> None:
    topics = ops_bus.topics
    who = Who("secure", "support", user="mallory")
    channel = await producer_as(secured, "channels")
    try:
        await send(channel, topics.inbound, who.key, who.message())  # what it may do
        for topic in (topics.operator_commands, topics.outbound):
            with pytest.raises(TopicAuthorizationFailedError):
                await send(channel, topic, who.key, who.command("to_ai", source="operator"))
    finally:
        await channel.stop()


async def test_an_agent_cannot_read_the_human_queue(secured: SecuredStack, ops_bus: Bus) -> None:
    """The broker refuses the agent the topic itself (no Describe, so no Read): its metadata
    request for chat.human-queue is answered TOPIC_AUTHORIZATION_FAILED, so no fetch can even
    be addressed; chat.ai-requests, which it may read, is answered."""
    topics = ops_bus.topics
    consumer = AIOKafkaConsumer(
        **aiokafka_options(secured.settings("agents")), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer._client._wait_on_metadata(topics.ai_requests)  # what it may read
        assert consumer.partitions_for_topic(topics.ai_requests)
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer._client._wait_on_metadata(topics.human_queue)
        assert topics.human_queue in consumer._client.cluster.unauthorized_topics
    finally:
        await consumer.stop()


async def test_redis_users_reach_only_handoffs_keys(secured: SecuredStack) -> None:
    store = StateClient.from_settings(secured.settings("router", "router"))
    try:
        assert await store.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            await store.redis.set("not-handoffs", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await store.redis.flushall()
    finally:
        await store.close()
    # The agents' user: their own keys (agent:*), never Handoff's.
    agents = connect_with(secured.settings("agents", "agents"))
    try:
        await agents.set("agent:probe", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await agents.get(InteractionKeys("secure:support:web:alice").state)
    finally:
        await agents.aclose()


async def test_a_redis_cluster_over_tls_with_acl_users(secured: SecuredStack) -> None:
    """The same users on a three-master Redis Cluster over TLS (bus included): the state
    client finds every node through the slot map and runs the functions on each."""
    cluster = secured.redis_cluster()
    cluster.start()
    try:
        settings = secured.settings("router", "router").model_copy(
            update={"redis_url": cluster.url, "redis_cluster": True}
        )
        store = ModeStore.from_settings(settings)
        try:
            await store.load_functions()
            keys = [Who("secure", "support", user=f"u{n}").key for n in range(24)]
            nodes = {store.redis.get_node_from_key(InteractionKeys(k).state).name for k in keys}
            assert len(nodes) == 3, nodes  # the users' states fall on every master
            now = await redis_now_ms(store)
            await store.apply_many([human_until(k, now + 60_000, now) for k in keys])
            assert {(await store.read_state(k)).mode for k in keys} == {"human"}
            with pytest.raises(redis.exceptions.NoPermissionError):
                await store.redis.set("not-handoffs", "1")
        finally:
            await store.close()
    finally:
        cluster.stop()


async def test_a_wrong_redis_password_is_refused_with_a_clear_error(
    secured: SecuredStack, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    settings = secured.settings("router", "router").model_copy(
        update={"redis_password_file": wrong}
    )
    store = StateClient.from_settings(settings)
    try:
        assert await store.ping() is False  # readiness: false
    finally:
        await store.close()

    env = {**secured.env("router", "router"), "HANDOFF_REDIS_PASSWORD_FILE": str(wrong)}
    router = ServiceProcess("services.router", env, tmp_path, "wrong")
    router.start()
    with pytest.raises(ProcessStartError):
        router.wait_ready(30)  # never ready: it exits
    router.stop()
    log = router.log_path.read_text()
    assert '"event": "redis_access_refused"' in log and '"user": "router"' in log, log
    assert "invalid username-password pair" in log
    assert "not-the-password" not in log
    assert secured.redis_passwords["router"] not in log


async def test_handoffctl_acts_as_an_operator_with_the_ops_principal_only(
    secured: SecuredStack, ops_bus: Bus, ops_store: ModeStore
) -> None:
    """`handoffctl mode set` writes handoff.operator-commands (R22) and follows the outcome
    on handoff.events: with the ops principal it is accepted; with a channel's the broker
    refuses it (already handoff.events), it says so in one line and changes nothing."""
    who = Who("secure-ops", "support")
    await publish_agent(ops_store, who)
    ids = ["--tenant", who.tenant, "--agent", who.agent, "--user", "alice"]
    args = ["mode", "set", "human", *ids, "--reason", "Asked by phone.", "--as", "operator:kim"]

    def handoffctl(principal: str, redis_user: str | None) -> subprocess.CompletedProcess[str]:
        env = {**secured.env(principal, redis_user), "HANDOFF_LOG_LEVEL": "WARNING"}
        return subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip

    refused = await asyncio.to_thread(handoffctl, "channels", None)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "handoffctl: access refused: TopicAuthorizationFailedError" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (await ops_store.read_state(who.key)).mode == "ai"

    done = await asyncio.to_thread(handoffctl, "ops", "ops")
    assert done.returncode == 0 and "accepted" in done.stdout, done.stdout + done.stderr
    [changed] = await ops_bus.wait_for(
        ops_bus.topics.events,
        lambda v: for_key(who, "mode_changed")(v) and v["actor"] == "operator:kim",
    )
    assert changed["to_mode"] == "human" and changed["cause"] == "operator"


async def test_a_wrong_kafka_password_is_refused_with_a_clear_error(
    secured: SecuredStack, tmp_path: Path
) -> None:
    """The broker refuses the SCRAM exchange; the service says so and exits, never ready."""
    wrong = tmp_path / "wrong-kafka-password"
    wrong.write_text("not-the-kafka-password\n")
    env = {**secured.env("timeout", "timeout"), "HANDOFF_KAFKA_SASL_PASSWORD_FILE": str(wrong)}
    worker = ServiceProcess("services.timeout", env, tmp_path, "wrong-kafka")
    worker.start()
    with pytest.raises(ProcessStartError):
        worker.wait_ready(60)  # never ready: it exits
    worker.stop()
    log = worker.log_path.read_text()
    assert "SaslAuthenticationFailed" in log and "invalid credentials" in log, log
    assert "not-the-kafka-password" not in log
    assert secured.kafka_passwords["timeout"] not in log
