"""The desk over HTTP: open tickets, the live stream (SSE) and replies to users."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from devstack.harness.bus import Bus
from devstack.harness.events import Who, attachment
from services.handoff.state.store import ModeStore
from tests.api.helpers import Api, error_code, publish_agent, route, user_path

pytestmark = pytest.mark.integration


class Stream:
    """The events of one desk stream, read in the background."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    async def wait(self, name: str, where: Any = lambda d: True, timeout: float = 20) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                found = [d for n, d in self.events if n == name and where(d)]
                if found:
                    return found[0]
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def desk_stream(api: Api, tenant: str) -> AsyncIterator[Stream]:
    stream = Stream()
    ready = asyncio.Event()

    async def read() -> None:
        headers = {"Authorization": f"Bearer {api.token}"}
        async with api.http.stream(
            "GET", f"/v1/tenants/{tenant}/desk/stream", headers=headers
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            name, data = "", ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and name:
                    stream.events.append((name, json.loads(data)))
                    stream.changed.set()
                    if name == "ready":
                        ready.set()
                    name, data = "", ""

    task = asyncio.create_task(read())
    try:
        async with asyncio.timeout(10):
            await ready.wait()
        yield stream
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def is_who(who: Who) -> Any:
    def match(d: dict[str, Any]) -> bool:
        ids = d.get("message", d)
        return bool(
            ids.get("tenant_id") == who.tenant
            and ids.get("agent_id") == who.agent
            and ids.get("user", {}).get("external_id") == who.user
        )

    return match


async def test_the_desk_sees_tickets_messages_and_mode_changes_live(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "I want a human")

    async with desk_stream(viewer, tenant) as stream:
        command = who.command("to_human", reason="The user asked for a person.")
        await bus.send(bus.topics.commands, command, key=who.key)  # the agent's handoff tool
        ticket = await stream.wait("ticket", is_who(who))
        assert ticket["reason"] == "The user asked for a person."
        assert next(t["text"] for t in ticket["transcript"]) == "I want a human"

        await route(bus, who, "here is the photo", attachments=[attachment(1)])
        message = await stream.wait("message", is_who(who))
        assert message["message"]["text"] == "here is the photo"
        assert message["message"]["attachments"] == [attachment(1)]
        assert message["routing"]["mode"] == "human"

        await editor.switch(who, "ai", "Sorted out.")
        back = await stream.wait("mode", lambda d: is_who(who)(d) and d["to_mode"] == "ai")
        assert back["actor"] == "operator:jane"
        activity = await stream.wait("activity", lambda d: d["action"] == "mode_switch")
        assert activity["tenant_id"] == tenant


async def test_a_desk_sees_only_its_own_tenant(
    http: httpx.AsyncClient, viewer: Api, bus: Bus, store: ModeStore, tenant: str, token: Any
) -> None:
    other = Who(f"{tenant}o", "support")
    mine = Who(tenant, "support")
    await publish_agent(store, other)
    await publish_agent(store, mine)
    async with desk_stream(viewer, tenant) as stream:
        other_editor = Api(http, token("editor", tenant=other.tenant))
        assert (await other_editor.switch(other, "human")).status_code == 200
        assert (await Api(http, token("editor")).switch(mine, "human")).status_code == 200
        await stream.wait("ticket", is_who(mine))
        assert not [d for _, d in stream.events if d.get("tenant_id") == other.tenant]


async def test_open_tickets_list_interactions_in_human_mode(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    alice, bob = Who(tenant, "support"), Who(tenant, "support", user="bob")
    await publish_agent(store, alice)
    async with desk_stream(viewer, tenant) as stream:
        for who in (alice, bob):
            assert (await editor.switch(who, "human", f"help {who.user}")).status_code == 200
            await stream.wait("ticket", is_who(who))  # indexed by every instance's feed

    r = await viewer.get(f"/v1/tenants/{tenant}/desk/tickets")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["external_id"], i["state"]["reason"]) for i in items] == [
        ("bob", "help bob"),
        ("alice", "help alice"),
    ]
    assert items[0]["interaction"] == bob.key and items[0]["state"]["mode"] == "human"

    await editor.switch(alice, "ai", "done")
    r = await viewer.get(f"/v1/tenants/{tenant}/desk/tickets")
    assert [i["external_id"] for i in r.json()["items"]] == ["bob"]


async def test_a_desk_reply_reaches_the_user_and_the_transcript(
    editor: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "hello")
    await editor.switch(who, "human", "Needs a person.")
    path = f"{user_path(who)}/agents/support/messages"

    r = await editor.post(
        path, {"text": "Hi, Jane here. Looking now.", "attachments": [attachment(7)]}
    )

    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["conversation_id"] == "c-1"  # the user's latest conversation
    [out] = await bus.wait_for(bus.topics.outbound, lambda v: v.get("event_id") == sent["event_id"])
    assert (out["sender"], out["text"], out["attachments"]) == (
        "human",
        "Hi, Jane here. Looking now.",
        [attachment(7)],
    )
    assert (out["tenant_id"], out["agent_id"], out["user"]["external_id"]) == (
        tenant,
        "support",
        "alice",
    )
    turns = await store.transcript(who.key, 5)
    assert (turns[-1]["role"], turns[-1]["text"]) == ("human", "Hi, Jane here. Looking now.")
    [audit] = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "operator_action" and v.get("command_id") == sent["event_id"],
    )
    assert (audit["action"], audit["outcome"]) == ("desk_reply", "sent")
    assert "text" not in audit


async def test_desk_reply_refusals(
    editor: Api, viewer: Api, bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    path = f"{user_path(who)}/agents/support/messages"
    missing = await editor.post(path, {"text": "hi"})
    assert missing.status_code == 404 and error_code(missing) == "interaction_not_found"
    await route(bus, who)
    on_ai = await editor.post(path, {"text": "hi"})
    assert on_ai.status_code == 409 and error_code(on_ai) == "not_in_human_mode"
    empty = await editor.post(path, {"text": ""})
    assert empty.status_code == 422
    too_many = await editor.post(
        path, {"text": "x", "attachments": [attachment(n) for n in range(21)]}
    )
    assert too_many.status_code == 422
    assert (await viewer.post(path, {"text": "hi"})).status_code == 403
