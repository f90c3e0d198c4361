"""The web chat's edges (issue 16): `?user=` off by default, security headers on every
response, `Secure` cookies behind https, only http(s) attachment links on the page, and
uploads that fail with a 4xx, leave nothing behind and never touch the metadata."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from devstack.harness.events import Who
from devstack.services import ServiceProcess
from services.webchat import identity
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.integration

EMOJI_NAME = "😀" * 200 + ".png"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.webchat_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def public_gateway(stack: Stack) -> Iterator[str]:
    """A gateway as a deployment runs it: the settings' defaults, an https public URL."""
    env = {
        k: v
        for k, v in stack.env.items()
        if k not in ("HANDOFF_WEBCHAT_QUERY_USER", "HANDOFF_WEBCHAT_TRUST_PROXY")
    }
    env["HANDOFF_WEBCHAT_PUBLIC_URL"] = "https://chat.example"
    env["HANDOFF_WEBCHAT_DATA_DIR"] = str(stack.data / "webchat-public")
    proc = ServiceProcess("services.webchat", env, stack.data, "public")
    proc.start()
    proc.wait_ready(60)
    yield proc.url
    proc.stop()


def files_dir(stack: Stack) -> Path:
    return Path(stack.env["HANDOFF_WEBCHAT_DATA_DIR"]) / "files"


def stored(stack: Stack) -> set[str]:
    root = files_dir(stack)
    return {p.name for p in root.iterdir()} if root.exists() else set()


async def test_by_default_the_url_cannot_name_the_user_and_the_cookie_is_secure(
    public_gateway: str, tenant: str
) -> None:
    async with httpx.AsyncClient(base_url=public_gateway) as client:
        r = await client.get("/api/session", params={"tenant": tenant, "user": "alice"})
        assert r.status_code == 200
        assert r.json()["user"] != "alice" and r.json()["user"].startswith("visitor-")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(identity.COOKIE + "=") and "Secure" in cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_behind_a_trusted_https_proxy_the_cookie_is_secure(
    http: httpx.AsyncClient, tenant: str
) -> None:
    plain = await http.get("/", params={"tenant": tenant})
    assert "Secure" not in plain.headers["set-cookie"]
    http.cookies.clear()  # a new visitor: a new cookie
    proxied = await http.get("/", params={"tenant": tenant}, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in proxied.headers["set-cookie"]


@pytest.mark.parametrize(
    "path", ["/", "/api/session", "/static/chat.js", "/no-such-page", "/files/0/x"]
)
async def test_every_response_carries_the_security_headers(
    http: httpx.AsyncClient, path: str
) -> None:
    r = await http.get(path)

    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("notes.txt", "text/" + "x" * 200),
        ("notes.txt", "not a type"),
    ],
)
async def test_an_upload_with_a_bad_content_type_is_a_4xx_and_leaves_nothing(
    stack: Stack, http: httpx.AsyncClient, name: str, content_type: str
) -> None:
    before = stored(stack)

    r = await http.post(
        "/api/files", params={"name": name}, content=b"data", headers={"content-type": content_type}
    )

    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json()["detail"]
    assert stored(stack) == before


async def test_an_upload_with_a_200_emoji_name_is_stored_under_a_shortened_name(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    before = stored(stack)

    r = await http.post(
        "/api/files",
        params={"name": EMOJI_NAME},
        content=b"smile",
        headers={"content-type": "image/png"},
    )

    assert r.status_code == 201, r.text
    attachment = r.json()
    assert attachment["name"].startswith("😀") and attachment["name"].endswith(".png")
    assert len(attachment["name"]) < len(EMOJI_NAME)
    assert (await http.get(attachment["url"])).content == b"smile"
    assert stored(stack) == before | {attachment["id"]}


async def test_a_file_named_meta_json_is_a_file_not_the_metadata(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    forged = b'{"name": "../../../../etc/passwd", "content_type": "text/html"}'

    r = await http.post(
        "/api/files",
        params={"name": "meta.json"},
        content=forged,
        headers={"content-type": "application/json"},
    )

    assert r.status_code == 201, r.text
    attachment = r.json()
    assert attachment["name"] == "meta.json"
    got = await http.get(attachment["url"])
    assert got.status_code == 200 and got.content == forged
    assert got.headers["content-type"].startswith("application/json")
    sent = await http.post("/api/messages", json={"attachments": [attachment["id"]]})
    assert sent.status_code == 202, sent.text


async def test_only_http_attachment_urls_become_links_on_the_page(
    stack: Stack, browser: Browser, tenant: str
) -> None:
    who = Who(tenant, "support", user="carol")
    context = await browser.new_context()
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    try:
        await page.goto(f"{stack.webchat_url}/?tenant={tenant}&agent=support&user=carol")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")

        def attachment(name: str, url: str) -> dict[str, object]:
            kind = "image/png" if name.endswith(".png") else "application/pdf"
            return {"id": name, "name": name, "content_type": kind, "size": 10, "url": url}

        await stack.bus.send(
            stack.bus.topics.outbound,
            {
                "type": "outbound_message",
                "schema_version": 1,
                "event_id": f"desk-{uuid.uuid4().hex[:8]}",
                **who.ids(),
                "sender": "human",
                "text": "Here are the files.",
                "attachments": [
                    attachment("evil.png", "javascript:alert(document.domain)"),
                    attachment("data.pdf", "data:text/html,<script>alert(1)</script>"),
                    attachment("ok.pdf", "https://files.example/ok.pdf"),
                ],
                "sent_at": datetime.now(UTC).isoformat(),
            },
            key=who.key,
        )

        files = page.locator('.msg[data-sender="human"] .file')
        await expect(files).to_have_count(3)
        await expect(files.locator(".name")).to_have_text(["evil.png", "data.pdf", "ok.pdf"])
        hrefs = await page.eval_on_selector_all(
            ".msg .file", "els => els.map(e => e.getAttribute('href'))"
        )
        assert hrefs == [None, None, "https://files.example/ok.pdf"]
        assert await page.locator(".msg img").count() == 0
    finally:
        await context.close()
    assert not refused, refused
