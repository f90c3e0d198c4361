"""handoffctl's ops commands against the real stack, run as an ops person runs them: the
installed command in a subprocess, with the same HANDOFF_* settings as the services."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import publish_agent
from services.handoff.state.store import ModeStore
from tests.integration.test_rules import hand_off, route

pytestmark = pytest.mark.integration

HANDOFFCTL = [sys.executable, "-m", "services.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


async def handoffctl(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.to_thread(
        subprocess.run, [*HANDOFFCTL, *args], env=env, capture_output=True, text=True, timeout=120,
        cwd=ROOT,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(
            f"handoffctl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
        )
    return proc


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def test_tail_filters_by_tenant_key_and_type(
    bus: Bus, store: ModeStore, env: dict[str, str], tenant: str
) -> None:
    who, other = Who(tenant, "support"), Who(tenant + "x", "support")
    await publish_agent(store, who)
    await route(bus, who, "mine")
    await route(bus, other, "not mine")
    await hand_off(bus, who)

    by_tenant = json_lines(
        (await handoffctl(env, "tail", "chat.inbound", "--tenant", tenant, "--json")).stdout
    )
    by_key = json_lines(
        (await handoffctl(env, "tail", "chat.ai-requests", "--key", other.key, "--json")).stdout
    )
    by_type = json_lines(
        (
            await handoffctl(
                env,
                "tail",
                "handoff.events",
                "--tenant",
                tenant,
                "--type",
                "mode_changed",
                "--json",
            )
        ).stdout
    )

    assert [r["value"]["text"] for r in by_tenant] == ["mine"]
    assert [r["value"]["message"]["text"] for r in by_key] == ["not mine"]
    assert [(r["value"]["to_mode"], r["key"]) for r in by_type] == [("human", who.key)]
    assert {"partition", "offset", "timestamp"} <= by_type[0].keys()


async def test_tail_shows_undecodable_records_raw(
    bus: Bus, env: dict[str, str], tenant: str
) -> None:
    key = f"{tenant}:support:web:raw"
    await bus.send(bus.topics.inbound, b"\xff\xfe not json", key=key)
    await bus.wait_for(bus.topics.dead_letter, lambda v: v.get("key") == key)

    shown = json_lines(
        (await handoffctl(env, "tail", "chat.inbound", "--key", key, "--json")).stdout
    )
    pretty = (await handoffctl(env, "tail", "chat.inbound", "--key", key)).stdout

    assert [r.get("raw_base64") for r in shown] == ["//4gbm90IGpzb24="]
    assert "(undecodable)" in pretty and "1 record(s)" in pretty


async def test_trace_shows_why_an_ai_reply_was_suppressed(
    bus: Bus, store: ModeStore, env: dict[str, str], tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    _, routed = await route(bus, who, "I want a person")
    event_id = routed["message"]["event_id"]
    late = who.reply(event_id, routed["routing"]["state_version"], "Let me help you with that")
    await hand_off(bus, who)
    await bus.send(bus.topics.agent_replies, late, key=who.key)
    _, live = await route(bus, who, "probe", live_test=True)  # gated after the late reply
    probe = who.reply(live["message"]["event_id"], 0, "probe answer")
    await bus.send(bus.topics.agent_replies, probe, key=who.key)
    await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == probe["reply_id"])

    steps = json_lines((await handoffctl(env, "trace", event_id, "--json")).stdout)

    kinds = [s["value"]["type"] for s in steps]
    assert kinds[:2] == ["user_message", "routed_message"]
    assert "mode_changed" in kinds and "agent_reply" in kinds
    assert kinds.index("mode_changed") < kinds.index("agent_reply")
    notes = {s["value"]["type"]: s["note"] for s in steps}
    assert notes["routed_message"] == "routed to AI (mode ai, no cause yet, state v0)"
    assert notes["agent_reply"].startswith(
        "reply gate: SUPPRESSED — the interaction was in human mode"
    )
    by_key = json_lines((await handoffctl(env, "trace", "--key", who.key, "--json")).stdout)
    assert {s["value"]["type"] for s in by_key} >= {
        "outbound_message",
        "handoff_ticket",
        "mode_changed",
    }


async def test_trace_of_an_unknown_event_exits_1(env: dict[str, str]) -> None:
    proc = await handoffctl(env, "trace", "no-such-event", "--since", "5m", check=False)
    assert proc.returncode == 1 and "nothing found" in proc.stdout


async def test_a_fixed_dead_letter_is_redriven_and_routed_once(
    bus: Bus, env: dict[str, str], tenant: str, tmp_path: Path
) -> None:
    who = Who(tenant, "support")
    broken = who.message("my order is late")
    broken["sent_at"] = "yesterday"  # schema-invalid
    await bus.send(bus.topics.inbound, broken, key=who.key)
    [letter] = await bus.wait_for(bus.topics.dead_letter, lambda v: v.get("key") == who.key)
    position = next(
        f"{s.partition}:{s.offset}"
        for s in bus.records
        if s.topic == bus.topics.dead_letter and s.value == letter
    )

    groups = json.loads((await handoffctl(env, "dlq", "ls", "--json")).stdout)
    shown = json.loads((await handoffctl(env, "dlq", "show", position)).stdout)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(
        json.dumps({**json.loads(shown["raw_text"]), "sent_at": "2026-11-25T10:00:00Z"})
    )
    first = await handoffctl(env, "dlq", "redrive", "--at", position, "--value-file", str(fixed))
    again = await handoffctl(
        env, "dlq", "redrive", "--at", position, "--value-file", str(fixed), check=False
    )
    forced = await handoffctl(
        env, "dlq", "redrive", "--at", position, "--value-file", str(fixed), "--force"
    )
    await route(bus, who, "after the redrives")  # in order behind all three

    assert any(g["kind"] == "schema_invalid" and g["count"] >= 1 for g in groups)
    assert shown["error"]["kind"] == "schema_invalid" and "sent_at" in shown["error"]["detail"]
    assert "1 redriven" in first.stdout
    assert again.returncode == 1 and "already redriven" in again.stdout
    assert "1 redriven" in forced.stdout
    assert len(bus.routed(broken["event_id"])) == 1  # fixed, redriven twice, routed once


async def test_mode_set_switches_through_the_operator_topic_and_is_audited(
    bus: Bus, store: ModeStore, env: dict[str, str], tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await hand_off(bus, who)
    ids = ["--tenant", tenant, "--agent", "support", "--channel", "web", "--user", "alice"]

    done = await handoffctl(
        env, "mode", "set", "ai", *ids, "--reason", "Solved by phone.", "--as", "operator:ops-kim"
    )

    assert "accepted" in done.stdout, done.stdout
    [changed] = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "mode_changed" and v.get("actor") == "operator:ops-kim",
    )
    assert changed["to_mode"] == "ai" and changed["cause"] == "operator"
    [audit] = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "operator_action" and v.get("command_id") == changed["command_id"]
        ),
    )
    assert audit["via"] == bus.topics.operator_commands and audit["actor"] == "operator:ops-kim"
    assert (await store.read_state(who.key)).mode == "ai"
    refused = await handoffctl(env, "mode", "set", "ai", *ids, "--reason", "Again.", check=False)
    assert refused.returncode == 1 and "already_in_mode" in refused.stdout + refused.stderr


async def test_desk_reply_from_the_terminal_is_audited(
    bus: Bus, store: ModeStore, env: dict[str, str], tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await hand_off(bus, who)
    ids = ["--tenant", tenant, "--agent", "support", "--user", "alice"]

    await handoffctl(env, "desk", "reply", *ids, "--as", "operator:desk-lee", "Hi, Lee here.")

    [reply] = await bus.wait_for(
        bus.topics.outbound, lambda v: v.get("sender") == "human" and v["tenant_id"] == tenant
    )
    [audit] = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("command_id") == reply["event_id"],
    )
    assert (audit["action"], audit["actor"], audit["via"]) == (
        "desk_reply",
        "operator:desk-lee",
        "handoffctl",
    )


async def test_a_dead_letter_with_its_raw_cut_is_not_redriven_without_a_fixed_value(
    bus: Bus, env: dict[str, str], tenant: str
) -> None:
    who = Who(tenant, "support")
    big = who.message("x" * (3 << 20))  # too_large: its dead letter keeps the start only
    producer = AIOKafkaProducer(
        bootstrap_servers=bus.bootstrap, compression_type="gzip", max_request_size=8 << 20
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            bus.topics.inbound, json.dumps(big).encode(), key=who.key.encode()
        )
    finally:
        await producer.stop()
    [letter] = await bus.wait_for(bus.topics.dead_letter, lambda v: v.get("key") == who.key)
    position = next(
        f"{s.partition}:{s.offset}"
        for s in bus.records
        if s.topic == bus.topics.dead_letter and s.value == letter
    )

    shown = json.loads((await handoffctl(env, "dlq", "show", position)).stdout)
    refused = await handoffctl(env, "dlq", "redrive", "--at", position, check=False)

    assert (shown["raw_truncated"], shown["raw_size"]) == (True, len(json.dumps(big)))
    assert refused.returncode == 1 and "its raw is cut" in refused.stdout
    original = f"{letter['source_topic']} {letter['partition']}:{letter['offset']}"
    assert original in refused.stdout and "0 redriven" in refused.stdout
