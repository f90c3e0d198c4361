"""The desk as an inbox (issue 14): longest-waiting first, the last message as the preview,
views Mine / Unassigned / All and per queue, unread counts that survive a reload (and show in
the tab title and the nav), the conversation in the URL with its draft kept, and a warning
before a teammate answers a user another teammate owns or is answering ("Omar is
replying…"); files and canned replies in the reply box; opt-in sound and desktop alerts;
Ctrl+K search; a keyboard-only claim, reply and resolve."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import Route as PlaywrightRoute

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token, route, user_path
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
    # The nav keeps the count on the console's other pages.
    await page.click("a[data-nav=queues]")
    await expect(page.locator("#queue-list")).to_be_visible()
    await expect(page.locator("a[data-nav=desk] .nav-count")).to_be_visible()
    await expect(page.locator("a[data-nav=desk] .nav-count")).to_have_text("1")
    await page.go_back()
    await expect(page.locator("#conversation h2")).to_contain_text("nina")
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
    # The focus follows to the conversation's item in the list (the list is redrawn).
    chosen = page.locator(f"#tickets .ticket[data-interaction='{first.key}']")
    await expect(chosen).to_be_focused()
    assert await focused(page) == "button"  # its focus ring shows
    await page.keyboard.press("j")
    await expect(page.locator("#conversation h2")).to_contain_text("nina")
    await expect(page.locator(f"#tickets .ticket[data-interaction='{second.key}']")).to_be_focused()
    await page.keyboard.press("r")
    await expect(page.locator("#reply-text")).to_be_focused()
    assert opened_first["ticket_id"]


# The reply box and the keyboard (issue 14) ---------------------------------------------------


def headers_of(jwt_secret: str, tenant: str, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(jwt_secret, tenant, 'editor', sub)}"}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    """Waits until `check()` is true, with a deadline: an API's answer or the page's state
    has no event to wait on, so it is asked again."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.2)  # the poll's period, not a synchronisation


async def until(page: Page, condition: str, timeout: float = 15) -> None:
    """Waits until the page's `condition` holds (page.wait_for_function polls with eval,
    which the console's CSP refuses)."""

    async def holds() -> bool:
        return bool(await page.evaluate(condition))

    await eventually(holds, timeout)


def human_reply_to(who: Who, text: str | None = None) -> Callable[[Any], bool]:
    return lambda v: bool(
        v.get("sender") == "human"
        and v.get("tenant_id") == who.tenant
        and v["user"]["external_id"] == who.user
        and (text is None or v.get("text") == text)
    )


async def test_a_teammate_replying_is_shown_and_a_second_answer_asks_first(
    page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
    api_url: str,
    jwt_secret: str,
) -> None:
    who = Who(tenant, "support", user="pia")
    await publish_queues_agent(store, who)
    await route(bus, who, "My order never came")
    await hand_off(bus, who, reason="Lost order")
    composing = f"{user_path(who)}/agents/support/composing"
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#conversation h2")).to_contain_text("pia")
    presence = page.locator("#composing")
    await expect(presence).to_have_attribute("aria-live", "polite")
    await expect(presence).to_have_text("")
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers_of(jwt_secret, tenant, "omar")
    ) as omar:
        assert (await omar.put(composing, json={"display_name": "Omar Reyes"})).status_code == 200
        await expect(presence).to_have_text("Omar Reyes is replying…")

        # Jane types: Omar's desk learns she is replying too.
        await page.fill("#reply-text", "Hi Pia, I will check")

        async def jane_composing() -> bool:
            found = (await omar.get(composing)).json()["teammates"]
            return [(t["sub"], t["activity"]) for t in found] == [("jane", "composing")]

        await eventually(jane_composing)

        # Sending while Omar composes asks first; Cancel keeps the draft. (His heartbeat again:
        # a slow machine must not let his 10 s hold run out before the click.)
        await omar.put(composing, json={"display_name": "Omar Reyes"})
        await page.click("#reply-send")
        dialog = page.locator("dialog[open]")
        await expect(dialog).to_contain_text("Omar Reyes is replying to pia")
        await dialog.locator("button[value=cancel]").click()
        await expect(page.locator("#reply-text")).to_have_value("Hi Pia, I will check")
        assert not bus.on(bus.topics.outbound, human_reply_to(who))

        # Omar answers: he "just replied", and Jane's answer still asks first.
        sent = await omar.post(
            f"{user_path(who)}/agents/support/messages", json={"text": "Omar here, on it."}
        )
        assert sent.status_code == 201
        await expect(presence).to_have_text("Omar Reyes just replied")
        await page.click("#reply-send")
        await expect(dialog).to_contain_text("Omar Reyes just replied to pia")
        await dialog.locator("button[type=submit]").click()
        await bus.wait_for(bus.topics.outbound, human_reply_to(who, "Hi Pia, I will check"))

        async def jane_replied() -> bool:
            found = (await omar.get(composing)).json()["teammates"]
            return [(t["sub"], t["activity"]) for t in found] == [("jane", "replied")]

        await eventually(jane_replied)
    await shot(page, "desk-presence")


