"""A user's routing, the mode switch (R7, R8), history and transcript, over HTTP against the
running handoff service; the switch's records observed on the real topics."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, attachment
from services.handoff.state.store import ModeStore
from tests.api.helpers import (
    NOTICE,
    Api,
    error_code,
    mode_path,
    publish_agent,
    route,
    user_path,
)

pytestmark = pytest.mark.integration
# R3's notice and R16's place in line (the queue's first ticket: no estimate yet).
HANDOFF_NOTICE = f"{NOTICE} You're number 1 in line. We don't have a wait estimate yet."


def of(who: Who, type_: str) -> Any:
    def match(v: Any) -> bool:
        if not isinstance(v, dict) or v.get("type") != type_:
            return False
        ids = v.get("message", v)
        user = ids.get("user") or {}
        return (ids.get("tenant_id"), ids.get("agent_id"), user.get("external_id")) == (
            who.tenant,
            who.agent,
            who.user,
        )

    return match


async def test_user_shows_each_agents_routing(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    support, sales = Who(tenant, "support"), Who(tenant, "sales")
    await publish_agent(store, support, idle=30)
    await route(bus, support)
    await route(bus, sales)
    switched = await editor.switch(support, "human", "The user asked for a person.")
    assert switched.status_code == 200, switched.text

    r = await viewer.get(user_path(support))

    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["tenant_id"], body["channel"], body["external_id"]) == (tenant, "web", "alice")
    by_agent = {a["agent_id"]: a for a in body["agents"]}
    assert sorted(by_agent) == ["sales", "support"]
    s = by_agent["support"]
    assert (s["mode"], s["cause"], s["actor"], s["reason"]) == (
        "human",
        "operator",
        "operator:jane",
        "The user asked for a person.",
    )
    assert s["state_version"] == 1 and s["idle_timeout_minutes"] == 30
    changed_at = datetime.fromisoformat(s["changed_at"])
    assert datetime.fromisoformat(s["expires_at"]) > changed_at
    assert s["handoff"] == {"published_version": 1, "enabled": True}
    assert by_agent["sales"]["mode"] == "ai" and by_agent["sales"]["cause"] is None
    assert by_agent["sales"]["state_version"] == 0
    assert by_agent["sales"]["handoff"] == {"published_version": None, "enabled": False}


async def test_unknown_user_and_bad_ids(viewer: Api, tenant: str) -> None:
    r = await viewer.get(f"/v1/tenants/{tenant}/users/web/nobody")
    assert r.status_code == 404 and error_code(r) == "user_not_found"
    bad_channel = await viewer.get(f"/v1/tenants/{tenant}/users/we%20b/alice")
    assert bad_channel.status_code == 422 and error_code(bad_channel) == "validation_failed"
    assert bad_channel.json()["error"]["fields"][0]["loc"] == "path.channel"
    # No user can have a non-printable id (the events refuse it): like any unknown user.
    not_printable = await viewer.get(f"/v1/tenants/{tenant}/users/web/al%7Fice")
    assert not_printable.status_code == 404 and error_code(not_printable) == "user_not_found"


async def test_switch_to_human_emits_the_same_records_as_a_kafka_command(
    editor: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "my parcel never came")

    r = await editor.switch(who, "human", "Angry customer, wants a person.")

    assert r.status_code == 200, r.text
    state = r.json()
    assert (state["mode"], state["from_mode"], state["cause"], state["actor"]) == (
        "human",
        "ai",
        "operator",
        "operator:jane",
    )
    assert state["reason"] == "Angry customer, wants a person."
    assert state["state_version"] == 1 and state["expires_at"] is None
    assert state["human_since"] == state["changed_at"]
    assert r.headers["Idempotency-Key"]
    # The records were acknowledged before the answer: they are on the topics.
    [changed] = await bus.wait_for(bus.topics.events, of(who, "mode_changed"))
    assert changed["command_id"] == state["command_id"] and changed["cause"] == "operator"
    [notice] = await bus.wait_for(bus.topics.outbound, of(who, "outbound_message"))
    assert notice["sender"] == "system" and notice["text"].startswith(f"{NOTICE} You're number")
    [ticket] = await bus.wait_for(bus.topics.human_queue, of(who, "handoff_ticket"))
    assert ticket["reason"] == "Angry customer, wants a person."
    assert [t["text"] for t in ticket["transcript"]] == ["my parcel never came", notice["text"]]
    [audit] = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("command_id") == state["command_id"],
    )
    assert (audit["tenant_id"], audit["actor"], audit["role"]) == (
        tenant,
        "operator:jane",
        "editor",
    )
    assert (audit["action"], audit["outcome"], audit["target"]) == (
        "mode_switch",
        "accepted",
        who.key,
    )
    assert audit["token_id"]  # the token's jti
    # And the user's next message goes to the desk (R4).
    topic, _ = await route(bus, who, "hello?")
    assert topic == bus.topics.human_queue


async def test_switch_back_to_ai_always_works_and_routes_to_the_ai(
    editor: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    assert (await editor.switch(who, "human")).status_code == 200
    await publish_agent(store, who, enabled=False)  # handoff since switched off: back still works

    r = await editor.switch(who, "ai", "Resolved by phone.")

    assert r.status_code == 200, r.text
    assert (r.json()["mode"], r.json()["from_mode"], r.json()["state_version"]) == (
        "ai",
        "human",
        2,
    )
    assert r.json()["expires_at"] is None and r.json()["human_since"] is None
    topic, routed = await route(bus, who)
    assert topic == bus.topics.ai_requests and routed["routing"]["cause"] == "operator"


async def test_operator_idle_timeout_override(
    admin: Api, store: ModeStore, bus: Bus, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=None)

    r = await admin.switch(who, "human", idle_timeout_minutes=45)

    assert r.status_code == 200, r.text
    assert r.json()["idle_timeout_minutes"] == 45 and r.json()["expires_at"] is not None
    assert r.json()["actor"] == "operator:ada"


@pytest.mark.parametrize(
    ("setup", "mode", "code"),
    [
        ("unpublished", "human", "agent_not_published"),
        ("disabled", "human", "handoff_disabled"),
        ("published", "ai", "already_in_mode"),
        ("in_human", "human", "already_in_mode"),
    ],
)
async def test_refused_switches_are_409_with_the_rejection_code(
    editor: Api, bus: Bus, store: ModeStore, tenant: str, setup: str, mode: str, code: str
) -> None:
    who = Who(tenant, "support")
    if setup != "unpublished":
        await publish_agent(store, who, enabled=setup != "disabled")
    if setup == "in_human":
        assert (await editor.switch(who, "human")).status_code == 200

    r = await editor.switch(who, mode)

    assert r.status_code == 409, r.text
    assert error_code(r) == code
    rejected = await bus.wait_for(
        bus.topics.events, lambda v: of(who, "command_rejected")(v) and v["code"] == code
    )
    assert len(rejected) == 1
    state = await store.read_state(who.key)
    assert state.version == (1 if setup == "in_human" else 0)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"mode": "human"}, "body.human.reason"),
        ({"mode": "human", "reason": ""}, "body.human.reason"),
        ({"mode": "human", "reason": "   "}, "body.human.reason"),
        ({"mode": "ai", "reason": "x" * 281}, "body.ai.reason"),
        ({"mode": "robot", "reason": "why"}, "body"),
        ({"mode": "human", "reason": "why", "idle_timeout_minutes": 10081}, None),
        ({"mode": "human", "reason": "why", "idle_timeout_minutes": -1}, None),
        ({"mode": "ai", "reason": "why", "idle_timeout_minutes": 5}, None),
        ({"mode": "human", "reason": "why", "extra": 1}, "body.human.extra"),
    ],
)
async def test_invalid_switch_bodies_are_422(
    editor: Api, tenant: str, body: dict[str, Any], loc: str | None
) -> None:
    who = Who(tenant, "support")
    r = await editor.put(mode_path(who), body)
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_failed"
    fields = r.json()["error"]["fields"]
    assert fields and all(f["message"] for f in fields)
    if loc:
        assert fields[0]["loc"] == loc


async def test_a_retry_with_the_same_idempotency_key_changes_nothing_twice(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    headers = {"Idempotency-Key": "req-42"}

    first = await editor.put(mode_path(who), {"mode": "human", "reason": "a"}, headers)
    again = await editor.put(mode_path(who), {"mode": "human", "reason": "a"}, headers)

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.headers["Idempotency-Key"] == "req-42"
    assert [c["version"] for c in await store.history(who.key)] == [1]


async def test_history_is_paginated_newest_first(
    editor: Api, viewer: Api, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    for n in range(7):
        r = await editor.switch(who, "human" if n % 2 == 0 else "ai", f"switch {n}")
        assert r.status_code == 200, r.text
    path = f"{user_path(who)}/agents/support/history"

    pages, url, params = [], path, {"limit": 3}
    while url:
        r = await viewer.get(url, **params)
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        url, params = r.json()["next"], {}
        if url:
            assert r.json()["next_cursor"] in url

    assert [len(p) for p in pages] == [3, 3, 1]
    entries = [e for p in pages for e in p]
    assert [e["state_version"] for e in entries] == [7, 6, 5, 4, 3, 2, 1]
    assert [e["reason"] for e in entries] == [f"switch {n}" for n in reversed(range(7))]
    assert entries[0]["to_mode"] == "human" and entries[1]["to_mode"] == "ai"
    assert {e["cause"] for e in entries} == {"operator"}
    first = entries[-1]
    assert (first["from_mode"], first["to_mode"], first["actor"]) == (
        "ai",
        "human",
        "operator:jane",
    )

    bad = await viewer.get(path, cursor="abc")
    assert bad.status_code == 422 and error_code(bad) == "validation_failed"
    too_many = await viewer.get(path, limit=1000)
    assert too_many.status_code == 422
    nobody = await viewer.get(f"{user_path(who)}/agents/sales/history")
    assert nobody.status_code == 404 and error_code(nobody) == "interaction_not_found"


async def test_history_pages_do_not_repeat_when_changes_arrive_meanwhile(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    for n in range(4):
        await editor.switch(who, "human" if n % 2 == 0 else "ai")
    path = f"{user_path(who)}/agents/support/history"
    first = (await editor.get(path, limit=2)).json()
    await editor.switch(who, "human")  # version 5 lands at the head
    second = (await editor.get(first["next"])).json()
    assert [e["state_version"] for e in first["items"] + second["items"]] == [4, 3, 2, 1]


async def test_transcript_has_every_turn_with_its_attachments(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "first")
    await editor.switch(who, "human", "Needs a person.")
    for n in range(3):
        await route(bus, who, f"photo {n}", attachments=[attachment(n)])
    path = f"{user_path(who)}/agents/support/transcript"

    r = await viewer.get(path)

    assert r.status_code == 200, r.text
    turns = r.json()["items"]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "first"),
        ("system", HANDOFF_NOTICE),
        ("user", "photo 0"),
        ("user", "photo 1"),
        ("user", "photo 2"),
    ]
    assert [t["attachments"] for t in turns[2:]] == [[attachment(n)] for n in range(3)]
    assert r.json()["next"] is None

    newest = (await viewer.get(path, limit=2)).json()
    assert [t["text"] for t in newest["items"]] == ["photo 1", "photo 2"]
    older = (await viewer.get(newest["next"])).json()
    assert [t["text"] for t in older["items"]] == [HANDOFF_NOTICE, "photo 0"]
    oldest = (await viewer.get(older["next"])).json()
    assert [t["text"] for t in oldest["items"]] == ["first"] and oldest["next"] is None


async def test_concurrent_switches_are_each_atomic_and_all_in_the_history(
    editor: Api, admin: Api, store: ModeStore, tenant: str
) -> None:
    """Rounds of 20 concurrent PUTs, alternating modes, from two operators."""
    who = Who(tenant, "support")
    await publish_agent(store, who)

    async def one(n: int) -> Any:
        api = editor if n % 2 else admin
        return await api.switch(who, "human" if n % 2 == 0 else "ai", f"concurrent {n}")

    responses = []
    for _ in range(4):
        responses += await asyncio.gather(*(one(n) for n in range(20)))

    accepted = [r.json() for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) >= 4
    assert all(r.status_code == 409 and error_code(r) == "already_in_mode" for r in refused)
    versions = [a["state_version"] for a in accepted]
    assert sorted(versions) == list(range(1, len(accepted) + 1))  # no lost update, no gap
    history = await store.history(who.key, 0, 200)
    assert [c["version"] for c in history] == sorted(versions, reverse=True)
    modes = [c["to_mode"] for c in reversed(history)]
    assert all(a != b for a, b in itertools.pairwise(modes))  # strictly alternating
    by_version = {a["state_version"]: a for a in accepted}
    assert all(by_version[c["version"]]["reason"] == c["reason"] for c in history)
    assert all(by_version[c["version"]]["mode"] == c["to_mode"] for c in history)
    state = await store.read_state(who.key)
    assert state.version == len(accepted) and state.mode == modes[-1]


async def test_of_concurrent_identical_switches_exactly_one_wins(
    editor: Api, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)

    responses = await asyncio.gather(*(editor.switch(who, "human") for _ in range(20)))

    assert sorted(r.status_code for r in responses) == [200] + [409] * 19
    assert [c["version"] for c in await store.history(who.key)] == [1]
