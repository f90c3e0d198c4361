"""Accessibility as a test (issue 14): axe-core on every console page, zero serious or
critical violations, and a screenshot of each at desktop (1360x860) and phone (390x844)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.canned import CannedReplies, CannedReply
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token, publish_agent, route
from tests.browser.conftest import ARTIFACTS
from tests.support.browser import axe_violations
from tests.support.tickets import hand_off

pytestmark = pytest.mark.integration

PAGES = {
    "users": "#/users",
    "agents": "#/agents",
    "agent": "#/agents/support",
    "agent-unknown": "#/agents/suport",
    "user": "#/users/web/ann",
    "desk": "#/desk",
    "queues": "#/queues",
    "analytics": "#/analytics",
}


async def test_every_console_page_has_no_serious_axe_violation(
    browser: Browser, bus: Bus, store: ModeStore, tenant: str, api_url: str, jwt_secret: str
) -> None:
    who = Who(tenant, "support", user="ann")
    await publish_agent(store, who)
    config = HandoffConfig(enabled=True, notice_text="Sam will reply shortly.")
    await store.apply_agent_version(tenant, "support", config, "2026-01-02T00:00:00Z", "t")
    await route(bus, who, "I need help with my order")
    await hand_off(bus, who, reason="Order problem")
    await CannedReplies(store, 10).put(
        tenant, CannedReply("greeting", "Greeting", "Hi, how can I help?", "", "operator:t"), []
    )
    context = await browser.new_context(viewport={"width": 1360, "height": 860}, bypass_csp=True)
    page = await context.new_page()
    found: dict[str, list[str]] = {}
    try:
        await page.goto(f"{api_url}/console/")
        found["sign-in"] = await axe_violations(page)
        await page.fill("#token-input", make_token(jwt_secret, tenant, "editor", "jane"))
        await page.click("button[type=submit]")
        await expect(page.locator("#who-role")).to_have_text("editor")
        for name, hash in PAGES.items():
            await page.goto(f"{api_url}/console/{hash}")
            await expect(page.locator("#main h1").first).to_be_visible()
            await page.wait_for_load_state("networkidle")
            found[name] = await axe_violations(page)
            if name == "user":  # the state version is labelled, not a bare "v4"
                await expect(page.locator(".routing-foot .version").first).to_have_text(
                    re.compile(r"^State version \d+$")
                )
            if name == "desk":  # the reply box's list, the search dialog, an attached file
                await page.locator("#reply-text").press_sequentially("/gre")
                await expect(page.locator("#canned-options [role=option]")).to_have_count(1)
                await page.set_input_files(
                    "#reply-file",
                    files=[{"name": "a.png", "mimeType": "image/png", "buffer": b"png"}],
                )
                await expect(page.locator("#reply-files .chip")).to_have_count(1)
                found["desk-reply-box"] = await axe_violations(page)
                await page.keyboard.press("Escape")
                await page.keyboard.press("Control+k")
                await page.keyboard.type("ann")
                await expect(page.locator("#search-results [role=option]")).to_have_count(1)
                found["desk-search"] = await axe_violations(page)
                await page.keyboard.press("Escape")
                await expect(page.locator("#search-dialog")).to_have_count(0)
            if name in ("users", "agents"):  # their lists, loaded
                await expect(
                    page.locator("#user-list tbody tr, #agent-list [data-agent]").first
                ).to_be_visible()
            for size, viewport in (("desktop", (1360, 860)), ("phone", (390, 844))):
                await page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
                await page.screenshot(path=str(ARTIFACTS / f"a11y-{name}-{size}.png"))
            await page.set_viewport_size({"width": 1360, "height": 860})
        # The Publish confirmation, open: the dialog with its diff.
        await page.goto(f"{api_url}/console/#/agents/support")
        await page.locator(".version-item[data-version='2'] [data-action=publish]").click()
        await expect(page.locator("dialog[open] table.diff")).to_be_visible()
        found["publish-dialog"] = await axe_violations(page)
        await page.screenshot(path=str(ARTIFACTS / "a11y-publish-dialog-desktop.png"))
    finally:
        await context.close()
    assert not {k: v for k, v in found.items() if v}, found