async def test_the_reply_box_attaches_files_and_inserts_canned_replies(
    page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
    api_url: str,
    jwt_secret: str,
) -> None:
    who = Who(tenant, "support", user="ravi")
    await publish_queues_agent(store, who)
    await route(bus, who, "When do I get my money back?")
    await hand_off(bus, who, reason="Refund")
    refund = "Refunds reach your card in 3-5 working days."
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers_of(jwt_secret, tenant, "ada")
    ) as ada:
        canned = f"/v1/tenants/{tenant}/canned-replies"
        for reply_id, title, text in (
            ("refund", "Refund timing", refund),
            ("greeting", "Greeting", "Hi, how can I help?"),
        ):
            r = await ada.put(f"{canned}/{reply_id}", json={"title": title, "text": text})
            assert r.status_code == 200, r.text

    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#conversation h2")).to_contain_text("ravi")
    reply = page.locator("#reply-text")
    # `/` and a few letters offer the matching canned replies; Enter inserts the chosen one.
    await reply.press_sequentially("/ref")
    options = page.locator("#canned-options [role=option]")
    await expect(options).to_have_count(1)
    await expect(options.first).to_contain_text("Refund timing")
    await expect(reply).to_have_attribute("aria-activedescendant", "canned-option-0")
    await reply.press("Enter")
    await expect(reply).to_have_value(refund)
    await expect(options).to_have_count(0)
    # The picker, for those who do not know the shortcut.
    await page.click("#canned-open")
    await page.locator("dialog[open] [data-canned=greeting]").click()
    await expect(reply).to_have_value(f"{refund} Hi, how can I help?")
    await expect(reply).to_be_focused()

    # A file over the limit is refused in words; nothing is attached.
    huge = {
        "name": "huge.bin",
        "mimeType": "application/octet-stream",
        "buffer": b"x" * (10 * 1024 * 1024 + 1),
    }
    await page.set_input_files("#reply-file", files=[huge], timeout=60_000)  # 10 MB to pass
    await expect(page.locator("#reply-files-error")).to_have_text(
        "That file is too large: the limit is 10 MB."
    )
    await expect(page.locator("#reply-files .chip")).to_have_count(0)
    pdf = {"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 invoice"}
    await page.set_input_files("#reply-file", files=[pdf])
    await expect(page.locator("#reply-files .chip")).to_contain_text("invoice.pdf")
    await expect(page.locator("#reply-files-error")).to_have_text("")
    # Ada answers meanwhile: the conversation is redrawn, and Jane's file and text stay.
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers_of(jwt_secret, tenant, "ada")
    ) as ada:
        r = await ada.post(f"{user_path(who)}/agents/support/messages", json={"text": "Ada here."})
        assert r.status_code == 201
    await expect(page.locator("#conversation .turn-human")).to_contain_text("Ada here.")
    await expect(page.locator("#reply-files .chip")).to_contain_text("invoice.pdf")
    await expect(reply).to_have_value(f"{refund} Hi, how can I help?")
    await page.click("#reply-send")
    await expect(page.locator("dialog[open]")).to_contain_text("ada just replied to ravi")
    await page.locator("dialog[open] button[type=submit]").click()
    [_, out] = await bus.wait_for(bus.topics.outbound, human_reply_to(who), count=2)
    assert out["text"] == f"{refund} Hi, how can I help?"
    [attached] = out["attachments"]
    assert (attached["name"], attached["content_type"], attached["size"]) == (
        "invoice.pdf",
        "application/pdf",
        16,
    )
    await expect(page.locator("#conversation .turn-human .attachment")).to_contain_text(
        "invoice.pdf"
    )
    await expect(page.locator("#reply-files .chip")).to_have_count(0)
    await shot(page, "desk-reply-box")


NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  window.__asked = 0;
  window.__shown = [];
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.__shown.push({ title, body: (options || {}).body || "" });
    }
    // A browser that was never asked (the context grants the request once it is made).
    static get permission() { return window.__asked ? Real.permission : "default"; }
    static requestPermission() { window.__asked += 1; return Real.requestPermission(); }
  }
  window.Notification = Recorded;
  const Audio = window.AudioContext;
  window.__beeps = 0;
  window.AudioContext = class extends Audio {
    createOscillator() { window.__beeps += 1; return super.createOscillator(); }
  };
})();
"""


async def test_notifications_are_opt_in_and_remembered(
    browser: Browser,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
    api_url: str,
    jwt_secret: str,
) -> None:
    context = await browser.new_context(
        viewport={"width": 1360, "height": 860}, permissions=["notifications"]
    )
    await context.add_init_script(NOTIFICATION_SPY)
    page = await context.new_page()
    mine, other = Who(tenant, "support", user="kim"), Who(tenant, "support", user="lou")
    await publish_queues_agent(store, mine)
    try:
        await route(bus, mine, "Hello")
        opened = await hand_off(bus, mine, reason="Billing question")
        async with httpx.AsyncClient(
            base_url=api_url, headers=headers_of(jwt_secret, tenant, "jane")
        ) as jane:
            claimed = await jane.post(ticket_path(tenant, opened["ticket_id"], "claim"), json={})
            assert claimed.status_code == 200
        await sign_in(page, "editor", sub="jane", hash="#/desk")
        await expect(page.locator("#desk-live")).to_have_text("Live")
        sound, desktop = page.locator("#notify-sound"), page.locator("#notify-desktop")
        await expect(desktop).to_have_attribute("aria-pressed", "false")
        await expect(sound).to_have_attribute("aria-pressed", "false")
        assert await page.evaluate("window.__asked") == 0  # never asked without a click

        await desktop.click()
        await expect(desktop).to_have_attribute("aria-pressed", "true")
        assert await page.evaluate("window.__asked") == 1
        await sound.click()
        await expect(sound).to_have_attribute("aria-pressed", "true")
        beeps = await page.evaluate("window.__beeps")

        # A new ticket: a notification and a sound.
        await route(bus, other, "Hi there")
        await hand_off(bus, other, reason="Delivery")
        await expect(page.locator(f"#tickets [data-interaction='{other.key}']")).to_be_visible()
        await until(page, f"window.__shown.length === 1 && window.__beeps > {beeps}")
        assert await page.evaluate("window.__shown[0]") == {
            "title": "New conversation: lou",
            "body": "Delivery",
        }
        # A message in Mine (kim's, Jane's ticket) while lou's is open: notified.
        await page.locator(f"#tickets [data-interaction='{other.key}']").click()
        await route(bus, mine, "Any news on my invoice?")
        await until(page, "window.__shown.length === 2")
        assert await page.evaluate("window.__shown[1]") == {
            "title": "New message from kim",
            "body": "Any news on my invoice?",
        }
        # A message for a conversation that is not hers (lou's is unassigned): no notification.
        await page.locator(f"#tickets [data-interaction='{mine.key}']").click()
        await route(bus, other, "Hello again")
        await expect(
            page.locator(f"#tickets [data-interaction='{other.key}'] .unread-count")
        ).to_have_text("1")
        assert await page.evaluate("window.__shown.length") == 2

        # Remembered in this browser.
        await page.reload()
        await expect(page.locator("#notify-desktop")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#notify-sound")).to_have_attribute("aria-pressed", "true")
        await page.locator("#notify-desktop").click()
        await expect(page.locator("#notify-desktop")).to_have_attribute("aria-pressed", "false")
    finally:
        await context.close()


FOCUS_RING = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const ring = el.matches(':focus-visible') && style.outlineStyle !== 'none'
    && parseFloat(style.outlineWidth) >= 2;
  return ring ? (el.id || el.dataset.action || el.tagName.toLowerCase()) : null;
}"""


async def focused(page: Page) -> str | None:
    """The focused element's id (or action) when its focus ring shows, else None."""
    return await page.evaluate(FOCUS_RING)  # type: ignore[no-any-return]


