"""One user message, one trace: the W3C trace context in the Kafka record headers, from the web
chat through the router, the agent, the reply gate or the handoff and the desk's reply, to
chat.outbound; the spans caught by the SDK's in-memory exporter.

The services run in this process (their spans must reach the test's exporter), on the
session's Kafka broker, with topics of their own (a prefix) and a Redis server of their own
(the session's timeout workers must not relay this stack's outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from devstack.harness.bus import Bus, Seen
from devstack.harness.env import API_JWT_SECRET, ROOT
from devstack.harness.events import Who
from devstack.harness.sandbox import publish_known, wait_until
from devstack.kafka import KafkaProcess
from devstack.redis import RedisProcess
from services.agent.rules import RuleBrain
from services.agent.store import AgentStore
from services.agent.versions import AfterCatchUp, VersionFollower
from services.agent.worker import AgentHandler
from services.common import tracing
from services.common.files import FileStore
from services.common.kafka import TransactionalProcessor
from services.common.service import Worker
from services.common.topics import ensure_topics
from services.handoff.api.app import create_app as api_app
from services.handoff.api.auth import JwtVerifier
from services.handoff.api.context import ApiContext
from services.handoff.api.desk import DeskFeed
from services.handoff.consumer import CommandConsumer
from services.handoff.service.commands import CommandService
from services.handoff.settings import HandoffSettings
from services.handoff.state.reader import StateClient
from services.handoff.state.store import ModeStore
from services.router.handlers import InboundRouter, ReplyGate
from services.timeout.settings import TimeoutSettings
from services.timeout.worker import TimeoutWorker
from services.webchat import identity
from services.webchat.app import Gateway
from services.webchat.app import create_app as webchat_app
from services.webchat.conversation import ConversationReader
from services.webchat.feed import Inbound, OutboundFeed
from services.webchat.settings import WebchatSettings
from tests.api.helpers import make_token, user_path

pytestmark = pytest.mark.integration

HANDOFF_TEXT = "I want to talk to a person"
DESK_TEXT = "Hi, Jane from support here."


@dataclass
class TracedStack:
    env: dict[str, str]
    bus: Bus
    store: ModeStore
    spans: InMemorySpanExporter
    webchat: httpx.AsyncClient
    api: httpx.AsyncClient
    topics: Any

    def finished(self, trace_id: int) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.context.trace_id == trace_id]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.use(provider)
    yield spans
    tracing.use(None)


@pytest.fixture(scope="module")
async def traced(
    kafka: KafkaProcess, stack_dir: Path, exporter: InMemorySpanExporter
) -> AsyncIterator[TracedStack]:
    root = stack_dir / "tracing"
    redis = RedisProcess(root / "redis")
    redis.start()
    redis.wait_ready(30)
    prefix = f"tr{uuid.uuid4().hex[:6]}."
    given: dict[str, Any] = {
        "kafka_bootstrap": kafka.bootstrap,
        "redis_url": redis.url,
        "topic_prefix": prefix,
        "topic_partitions": 3,
        "minute_seconds": 1,
        "consumer_poll_ms": 50,
        "timeout_tick_ms": 50,
        "instance_id": "traced",
        "api_jwt_secret": API_JWT_SECRET,
        "webchat_data_dir": root / "webchat",
        "webchat_query_user": True,
    }
    hs, ts, ws = HandoffSettings(**given), TimeoutSettings(**given), WebchatSettings(**given)
    topics = hs.topics
    await ensure_topics(hs)

    store = ModeStore.from_settings(hs)
    await store.load_functions()
    state = StateClient.from_settings(hs)
    commands = CommandService(
        store, hs.minute_ms, hs.ticket_transcript_turns, hs.teammate_online_ms, hs.test_clock
    )
    desk = DeskFeed(hs, store)
    consumer = CommandConsumer(commands, topics)
    inbound = Inbound(ws)
    agent_store = AgentStore(store.redis)
    versions = VersionFollower(hs, agent_store)
    workers: list[Worker] = [
        desk,
        TransactionalProcessor(hs, "router", [topics.inbound], InboundRouter(state, topics)),
        TransactionalProcessor(hs, "reply-gate", [topics.agent_replies], ReplyGate(state, topics)),
        TransactionalProcessor(hs, "handoff", consumer.topic_names, consumer),
        versions,
        AfterCatchUp(
            TransactionalProcessor(
                hs, "agent", [topics.ai_requests], AgentHandler(agent_store, RuleBrain(), topics)
            ),
            versions,
        ),
        TimeoutWorker(store, ts),
        inbound,
    ]
    gateway = Gateway(
        ws,
        OutboundFeed(ws),
        inbound,
        FileStore((root / "webchat").resolve(), ws.webchat_base_url),
        identity.load_secret(None, (root / "webchat").resolve()),
        ConversationReader.from_settings(ws, 50),
    )
    context = ApiContext.of(hs, store, commands, desk, JwtVerifier(API_JWT_SECRET))
    bus = Bus(hs.kafka_bootstrap, topics)
    tasks: list[asyncio.Task[None]] = []
    try:
        for worker in workers:
            await worker.start()
        tasks = [asyncio.create_task(w.run()) for w in workers]
        await bus.start()
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=webchat_app(gateway)), base_url="http://chat"
            ) as chat,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=api_app(context)), base_url="http://api"
            ) as api,
        ):
            env = {
                "HANDOFF_KAFKA_BOOTSTRAP": kafka.bootstrap,
                "HANDOFF_REDIS_URL": redis.url,
                "HANDOFF_TOPIC_PREFIX": prefix,
                "PYTHONPATH": str(ROOT),
                "PATH": "",
                "COLUMNS": "200",
            }
            yield TracedStack(env, bus, store, exporter, chat, api, topics)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for worker in reversed(workers):
            with contextlib.suppress(Exception):
                await worker.stop()
        await bus.stop()
        await state.close()
        await store.close()
        await gateway.conversation.close()
        redis.stop()


def traceparent(seen: Seen) -> tuple[int, int]:
    """(trace id, span id) of a record's traceparent header."""
    [value] = [v for k, v in seen.headers if k == "traceparent"]
    _, trace_id, span_id, _ = value.decode().split("-")
    return int(trace_id, 16), int(span_id, 16)


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def say(stack: TracedStack, who: Who, text: str) -> str:
    response = await stack.webchat.post(
        "/api/messages",
        params={"tenant": who.tenant, "agent": who.agent, "user": who.user},
        json={"text": text},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


async def spans_named(stack: TracedStack, trace_id: int, names: set[str]) -> list[ReadableSpan]:
    await wait_until(
        lambda: names <= {s.name for s in stack.finished(trace_id)}, 20, f"the spans {names}"
    )
    return stack.finished(trace_id)


async def test_a_handed_off_message_answered_from_the_desk_is_one_trace(
    traced: TracedStack, tenant: str
) -> None:
    t, bus = traced.topics, traced.bus
    who = Who(tenant, "support")
    await publish_known(traced.store, who)

    event_id = await say(traced, who, HANDOFF_TEXT)
    [routed] = await bus.wait_for_seen(
        t.ai_requests, lambda v: v["message"]["event_id"] == event_id
    )
    [ticket] = await bus.wait_for_seen(
        t.human_queue, lambda v: v.get("type") == "handoff_ticket" and v["tenant_id"] == tenant
    )
    notice = (
        await bus.wait_for_seen(
            t.outbound, lambda v: v["tenant_id"] == tenant and v["sender"] == "system"
        )
    )[0]  # the handoff notice, written with the ticket
    # The desk feed keeps the context of what it gave the desk: the reply is its child.
    await wait_until(lambda: traced.store.latest_trace(who.key), 20, "the desk's trace context")
    token = make_token(API_JWT_SECRET, tenant)
    sent = await traced.api.post(
        f"{user_path(who)}/agents/{who.agent}/messages",
        json={"text": DESK_TEXT},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert sent.status_code == 201, sent.text
    [reply] = await bus.wait_for_seen(
        t.outbound, lambda v: v.get("event_id") == sent.json()["event_id"]
    )

    trace_id, routed_parent = traceparent(routed)
    spans = await spans_named(
        traced,
        trace_id,
        {
            f"send {t.inbound}",
            f"process {t.inbound}",
            f"process {t.ai_requests}",
            f"process {t.commands}",
            f"send {t.outbound}",
        },
    )
    webchat = one(spans, f"send {t.inbound}")
    router = one(spans, f"process {t.inbound}")
    agent = one(spans, f"process {t.ai_requests}")
    handoff = one(spans, f"process {t.commands}")
    desk = one(spans, f"send {t.outbound}")

    # The parent links: web chat -> router -> agent -> handoff -> the desk's reply.
    assert webchat.parent is None and webchat.kind == SpanKind.PRODUCER
    assert parent_of(router) == webchat.context.span_id and router.kind == SpanKind.CONSUMER
    assert parent_of(agent) == router.context.span_id
    assert parent_of(handoff) == agent.context.span_id
    assert parent_of(desk) == handoff.context.span_id and desk.kind == SpanKind.PRODUCER
    # ...and each record carries the context of the span that made it, to chat.outbound.
    assert routed_parent == router.context.span_id
    assert traceparent(ticket) == (trace_id, handoff.context.span_id)
    assert traceparent(notice) == (trace_id, handoff.context.span_id)
    assert traceparent(reply) == (trace_id, desk.context.span_id)  # relayed from the outbox

    assert (router.attributes or {})["handoff.mode"] == "ai"
    assert (agent.attributes or {})["handoff.outcome"] == "handoff"
    assert (handoff.attributes or {})["handoff.outcome"] == "accepted"
    assert (desk.attributes or {})["handoff.outcome"] == "recorded"
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "kafka"
        values = " ".join(str(v) for v in attributes.values())
        for private in (HANDOFF_TEXT, DESK_TEXT, who.user or "", who.key):
            assert private not in values  # no text, no user, no key

    # `handoffctl trace` names the message's trace.
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli.main", "trace", event_id, "--since", "10m"],
        env=traced.env, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"trace id {trace.format_trace_id(trace_id)}" in proc.stdout


async def test_an_ai_answer_is_one_trace_through_the_reply_gate(
    traced: TracedStack, tenant: str
) -> None:
    t, bus = traced.topics, traced.bus
    who = Who(tenant, "support")
    await publish_known(traced.store, who)

    event_id = await say(traced, who, "hello")
    [answer] = await bus.wait_for_seen(
        t.outbound, lambda v: v.get("in_reply_to") == event_id and v["sender"] == "ai"
    )

    trace_id, gate_span_id = traceparent(answer)
    names = {f"process {t.inbound}", f"process {t.ai_requests}", f"process {t.agent_replies}"}
    spans = await spans_named(traced, trace_id, {f"send {t.inbound}", *names})
    webchat = one(spans, f"send {t.inbound}")
    router = one(spans, f"process {t.inbound}")
    agent = one(spans, f"process {t.ai_requests}")
    gate = one(spans, f"process {t.agent_replies}")
    assert parent_of(router) == webchat.context.span_id
    assert parent_of(agent) == router.context.span_id
    assert parent_of(gate) == agent.context.span_id
    assert gate.context.span_id == gate_span_id
    assert (gate.attributes or {})["handoff.verdict"] == "forwarded"
