"""The desk as an inbox (issue 14): longest-waiting first, the last message as the preview,
views Mine / Unassigned / All and per queue, unread counts that survive a reload (and show in
the tab title and the nav), the conversation in the URL with its draft kept, and a warning
before a teammate answers a user another teammate owns."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token, route
from tests.browser.conftest import shot
from tests.support.tickets import hand_off, publish_queues_agent, ticket_path

pytestmark = pytest.mark.integration


async def test_the_desk_is_an_inbox(
    page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
    api_url: str,
    jwt_secret: str,
) -> None:
    first, second = Who(tenant, "support", user="olga"), Who(tenant, "support", user="nina")
    await publish_queues_agent(store, first)
    await route(bus, first, "Where is my parcel?")
    opened_first = await hand_off(bus, first, reason="Parcel lost")
    await route(bus, second, "I was charged twice")
    opened_second = await hand_off(bus, second, queue="billing", reason="Double charge")
    omar = {"Authorization": f"Bearer {make_token(jwt_secret, tenant, 'editor', 'omar')}"}
    async with httpx.AsyncClient(base_url=api_url, headers=omar) as api:
        claimed = await api.post(
            ticket_path(tenant, opened_second["ticket_id"], "claim"),
            json={"display_name": "Omar"},
        )
        assert claimed.status_code == 200, claimed.text
    await route(bus, first, "It has been two weeks now")

    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#desk-live")).to_have_text("Live")
    await expect(page.locator("#desk-announce")).to_have_attribute("aria-live", "polite")
    tickets = page.locator("#tickets .ticket")
    # Longest-waiting first; the preview is the last message, not the handoff reason.
    await expect(tickets).to_have_count(2)
    await expect(tickets.nth(0)).to_have_attribute("data-interaction", first.key)
    await expect(tickets.nth(0).locator(".ticket-preview")).to_have_text(
        "It has been two weeks now"
    )
    # Views: Unassigned has olga's, Mine none (omar owns nina's), per queue billing: nina's.
    await page.click("#desk-views [data-view=unassigned]")
    await expect(tickets).to_have_count(1)
    await expect(tickets.first).to_have_attribute("data-interaction", first.key)
    await page.click("#desk-views [data-view=mine]")
    await expect(tickets).to_have_count(0)
    await page.click("#desk-views [data-view='queue:billing']")
    await expect(tickets).to_have_count(1)
    await expect(tickets.first).to_have_attribute("data-interaction", second.key)
    await page.click("#desk-views [data-view=all]")
    await expect(tickets).to_have_count(2)

    # The conversation is in the URL; its draft survives a reload.
    await tickets.nth(1).click()
    await expect(page).to_have_url(re.compile(r"#/desk\?c="))
    await page.fill("#reply-text", "Hi Nina, looking into the charge")
    # A message for olga while nina's is open: unread, counted in the title and the nav.
    await route(bus, first, "Hello? Anyone?")
    unread = tickets.nth(0).locator(".unread-count")
    await expect(unread).to_have_text("1")
    await expect(page).to_have_title(re.compile(r"^\(1\) "))
    await expect(page.locator("a[data-nav=desk] .nav-count")).to_have_text("1")
    await page.reload()
    await expect(page.locator("#desk-live")).to_have_text("Live")
    await expect(page.locator("#conversation h2")).to_contain_text("nina")
    await expect(page.locator("#reply-text")).to_have_value("Hi Nina, looking into the charge")
    await expect(tickets.nth(0).locator(".unread-count")).to_have_text("1")

    # Omar owns nina's ticket: Jane is warned before answering, and may cancel.
    await page.click("#reply-send")
    dialog = page.locator("dialog[open]")
    await expect(dialog).to_contain_text("Omar")
    await dialog.locator("button.secondary, button[value=cancel]").first.click()
    await expect(page.locator("#reply-text")).to_have_value("Hi Nina, looking into the charge")
    await expect(page.locator("#reply-text")).to_be_focused()
    # A dialog closed with Escape gives the focus back to what opened it.
    await page.locator("[data-action=assign]").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("dialog[open]")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("dialog[open]")).to_have_count(0)
    await expect(page.locator("[data-action=assign]")).to_be_focused()
    await shot(page, "desk-inbox")
    await page.set_viewport_size({"width": 390, "height": 844})
    await shot(page, "desk-inbox-phone")

    # Keyboard: K opens the previous conversation (olga's, which reads it), J the next, R the
    # reply box.
    await page.set_viewport_size({"width": 1360, "height": 860})
    await page.locator("#desk-views [data-view=all]").focus()
    await page.keyboard.press("k")
    await expect(page.locator("#conversation h2")).to_contain_text("olga")
    await expect(page.locator("#tickets .unread-count")).to_have_count(0)
    await page.keyboard.press("j")
    await expect(page.locator("#conversation h2")).to_contain_text("nina")
    await page.keyboard.press("r")
    await expect(page.locator("#reply-text")).to_be_focused()
    assert opened_first["ticket_id"]
