"""The reference agent as a plug-in over topics (issue 12): it learns its published version
from handoff.events into keys of its own, hands off by that version and follows a new
Publish, keeps its own counts and turns, and is not ready (nor answering) before it has
read the versions already in the log. Real Kafka and Redis; the agent as a process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from devstack.harness.bus import Bus
from devstack.harness.env import CLUSTER
from devstack.harness.events import Who, new_id, now
from devstack.harness.sandbox import Sandbox, opened, wait_until
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from schemas import AgentVersionApplied, AgentVersionPublished, RoutedMessage, Routing, UserMessage
from services.agent.domain import NO_HANDOFF_ANSWER, Answer, PublishedVersion, Thought, Turn
from services.agent.store import AgentStore, Applied, Fold, Published, turns_key
from services.agent.versions import GROUP
from services.agent.worker import AgentHandler
from services.common.redis_options import connect
from services.common.settings import CommonSettings
from services.handoff.domain.modes import HandoffConfig

pytestmark = pytest.mark.integration

ASK = "I want to talk to a person"
REPLY_S = 30.0


@pytest.fixture
async def agent_store(redis_server: RedisProcess) -> AsyncIterator[AgentStore]:
    store = AgentStore(connect(redis_server.url, CLUSTER), ttl_ms=60_000, turns_cap=4)
    yield store
    await store.close()


def is_agents(who: Who, type_: str) -> Any:
    def match(v: Any) -> bool:
        return isinstance(v, dict) and v.get("type") == type_ and v.get("user") == who.ids()["user"]

    return match


async def known_version(store: AgentStore, who: Who) -> int | None:
    found = await store.published(who.tenant, who.agent)
    return found.version if found else None


class Watch(Bus):
    """The Bus, also watching what the agent writes (agent.replies, handoff.commands)."""

    def __init__(self, box: Sandbox) -> None:
        super().__init__(box.settings.kafka_bootstrap, box.settings.topics)
        t = box.settings.topics
        self._consumer = AIOKafkaConsumer(
            t.agent_replies, t.commands, t.events,
            bootstrap_servers=box.settings.kafka_bootstrap,
            group_id=None, auto_offset_reset="earliest", isolation_level="read_committed",
            fetch_max_wait_ms=50,
        )  # fmt: skip


async def test_the_agent_hands_off_by_the_published_version_it_read_from_the_log(
    kafka: KafkaProcess, redis_server: RedisProcess, stack_dir: Path
) -> None:
    """Apply + Publish as the operator API does them (the handoff service's store, relayed
    from the outbox onto handoff.events): the agent hands off as version 1 says, answers
    instead once version 2 (handoff off) is published, and follows a roll back to 1."""
    box = Sandbox(kafka, redis_server, stack_dir / "agent-plugin")
    async with opened(box) as (box, _, store):
        watch = Watch(box)
        await watch.start()
        agent_store = AgentStore(connect(box.redis_url, CLUSTER))
        try:
            for module, instance in [
                ("services.router", "r"), ("services.handoff", "h"),
                ("services.timeout", "t"), ("services.agent", "a"),
            ]:  # fmt: skip
                box.service(module, instance)
            who = Who(new_id("t"), "support")

            async def apply(config: HandoffConfig) -> int:
                at = "2026-01-01T00:00:00+00:00"
                return await store.apply_agent_version(who.tenant, who.agent, config, at, "test")

            async def publish(version: int) -> None:
                await store.publish_agent_version(who.tenant, who.agent, version)
                await wait_until(  # the race README names: the agent reads it from the log
                    lambda: _is(agent_store, who, version),
                    REPLY_S,
                    f"the agent knowing version {version}",
                )

            one = await apply(HandoffConfig(enabled=True))
            await publish(one)
            alice = Who(who.tenant, who.agent, user="alice")
            await watch.send(box.settings.topics.inbound, alice.message(ASK), key=alice.key)
            [command] = await watch.wait_for(
                box.settings.topics.commands, is_agents(alice, "handoff_command"), timeout=REPLY_S
            )
            assert command["actor"] == f"agent:support@{one}"
            await watch.wait_for(
                box.settings.topics.events,
                lambda v: is_agents(alice, "mode_changed")(v) and v["to_mode"] == "human",
                timeout=REPLY_S,
            )

            two = await apply(HandoffConfig(enabled=False))
            await publish(two)
            bob = Who(who.tenant, who.agent, user="bob")
            await watch.send(box.settings.topics.inbound, bob.message(ASK), key=bob.key)
            [reply] = await watch.wait_for(
                box.settings.topics.agent_replies, is_agents(bob, "agent_reply"), timeout=REPLY_S
            )
            assert reply["text"] == NO_HANDOFF_ANSWER and two == one + 1
            assert not watch.on(box.settings.topics.commands, is_agents(bob, "handoff_command"))

            await publish(one)  # a roll back: an older version is the live one again
            carol = Who(who.tenant, who.agent, user="carol")
            await watch.send(box.settings.topics.inbound, carol.message(ASK), key=carol.key)
            [command] = await watch.wait_for(
                box.settings.topics.commands, is_agents(carol, "handoff_command"), timeout=REPLY_S
            )
            assert command["actor"] == f"agent:support@{one}"
        finally:
            box.stop()
            await watch.stop()
            await agent_store.close()


async def _is(store: AgentStore, who: Who, version: int) -> bool:
    return await known_version(store, who) == version


def version_records(who: Who, config: HandoffConfig, version: int) -> list[bytes]:
    """An Apply and a Publish of `version`, as the handoff service writes them."""
    applied = AgentVersionApplied(
        event_id=new_id("e-"), tenant_id=who.tenant, agent_id=who.agent, version=version,
        handoff=asdict(config), created_at=datetime.now(UTC), created_by="operator:jane",
    )  # fmt: skip
    published = AgentVersionPublished(
        event_id=new_id("e-"), tenant_id=who.tenant, agent_id=who.agent, version=version,
        published_at=datetime.now(UTC), published_by="operator:jane",
    )  # fmt: skip
    return [applied.model_dump_json().encode(), published.model_dump_json().encode()]


def routed(who: Who, text: str) -> dict[str, Any]:
    message = UserMessage.model_validate(who.message(text))
    routing = Routing(
        mode="ai", cause=None, state_version=1, decided_at=datetime.now(UTC),
        human_since=None, expires_at=None,
    )  # fmt: skip
    value: dict[str, Any] = json.loads(
        RoutedMessage(message=message, routing=routing).model_dump_json()
    )
    return value


async def readyz(url: str) -> int | None:
    """/readyz's status, or None while nothing listens yet."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/readyz")).status_code
    except httpx.TransportError:
        return None


