"""The web chat keeps its history (issue 14): the page loads the conversation from the
gateway (the transcript the system records, for the cookie's identity only), so a reload
shows every message as sent, tabs of one user stay in sync, a desk reply does not drop the
user's own message, and the header says who is answering, never internal ids."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from devstack.harness.events import Who
from devstack.harness.sandbox import NOTICE, publish_known, wait_until
from services.handoff.service.commands import CommandService
from services.handoff.service.ticket_actions import (
    ActionRequest,
    ActionResult,
    Caller,
    TicketActions,
)
from services.handoff.state.keys import InteractionKeys
from tests.e2e.conftest import ARTIFACTS, Stack
from tests.support.browser import axe_violations

pytestmark = pytest.mark.integration

DESKTOP = {"width": 1360, "height": 860}
PHONE = {"width": 390, "height": 844}


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


async def claim(stack: Stack, who: Who, sub: str, name: str) -> None:
    """A teammate claims the user's ticket (the ticket use case the API's claim calls)."""
    ticket_id = await stack.store.redis.hget(InteractionKeys(who.key).state, "ticket_id")
    actions = TicketActions(stack.store, CommandService(stack.store, 3000, 20), 3000, 300_000)
    result = await actions.act(
        who.tenant,
        ticket_id,
        ActionRequest(action="claim", display_name=name),
        Caller(sub, f"operator:{sub}", "editor", None),
    )
    assert isinstance(result, ActionResult), result


async def test_a_reload_loads_the_conversation_from_the_server(
    stack: Stack, browser: Browser, tenant: str
) -> None:
    who = Who(tenant, "support", user="carol")
    await publish_known(stack.store, who)
    expect.set_options(timeout=20_000)
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    url = f"{stack.webchat_url}/?tenant={tenant}&agent=support&user=carol"
    try:
        await page.goto(url)
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        head = page.locator(".chat-head")
        await expect(page.locator("#answering")).to_have_attribute("data-by", "ai")
        await expect(head).not_to_contain_text(tenant)
        await expect(head).not_to_contain_text("You are")

        await page.fill("#text", "Hi! When are you open?")
        await page.press("#text", "Enter")
        await expect(page.locator('.msg[data-sender="ai"] .bubble')).to_contain_text("Monday")
        await page.fill("#text", "I want to talk to a person")
        await page.press("#text", "Enter")
        await expect(page.locator('.msg[data-sender="system"] .bubble').first).to_contain_text(
            NOTICE
        )
        await expect(page.locator("#answering")).to_have_attribute("data-by", "waiting")
        await expect(page.locator("#answering")).to_contain_text("teammate")

        # A second tab of the same user sees what the first sends, and the other way round.
        other = await context.new_page()
        await other.goto(url)
        await expect(other.locator('.msg[data-sender="user"]')).to_have_count(2)
        await other.fill("#text", "Sent from my other tab")
        await other.press("#text", "Enter")
        await expect(page.locator('.msg[data-sender="user"] .bubble').last).to_have_text(
            "Sent from my other tab"
        )

        await claim(stack, who, "jane", "Jane Doe")
        await expect(page.locator("#answering")).to_have_attribute("data-by", "human")
        await expect(page.locator("#answering")).to_contain_text("Jane Doe")
        reply = stack.cli(
            "desk", "reply", "--tenant", tenant, "--agent", "support", "--user", "carol",
            "Hi, Jane here. Let me look.", cwd=stack.data,
        )  # fmt: skip
        assert reply.returncode == 0, reply.stdout + reply.stderr
        human = page.locator('.msg[data-sender="human"]')
        await expect(human.locator(".bubble")).to_contain_text("Jane here")
        await expect(human.locator(".label")).to_contain_text("Jane Doe")
        await expect(human.locator(".label")).not_to_contain_text("Teammate")

        # Nothing local is trusted: without the stored copy, a reload shows it all, as sent.
        await page.evaluate("localStorage.clear()")
        await page.reload()
        users = page.locator('.msg[data-sender="user"]')
        await expect(users).to_have_count(3)
        for n in range(3):
            await expect(users.nth(n)).to_have_attribute("data-state", "sent")
        await expect(human.locator(".bubble")).to_contain_text("Jane here")
        await expect(page.locator("#answering")).to_contain_text("Jane Doe")
        await shot(page, "webchat-desktop")
        await page.set_viewport_size(PHONE)
        await shot(page, "webchat-phone")
        await other.close()
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def test_the_history_endpoint_serves_the_cookies_own_conversation_only(
    stack: Stack, tenant: str
) -> None:
    who = Who(tenant, "support", user="dave")
    await publish_known(stack.store, who)
    async with httpx.AsyncClient(base_url=stack.webchat_url, timeout=20) as http:
        dave = {"tenant": tenant, "user": "dave"}
        sent = await http.post(
            "/api/messages", params=dave, json={"text": "mine", "event_id": "h-1"}
        )
        assert sent.status_code == 202
        await stack.bus.wait_routed("h-1")

        async def turns(params: dict[str, str]) -> list[dict[str, object]]:
            got = await http.get("/api/conversation", params=params)
            assert got.status_code == 200, got.text
            return list(got.json()["turns"])

        recorded: list[dict[str, object]] = []

        async def mine_recorded() -> bool:
            recorded[:] = await turns(dave)
            return any(t["event_id"] == "h-1" for t in recorded)

        await wait_until(mine_recorded, 20, "dave's message in his transcript")
        assert [t["text"] for t in recorded if t["role"] == "user"] == ["mine"]
        # A new visitor (a fresh signed cookie) sees nothing of dave's.
        http.cookies.clear()
        assert await turns({"tenant": tenant}) == []


async def test_the_web_chat_has_no_serious_axe_violation_and_a_keyboard_attach(
    stack: Stack, browser: Browser, tenant: str
) -> None:
    who = Who(tenant, "support", user="ivy")
    await publish_known(stack.store, who)
    context = await browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = await context.new_page()
    try:
        await page.goto(f"{stack.webchat_url}/?tenant={tenant}&agent=support&user=ivy")
        await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
        await page.fill("#text", "I want to talk to a person")
        await page.press("#text", "Enter")
        await expect(page.locator('.msg[data-sender="system"]').first).to_be_visible()
        assert await axe_violations(page) == []
        # The attach button is reachable by keyboard: Tab from the page's start reaches it.
        await page.focus("body")
        reached = False
        for _ in range(6):
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement && document.activeElement.id") == "file":
                reached = True
                break
        assert reached, "the attach button is not in the tab order"
        size = await page.evaluate("getComputedStyle(document.getElementById('text')).fontSize")
        assert float(size.removesuffix("px")) >= 16  # no iOS zoom on focus
    finally:
        await context.close()
