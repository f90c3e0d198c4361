"""The web chat gateway on the real stack: identity, uploads, the SSE stream, and the page in
Debian's Chromium (Playwright): a user asks for a person, sees the notice, sends a file that
reaches the human queue with its attachment, and gets the desk's reply."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devstack.harness.events import Who, key_of
from devstack.harness.sandbox import NOTICE, publish_known
from services.webchat import identity
from tests.e2e.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.integration


def png(width: int = 96, height: int = 64) -> bytes:
    """A small real PNG (a colour gradient), so the page shows a thumbnail."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + x * 2, 80 + y * 2, 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.webchat_url, timeout=20) as client:
        yield client


async def test_a_page_gets_a_signed_user_id_and_dev_setup_may_name_the_user(
    http: httpx.AsyncClient, tenant: str
) -> None:
    page = await http.get("/", params={"tenant": tenant})
    assert page.status_code == 200 and "/static/chat.js" in page.text
    cookie = page.cookies[identity.COOKIE]
    user = cookie.rsplit(".", 1)[0]
    assert user.startswith("visitor-")

    same = await http.get("/api/session", params={"tenant": tenant})
    assert same.json() == {
        "tenant": tenant,
        "agent": "support",
        "channel": "web",
        "user": user,
        "live_test": False,
    }
    named = await http.get("/api/session", params={"user": "alice", "live_test": "1"})
    assert named.json()["user"] == "alice" and named.json()["live_test"] is True

    http.cookies.set(identity.COOKIE, "mallory.forged-signature")
    forged = await http.get("/api/session")
    assert forged.json()["user"].startswith("visitor-") and forged.json()["user"] != "mallory"
    bad = await http.get("/api/session", params={"tenant": "no spaces"})
    assert bad.status_code == 422


async def test_uploads_are_stored_and_served_without_sniffing(http: httpx.AsyncClient) -> None:
    sent = await http.post(
        "/api/files",
        params={"name": "../../etc/notes.txt"},
        content=b"hello file",
        headers={"content-type": "text/plain"},
    )
    assert sent.status_code == 201
    attachment = sent.json()
    assert attachment["name"] == "notes.txt" and attachment["size"] == 10
    assert attachment["url"].startswith(str(http.base_url).rstrip("/") + "/files/")

    got = await http.get(attachment["url"])
    assert got.content == b"hello file"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("attachment")
    assert (await http.get("/files/0123/notes.txt")).status_code == 404
    too_big = await http.post("/api/files", content=b"x" * (10 * 1024 * 1024 + 1))
    assert too_big.status_code == 413


class Events:
    """The SSE events of one stream, as they arrive."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._queue: asyncio.Queue[None] = asyncio.Queue()

    async def read(self, response: httpx.Response) -> None:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                self.seen.append((event, json.loads(line.removeprefix("data: "))))
                self._queue.put_nowait(None)

    async def wait(self, count: int, within: float = 20) -> None:
        async with asyncio.timeout(within):
            while len(self.seen) < count:
                await self._queue.get()


async def test_messages_go_to_chat_inbound_and_answers_come_back_on_the_stream(
    stack: Stack, http: httpx.AsyncClient, tenant: str
) -> None:
    who = Who(tenant, "support", user="bob")
    await publish_known(stack.store, who)
    query = {"tenant": tenant, "user": "bob"}
    events = Events()
    async with http.stream("GET", "/api/stream", params=query) as stream:
        reader = asyncio.create_task(events.read(stream))
        await events.wait(1)
        assert events.seen[0][0] == "ready"

        sent = await http.post(
            "/api/messages", params=query, json={"text": "hello", "event_id": "web-1"}
        )
        assert sent.status_code == 202 and sent.json()["event_id"] == "web-1"
        await events.wait(2)
        reader.cancel()

    name, message = events.seen[1]
    assert name == "message" and message["sender"] == "ai"
    assert message["in_reply_to"] == "web-1" and message["text"].startswith("Hello")
    _, routed = await stack.bus.wait_routed("web-1")
    assert key_of(routed) == who.key and routed["message"]["user"]["channel"] == "web"
    empty = await http.post("/api/messages", params=query, json={"text": "  "})
    assert empty.status_code == 422
    unknown = await http.post("/api/messages", params=query, json={"attachments": ["f" * 32]})
    assert unknown.status_code == 422


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


async def test_webchat_in_chromium_handoff_file_and_desk_reply(
    stack: Stack, browser: Browser, tenant: str, tmp_path: Path
) -> None:
    t, bus = stack.bus.topics, stack.bus
    who = Who(tenant, "support", user="alice")
    await publish_known(stack.store, who)
    expect.set_options(timeout=20_000)
    context = await browser.new_context(viewport={"width": 900, "height": 760})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(f"{stack.webchat_url}/?tenant={tenant}&agent=support&user=alice")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#answering")).to_have_attribute("data-by", "ai")

        await page.fill("#text", "Hi! When are you open?")
        await page.press("#text", "Enter")
        await expect(page.locator('.msg[data-sender="ai"] .bubble')).to_contain_text(
            "Monday to Friday"
        )
        await page.fill("#text", "I want to talk to a person")
        await page.click("#send")
        notice = page.locator('.msg[data-sender="system"] .bubble')
        await expect(notice).to_contain_text(NOTICE)  # then the place in line (R16)
        await shot(page, "1-handoff-notice")

        photo = tmp_path / "damage.png"
        photo.write_bytes(png())
        await page.set_input_files("#file", str(photo))
        await expect(page.locator('.chip[data-state="ready"]')).to_have_count(1)
        await page.fill("#text", "Here is a photo of the damage.")
        await page.click("#send")
        await expect(page.locator('.msg[data-sender="user"] .file .name').last).to_have_text(
            "damage.png"
        )

        routed = await bus.wait_for(
            t.human_queue,
            lambda v: (
                v.get("type") == "routed_message"
                and key_of(v) == who.key
                and v["message"]["text"] == "Here is a photo of the damage."
            ),
        )
        [attachment] = routed[0]["message"]["attachments"]
        assert attachment["name"] == "damage.png" and attachment["content_type"] == "image/png"
        async with httpx.AsyncClient() as client:
            assert (await client.get(attachment["url"])).content == photo.read_bytes()
        assert routed[0]["routing"]["mode"] == "human"
        await shot(page, "2-file-sent-to-the-desk")

        reply = stack.cli(
            "desk", "reply", "--tenant", tenant, "--agent", "support", "--user", "alice",
            "Hi, I'm Jane from support. I can see the photo; a replacement is on its way.",
            cwd=tmp_path,
        )  # fmt: skip
        assert reply.returncode == 0, reply.stdout + reply.stderr
        human = page.locator('.msg[data-sender="human"]')
        await expect(human.locator(".bubble")).to_contain_text("Jane from support")
        await expect(human.locator(".tag")).to_have_text("Human")
        await shot(page, "3-desk-reply")
        ai_after = [
            m
            for m in bus.on(t.outbound, lambda v: key_of(v) == who.key)
            if m["sender"] == "ai" and m["sent_at"] > routed[0]["routing"]["human_since"]
        ]
        assert not ai_after
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