async def test_a_fresh_agent_is_not_ready_nor_answering_until_it_has_read_the_versions(
    kafka: KafkaProcess, redis_server: RedisProcess, stack_dir: Path
) -> None:
    """handoff.events holds other records and the agent's version; the group's partitions
    are partly held by another member that has folded nothing (as a second agent instance
    would be, still reading). The new agent stays not ready and answers nothing meanwhile;
    once that member leaves, it reads those partitions itself, is ready, knows the version,
    and its first answer, to a message waiting since before it started, is by that version."""
    box = Sandbox(kafka, redis_server, stack_dir / "agent-fresh")
    async with opened(box) as (box, _, _store):
        t = box.settings.topics
        watch = Watch(box)
        await watch.start()
        agent_store = AgentStore(connect(box.redis_url, CLUSTER))
        other = AIOKafkaConsumer(
            t.events, bootstrap_servers=box.settings.kafka_bootstrap,
            group_id=box.settings.group_id(GROUP), enable_auto_commit=False,
        )  # fmt: skip
        try:
            who = Who(new_id("t"), "support")
            noise = [Who(who.tenant, who.agent, user=f"u{i}") for i in range(300)]
            for each in noise:  # an interaction's events, on every partition
                await watch.send(t.events, {"type": "mode_changed", "ikey": each.key}, each.key)
            # An unreadable record of the agent's, skipped, then the versions that count.
            await watch.send(t.events, {"type": "agent_version_applied"}, f"{who.tenant}:x")
            for value in [
                *version_records(who, HandoffConfig(enabled=False), 1),
                *version_records(who, HandoffConfig(enabled=True), 2),
            ]:
                await watch.send(t.events, value, f"{who.tenant}:{who.agent}")
            alice = Who(who.tenant, who.agent, user="alice")
            await watch.send(t.ai_requests, routed(alice, ASK), alice.key)

            await other.start()
            await wait_until(lambda: len(other.assignment()) == 3, REPLY_S, "the member's join")
            agent = box.service("services.agent", "fresh", wait=False)
            await wait_until(
                lambda: _status_is(agent.url, 503), REPLY_S, "the agent's /readyz answering"
            )
            await wait_until(lambda: len(other.assignment()) < 3, REPLY_S, "the rebalance")
            # Held for a while: still not ready, no answer, as long as the member holds some.
            held_until = time.monotonic() + 3
            while time.monotonic() < held_until:
                assert await readyz(agent.url) == 503
                await asyncio.sleep(0.2)  # the polling interval of a check that must hold
            assert not watch.on(t.commands) and not watch.on(t.agent_replies)

            await other.stop()  # leaves the group: its partitions move to the agent
            await wait_until(lambda: _status_is(agent.url, 200), REPLY_S, "the agent ready")
            assert await known_version(agent_store, who) == 2
            [command] = await watch.wait_for(
                t.commands, is_agents(alice, "handoff_command"), timeout=REPLY_S
            )
            assert command["actor"] == "agent:support@2"
            assert not watch.on(t.agent_replies)
        finally:
            box.stop()
            await other.stop()
            await watch.stop()
            await agent_store.close()


async def _status_is(url: str, status: int) -> bool:
    return await readyz(url) == status