async def test_claim_reply_resolve_with_the_keyboard_only(
    page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
) -> None:
    """The checklist path the desk serves (claim, reply, resolve), keys only, the focus ring
    visible at each step; Ctrl+K finds the conversation, E resolves after a confirmation."""
    first, wanted = Who(tenant, "support", user="abe"), Who(tenant, "support", user="tomasz")
    await publish_queues_agent(store, first)
    await route(bus, first, "Hello")
    await hand_off(bus, first, reason="Question")
    await route(bus, wanted, "My parcel is damaged")
    opened = await hand_off(bus, wanted, reason="Damaged parcel")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#conversation h2")).to_contain_text("abe")

    # Ctrl+K: a search dialog takes the focus, keeps it, and gives it back on Escape.
    await page.keyboard.press("Tab")
    before = await page.evaluate("document.activeElement.outerHTML")
    await page.keyboard.press("Control+k")
    search = page.locator("#search-dialog")
    await expect(search).to_be_visible()
    await expect(page.locator("#search-input")).to_be_focused()
    await page.keyboard.type("nobody here")
    for _ in range(6):  # the box, Close, and round again
        await page.keyboard.press("Tab")
        assert await page.evaluate(
            "document.getElementById('search-dialog').contains(document.activeElement)"
        )
    await expect(page.locator("#search-input")).to_be_focused()
    await page.keyboard.press("Escape")  # closes, even from the box with a query typed
    await expect(search).to_be_hidden()
    assert await page.evaluate("document.activeElement.outerHTML") == before

    # Found by the user's id or their message; Enter opens it, the focus on its title.
    await page.keyboard.press("Control+k")
    await page.keyboard.type("damaged")
    results = page.locator("#search-results [role=option]")
    await expect(results).to_have_count(1)
    await expect(results.first).to_contain_text("tomasz")
    await page.keyboard.press("Enter")
    await expect(page.locator("#conversation h2")).to_contain_text("tomasz")
    await expect(page.locator("#conv-title")).to_be_focused()
    assert await focused(page) == "conv-title"

    # C claims it; R goes to the reply box; Ctrl+Enter sends.
    await page.keyboard.press("c")
    await expect(page.locator("#ticket-owner")).to_have_attribute("data-assignee", "jane")
    await page.keyboard.press("r")
    await expect(page.locator("#reply-text")).to_be_focused()
    assert await focused(page) == "reply-text"
    await page.keyboard.type("We are sending a new one today.")
    await page.keyboard.press("Control+Enter")
    await bus.wait_for(
        bus.topics.outbound, human_reply_to(wanted, "We are sending a new one today.")
    )
    await expect(page.locator("#reply-text")).to_have_value("")
    await expect(page.locator("#reply-text")).to_be_focused()

    # Escape leaves the reply box for the conversation; E asks before resolving.
    await page.keyboard.press("Escape")
    await expect(page.locator("#conv-title")).to_be_focused()
    await page.keyboard.press("e")
    dialog = page.locator("dialog[open]")
    await expect(dialog).to_contain_text("Resolve tomasz's ticket")
    await expect(page.locator("#resolve-note")).to_be_focused()
    assert await focused(page) == "resolve-note"
    await page.keyboard.type("Replacement sent.")
    for _ in range(3):  # the note, Return to AI, Cancel, Resolve
        await page.keyboard.press("Tab")
    assert await focused(page) == "resolve-confirm"

    async def after_the_live_stream(answered: PlaywrightRoute) -> None:
        """The resolve's answer reaches the desk after the stream's "back on AI" (as it
        often does under load): the desk must still say who resolved it."""
        answer = await answered.fetch()
        await expect(page.locator("#closed-note")).to_contain_text("Back on AI")
        await answered.fulfill(response=answer)

    await page.route("**/resolve", after_the_live_stream)
    await page.keyboard.press("Enter")
    resolved = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "ticket_changed"
            and v.get("ticket_id") == opened["ticket_id"]
            and v.get("status") == "resolved"
        ),
    )
    assert resolved[0]["note"] == "Replacement sent."
    await expect(page.locator("#closed-note")).to_contain_text("Resolved by you")
    await expect(page.locator("#closed-note")).to_be_focused()
    assert await focused(page) == "closed-note"
    await shot(page, "desk-keyboard-walk")


async def test_search_finds_users_beyond_the_desk(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    """Ctrl+K also searches the tenant's users (the users list): one the AI has opens their
    user page."""
    waiting, with_ai = Who(tenant, "support", user="zoe-w"), Who(tenant, "support", user="zoe-a")
    await publish_queues_agent(store, waiting)
    await route(bus, waiting, "Hello")
    await hand_off(bus, waiting, reason="Question")
    await route(bus, with_ai, "Just browsing")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#conversation h2")).to_contain_text("zoe-w")
    await page.keyboard.press("Control+k")
    await page.keyboard.type("zoe")
    results = page.locator("#search-results [role=option]")
    await expect(results).to_have_count(2)
    await expect(results.nth(0)).to_contain_text("zoe-w")
    await expect(results.nth(0)).to_contain_text("Conversation")
    await expect(results.nth(1)).to_contain_text("zoe-a")
    await expect(results.nth(1)).to_contain_text("with the AI")
    await expect(page.locator("#search-input")).to_have_attribute(
        "aria-activedescendant", "search-option-0"
    )
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#search-input")).to_have_attribute(
        "aria-activedescendant", "search-option-1"
    )
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"#/users/web/zoe-a$"))


async def test_a_refused_reply_is_said_in_words(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    """A reply the API refuses (over 32 KiB) is told in words, not as the validation text."""
    who = Who(tenant, "support", user="quinn")
    await publish_queues_agent(store, who)
    await hand_off(bus, who, reason="Question")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await expect(page.locator("#conversation h2")).to_contain_text("quinn")
    await page.fill("#reply-text", "x" * 33_000)
    await page.click("#reply-send")
    toast = page.locator(".toast-error")
    await expect(toast).to_have_text(re.compile(r"^Please check the text: "))
    await expect(toast).not_to_contain_text("Invalid request")
    await expect(page.locator("#reply-text")).to_have_value("x" * 33_000)  # nothing lost
