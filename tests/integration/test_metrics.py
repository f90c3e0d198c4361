"""The metrics the README lists appear on /metrics and move when traffic flows."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import publish_agent
from devstack.services import ServiceProcess
from services.handoff.state.store import ModeStore
from tests.integration.test_rules import hand_off, route

pytestmark = pytest.mark.integration


async def scrape(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    def get() -> str:
        with urllib.request.urlopen(f"{service.url}/metrics", timeout=5) as response:
            return str(response.read().decode())

    samples = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(get)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_metrics_move_with_traffic(
    bus: Bus, store: ModeStore, services: dict[str, ServiceProcess], tenant: str
) -> None:
    router, handoff = services["router"], services["handoff"]
    before_router, before_handoff = await scrape(router), await scrape(handoff)
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=1)
    _, routed = await route(bus, who, "hello")
    reply = who.reply(routed["message"]["event_id"], 0, "hi")
    await bus.send(bus.topics.agent_replies, reply, key=who.key)
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == reply["reply_id"])
    await hand_off(bus, who)
    stale = who.reply(routed["message"]["event_id"], 0, "too late")
    await bus.send(bus.topics.agent_replies, stale, key=who.key)
    await bus.send(bus.topics.inbound, b"not json", key=who.key)
    await route(bus, who, "human please")  # in order behind the bad record
    await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("cause") == "timeout"
            and v["user"]["external_id"] == "alice"
            and v["tenant_id"] == tenant
        ),
        timeout=15,
    )
    _, live = await route(bus, who, "probe", live_test=True)  # gated after the stale reply
    probe = who.reply(live["message"]["event_id"], 0, "probe")
    await bus.send(bus.topics.agent_replies, probe, key=who.key)
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == probe["reply_id"])

    after_router, after_handoff = await scrape(router), await scrape(handoff)
    timeouts = [await scrape(services[name]) for name in ("timeout-1", "timeout-2")]

    def moved(name: str, before: dict, after: dict, **labels: str) -> float:  # type: ignore[type-arg]
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("handoff_messages_routed_total", before_router, after_router, mode="ai") >= 2
    assert moved("handoff_messages_routed_total", before_router, after_router, mode="human") >= 1
    assert (
        moved("handoff_dead_letters_total", before_router, after_router, kind="invalid_json") >= 1
    )
    assert (
        moved("handoff_agent_replies_total", before_router, after_router, verdict="forwarded") >= 2
    )
    assert (
        moved(
            "handoff_agent_replies_total",
            before_router,
            after_router,
            verdict="suppressed_human_mode",
        )
        >= 1
    )
    assert moved("handoff_redis_call_seconds_count", before_router, after_router, call="route") >= 1
    assert moved("handoff_batch_records_count", before_router, after_router, service="router") >= 1
    assert any(n == "handoff_consumer_lag_records" for n, _ in after_router)
    assert moved("handoff_mode_changes_total", before_handoff, after_handoff, cause="agent") >= 1
    assert moved("handoff_commands_total", before_handoff, after_handoff, result="accepted") >= 1
    assert sum(total(t, "handoff_mode_changes_total", cause="timeout") for t in timeouts) >= 1
    assert sum(total(t, "handoff_timeout_revert_lag_seconds_count") for t in timeouts) >= 1


async def test_every_service_serves_the_asyncapi_document(
    services: dict[str, ServiceProcess],
) -> None:
    def get(url: str) -> dict:  # type: ignore[type-arg]
        with urllib.request.urlopen(f"{url}/asyncapi.json", timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    docs = [await asyncio.to_thread(get, services[name].url) for name in ("handoff", "router")]

    assert docs[0] == docs[1] and docs[0]["asyncapi"] == "3.0.0"
    assert {c["address"] for c in docs[0]["channels"].values()} >= {
        "chat.inbound", "chat.ai-requests", "chat.human-queue", "agent.replies",
        "chat.outbound", "handoff.commands", "handoff.events", "chat.dead-letter",
    }  # fmt: skip
