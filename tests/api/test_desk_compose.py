"""The reply box's helpers over HTTP (issue 14): who is composing a reply ("Jane is
replying", ephemeral, scoped by the token's tenant), files a teammate attaches to a reply,
and the tenant's canned replies (stored, audited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.canned import CannedReplies, CannedReply
from services.handoff.state.keys import presence_key, shard_of
from services.handoff.state.presence import PresenceStore
from services.handoff.state.store import ModeStore
from tests.api.conftest import TokenFactory
from tests.api.helpers import Api, error_code, publish_agent, route, user_path

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Waits until `check()` holds, with a deadline (Redis expiry has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.05)  # the poll's period, not a synchronisation


def composing_path(who: Who) -> str:
    return f"{user_path(who)}/agents/{who.agent}/composing"


async def in_human_mode(editor: Api, bus: Bus, store: ModeStore, who: Who) -> None:
    await publish_agent(store, who)
    await route(bus, who, "hello")
    assert (await editor.switch(who, "human", "Needs a person.")).status_code == 200


async def test_a_teammate_composing_is_seen_by_the_others_not_by_themselves(
    http: httpx.AsyncClient, token: TokenFactory, bus: Bus, store: ModeStore, tenant: str
) -> None:
    jane, omar = Api(http, token("editor", sub="jane")), Api(http, token("editor", sub="omar"))
    who = Who(tenant, "support")
    await in_human_mode(jane, bus, store, who)

    started = await jane.put(composing_path(who), {"display_name": "Jane Doe"})
    assert started.status_code == 200, started.text
    assert started.json() == {"teammates": []}  # nobody else is at it

    seen = await omar.get(composing_path(who))
    assert seen.status_code == 200
    [jane_seen] = seen.json()["teammates"]
    assert (jane_seen["sub"], jane_seen["display_name"], jane_seen["activity"]) == (
        "jane",
        "Jane Doe",
        "composing",
    )
    assert (await jane.get(composing_path(who))).json() == {"teammates": []}
    # Omar starts too: his heartbeat tells him Jane is at it.
    both = await omar.put(composing_path(who), {})
    assert [t["sub"] for t in both.json()["teammates"]] == ["jane"]
    assert [
        t["display_name"] for t in (await jane.get(composing_path(who))).json()["teammates"]
    ] == [
        "omar"  # no display name given: the operator id
    ]

    # Jane clears her draft: she is no longer replying.
    stopped = await jane.http.delete(composing_path(who), headers=jane._headers(None))
    assert stopped.status_code == 204
    assert (await omar.get(composing_path(who))).json() == {"teammates": []}


async def test_a_reply_shows_as_just_replied(
    http: httpx.AsyncClient, token: TokenFactory, bus: Bus, store: ModeStore, tenant: str
) -> None:
    jane, omar = Api(http, token("editor", sub="jane")), Api(http, token("editor", sub="omar"))
    who = Who(tenant, "support")
    await in_human_mode(jane, bus, store, who)
    await jane.put(composing_path(who), {"display_name": "Jane"})
    sent = await jane.post(f"{user_path(who)}/agents/support/messages", {"text": "Hi!"})
    assert sent.status_code == 201, sent.text
    [seen] = (await omar.get(composing_path(who))).json()["teammates"]
    assert (seen["sub"], seen["display_name"], seen["activity"]) == ("jane", "Jane", "replied")


async def test_composing_is_ephemeral(editor: Api, bus: Bus, store: ModeStore, tenant: str) -> None:
    """Presence is no state change: nothing on the log, and its key has a short TTL."""
    who = Who(tenant, "support")
    await in_human_mode(editor, bus, store, who)
    assert (await editor.put(composing_path(who), {})).status_code == 200
    assert (
        await editor.http.delete(composing_path(who), headers=editor._headers(None))
    ).status_code == 204
    key = presence_key(who.key)
    assert key == f"ho:presence:{{h{shard_of(who.key)}}}:{who.key}"
    assert (await editor.put(composing_path(who), {})).status_code == 200
    assert 0 < await store.redis.pttl(key) <= 60_000
    # An audited call after them, on the same key (one partition, in order): when its record
    # is in, anything the heartbeats had queued would be in too. Only the switch and it are.
    sent = await editor.post(f"{user_path(who)}/agents/support/messages", {"text": "Hi"})
    assert sent.status_code == 201
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == sent.json()["event_id"])
    actions = bus.on(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("target") == who.key,
    )
    assert [a["action"] for a in actions] == ["mode_switch", "desk_reply"]


async def test_composing_refusals(
    http: httpx.AsyncClient,
    editor: Api,
    viewer: Api,
    token: TokenFactory,
    bus: Bus,
    store: ModeStore,
    tenant: str,
) -> None:
    who = Who(tenant, "support", user="zed")
    missing = await editor.put(composing_path(who), {})
    assert missing.status_code == 404 and error_code(missing) == "interaction_not_found"
    await in_human_mode(editor, bus, store, who)
    assert (await viewer.put(composing_path(who), {})).status_code == 403
    assert (await viewer.get(composing_path(who))).status_code == 200  # reading is allowed
    other = Api(http, token("editor", tenant=f"{tenant}x"))
    across = await other.get(composing_path(who).replace(tenant, f"{tenant}x", 1))
    assert across.status_code == 404
    foreign = await other.get(composing_path(who))
    assert foreign.status_code == 404
    bad = await editor.put(composing_path(who), {"display_name": "x" * 500})
    assert bad.status_code == 422


# Attachments ---------------------------------------------------------------------------------


def files_path(tenant: str) -> str:
    return f"/v1/tenants/{tenant}/desk/files"


async def upload(api: Api, tenant: str, data: bytes, name: str, kind: str) -> httpx.Response:
    headers = {**api._headers(None), "Content-Type": kind}
    return await api.http.post(
        files_path(tenant), params={"name": name}, content=data, headers=headers
    )


async def test_a_desk_reply_carries_an_uploaded_file(
    editor: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await in_human_mode(editor, bus, store, who)
    stored = await upload(
        editor, tenant, b"%PDF-1.4 invoice", "../Invoice 42.pdf", "application/pdf"
    )
    assert stored.status_code == 201, stored.text
    attachment = stored.json()
    assert (attachment["name"], attachment["content_type"], attachment["size"]) == (
        "Invoice 42.pdf",
        "application/pdf",
        16,
    )
    assert attachment["url"].endswith(f"/files/{attachment['id']}/Invoice%2042.pdf")
    assert attachment["url"].startswith("http")

    r = await editor.post(
        f"{user_path(who)}/agents/support/messages", {"text": "", "attachments": [attachment]}
    )
    assert r.status_code == 201, r.text
    [out] = await bus.wait_for(
        bus.topics.outbound, lambda v: v.get("event_id") == r.json()["event_id"]
    )
    assert out["attachments"] == [attachment] and out["text"] == ""
    turns = await store.transcript(who.key, 3)
    assert turns[-1]["attachments"] == [attachment]


async def test_upload_refusals(
    editor: Api, viewer: Api, http: httpx.AsyncClient, tenant: str
) -> None:
    bad_type = await upload(editor, tenant, b"x", "a.txt", "not a type")
    assert bad_type.status_code == 422 and error_code(bad_type) == "invalid_upload"
    assert "media type" in bad_type.json()["error"]["detail"]
    too_big = await upload(
        editor, tenant, b"x" * (10 * 1024 * 1024 + 1), "big.bin", "application/octet-stream"
    )
    assert too_big.status_code == 413 and error_code(too_big) == "file_too_large"
    assert "10 MB" in too_big.json()["error"]["detail"]
    assert (await upload(viewer, tenant, b"x", "a.txt", "text/plain")).status_code == 403
    anonymous = await http.post(files_path(tenant), params={"name": "a"}, content=b"x")
    assert anonymous.status_code == 401
    # Neither text nor a file: nothing to send.
    empty = await editor.post(
        f"/v1/tenants/{tenant}/users/web/alice/agents/support/messages", {"text": ""}
    )
    assert empty.status_code == 422


# Canned replies ------------------------------------------------------------------------------


def canned_path(tenant: str, reply_id: str | None = None) -> str:
    base = f"/v1/tenants/{tenant}/canned-replies"
    return f"{base}/{reply_id}" if reply_id else base


async def test_canned_replies_are_managed_per_tenant_and_audited(
    http: httpx.AsyncClient, editor: Api, viewer: Api, token: TokenFactory, bus: Bus, tenant: str
) -> None:
    assert (await viewer.get(canned_path(tenant))).json() == {"items": []}
    body = {"title": "Refund timing", "text": "Refunds reach your card in 3-5 working days."}
    put = await editor.put(canned_path(tenant, "refund"), body)
    assert put.status_code == 200, put.text
    item = put.json()
    assert (item["id"], item["title"], item["text"], item["updated_by"]) == (
        "refund",
        "Refund timing",
        body["text"],
        "operator:jane",
    )
    await editor.put(
        canned_path(tenant, "greeting"), {"title": "Greeting", "text": "Hi, how can I help?"}
    )
    listed = (await viewer.get(canned_path(tenant))).json()["items"]
    assert [i["id"] for i in listed] == ["greeting", "refund"]  # by title
    # Another tenant sees none of them, and cannot touch them.
    other = Api(http, token("editor", tenant=f"{tenant}x"))
    assert (await other.get(canned_path(f"{tenant}x"))).json() == {"items": []}
    assert (await other.get(canned_path(tenant))).status_code == 404
    assert (await other.put(canned_path(tenant, "refund"), body)).status_code == 404

    deleted = await editor.http.delete(canned_path(tenant, "refund"), headers=editor._headers(None))
    assert deleted.status_code == 204
    assert [i["id"] for i in (await viewer.get(canned_path(tenant))).json()["items"]] == [
        "greeting"
    ]
    gone = await editor.http.delete(canned_path(tenant, "refund"), headers=editor._headers(None))
    assert gone.status_code == 404 and error_code(gone) == "canned_reply_not_found"

    def audited(action: str) -> Any:
        return lambda v: (
            v.get("type") == "operator_action"
            and v.get("tenant_id") == tenant
            and v.get("action") == action
            and v.get("target") == "canned_reply:refund"
        )

    [update] = await bus.wait_for(bus.topics.events, audited("canned_reply_update"))
    assert update["actor"] == "operator:jane" and "text" not in update
    [delete] = await bus.wait_for(bus.topics.events, audited("canned_reply_delete"))
    assert delete["outcome"] == "deleted"


async def test_canned_reply_refusals(editor: Api, viewer: Api, tenant: str) -> None:
    body = {"title": "Hi", "text": "Hello!"}
    assert (await viewer.put(canned_path(tenant, "hi"), body)).status_code == 403
    for bad in ({"title": "", "text": "x"}, {"title": "x", "text": ""}, {"title": "x"}):
        assert (await editor.put(canned_path(tenant, "hi"), bad)).status_code == 422, bad
    bad_id = await editor.put(canned_path(tenant, "no spaces"), body)
    assert bad_id.status_code == 422


async def test_presence_holds_only_briefly(store: ModeStore, tenant: str) -> None:
    """Composing lasts its hold after the last heartbeat, a reply its own (longer) one."""
    presence = PresenceStore(store, composing_ms=300, replied_ms=900)
    ikey = Who(tenant, "support").key
    await presence.mark(ikey, "jane", "Jane", "composing")
    await presence.mark(ikey, "omar", "Omar", "replied")
    assert [(t.sub, t.activity) for t in await presence.others(ikey, "ada")] == [
        ("omar", "replied"),
        ("jane", "composing"),
    ]

    async def only(subs: list[str]) -> bool:
        return [t.sub for t in await presence.others(ikey, "ada")] == subs

    await eventually(lambda: only(["omar"]), timeout=5)  # Jane's hold ran out first
    await eventually(lambda: only([]), timeout=5)
    # Once nobody is at it, the key itself is gone (its TTL, the longest hold).
    await eventually(lambda: _gone(store, presence_key(ikey)), timeout=5)


async def _gone(store: ModeStore, key: str) -> bool:
    return not await store.redis.exists(key)


async def test_a_tenant_has_at_most_its_limit_of_canned_replies(
    store: ModeStore, tenant: str
) -> None:
    canned = CannedReplies(store, max_replies=2)

    def reply(reply_id: str, text: str = "Hello") -> CannedReply:
        return CannedReply(reply_id, reply_id.title(), text, "2026-12-01T00:00:00Z", "operator:t")

    assert await canned.put(tenant, reply("a"), []) == "created"
    assert await canned.put(tenant, reply("b"), []) == "created"
    assert await canned.put(tenant, reply("c"), []) == "too_many"
    assert await canned.put(tenant, reply("a", "Hi again"), []) == "replaced"  # not a new one
    assert [(r.id, r.text) for r in await canned.list(tenant)] == [
        ("a", "Hi again"),
        ("b", "Hello"),
    ]
    assert await canned.delete(tenant, "c", []) == "not_found"
    assert await canned.delete(tenant, "a", []) == "deleted"
    assert await canned.put(tenant, reply("c"), []) == "created"