async def test_folding_versions_again_or_late_changes_nothing(agent_store: AgentStore) -> None:
    who = Who(new_id("t"), "support")
    one = PublishedVersion(1, enabled=True, queues=("default",))
    two = PublishedVersion(2, enabled=False)
    log: list[Fold] = [
        Applied(who.tenant, who.agent, one),
        Published(who.tenant, who.agent, 1, offset=10),
        Applied(who.tenant, who.agent, two),
        Published(who.tenant, who.agent, 2, offset=12),
        Published(who.tenant, who.agent, 1, offset=15),  # a roll back
    ]
    assert await agent_store.published(who.tenant, who.agent) is None
    await agent_store.fold(log)
    assert await agent_store.published(who.tenant, who.agent) == one
    await agent_store.fold(log[2:4])  # a batch read again after a crash before the commit
    assert await agent_store.published(who.tenant, who.agent) == one
    # A version is immutable: the same number folded with other settings keeps the first.
    await agent_store.fold([Applied(who.tenant, who.agent, PublishedVersion(1))])
    assert await agent_store.published(who.tenant, who.agent) == one


async def test_recent_turns_are_recorded_once_and_a_message_sees_those_before_it(
    agent_store: AgentStore,
) -> None:
    ikey = Who(new_id("t"), "support").key
    await agent_store.record_turns(ikey, "m1", [("user", "hi"), ("ai", "Hello!")])
    await agent_store.record_turns(ikey, "m2", [("human", "Refunded."), ("user", "thanks")])
    await agent_store.record_turns(ikey, "m1", [("user", "hi"), ("ai", "Hello!")])  # replay
    assert await agent_store.turns_before(ikey, "m2", 10) == [("user", "hi"), ("ai", "Hello!")]
    assert await agent_store.turns_before(ikey, "m3", 3) == [
        ("ai", "Hello!"), ("human", "Refunded."), ("user", "thanks"),
    ]  # fmt: skip
    await agent_store.record_turns(ikey, "m3", [("user", "bye"), ("ai", "Bye!")])
    # Capped at 4 turns: the oldest go first.
    assert await agent_store.turns_before(ikey, "m4", 10) == [
        ("human", "Refunded."), ("user", "thanks"), ("user", "bye"), ("ai", "Bye!"),
    ]  # fmt: skip
    assert await agent_store.redis.pttl(turns_key(ikey)) > 0


async def test_failed_turns_count_once_per_message_and_live_test_apart(
    agent_store: AgentStore,
) -> None:
    ikey = Who(new_id("t"), "support").key
    assert await agent_store.step_failures(ikey, False, "m1", "fail") == 1
    assert await agent_store.step_failures(ikey, False, "m1", "fail") == 1  # replayed
    assert await agent_store.step_failures(ikey, True, "m2", "fail") == 1  # Live Test apart
    assert await agent_store.step_failures(ikey, False, "m3", "fail") == 2
    assert await agent_store.step_failures(ikey, False, "m4", "reset") == 0
    assert await agent_store.redis.keys(f"ho:*{ikey}*") == []


class EchoBrain:
    """An LLM stand-in: answers with what it was told, remembering each Turn it saw."""

    name = "echo"
    wants_history = True

    def __init__(self) -> None:
        self.seen: list[Turn] = []

    async def think(self, turn: Turn) -> Thought:
        self.seen.append(turn)
        return Answer(f"you said {turn.text}")

    async def aclose(self) -> None:
        pass


@dataclass
class Rec:
    value: bytes | None
    key: bytes | None = None
    topic: str = "chat.ai-requests"
    partition: int = 0
    offset: int = 0
    timestamp: int = 0
    headers: None = None


async def test_the_llm_sees_the_agents_own_turns_and_the_way_back_once_each(
    agent_store: AgentStore, settings: CommonSettings
) -> None:
    """R20's context and the agent's own answers make the history; a batch handled again
    (an aborted transaction) sees the same history and records nothing twice."""
    brain = EchoBrain()
    store = AgentStore(agent_store.redis, turns_cap=50)
    handler = AgentHandler(store, brain, settings.topics, history_turns=10)
    who = Who(new_id("t"), "support")
    first = routed(who, "hi")
    back = routed(who, "thanks")
    back["routing"]["context"] = {
        "reason": "Double charge.", "ended_by": "operator",
        "turns": [{"event_id": "h1", "role": "human", "text": "Refunded.", "at": now()}],
    }  # fmt: skip
    last = routed(who, "bye")
    for value in (first, back, back, last):  # `back` twice: its batch handled again
        await handler([Rec(json.dumps(value).encode())])
    assert [t.history for t in brain.seen] == [
        (),
        (("user", "hi"), ("ai", "you said hi")),
        (("user", "hi"), ("ai", "you said hi")),
        (("user", "hi"), ("ai", "you said hi"), ("human", "Refunded."),
         ("user", "thanks"), ("ai", "you said thanks")),
    ]  # fmt: skip
