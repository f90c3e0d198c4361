"""The desk's idle countdown follows the server's expiry (R19): a teammate's reply or claim
moves the expiry a whole timeout ahead, and every desk open on the conversation shows the moved
expiry (the replying one from the reply's answer, the others from the stream), so the "Back
to the AI in 00:15" warning never comes early. The tests' minute is one second."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import redis_now_ms
from services.handoff.state.store import ModeStore
from tests.browser.test_desk_inbox import eventually, human_reply_to, until
from tests.support.tickets import hand_off, publish_queues_agent

pytestmark = pytest.mark.integration

COUNTDOWN = "#conversation .conv-head .countdown"


def seconds_of(text: str) -> int:
    """`MM:SS` or `H:MM:SS` (ui.js countdown) in seconds."""
    total = 0
    for part in text.strip().split(":"):
        total = total * 60 + int(part)
    return total


async def expires_ms(store: ModeStore, who: Who) -> int:
    due = (await store.read_state(who.key)).expires_at_ms
    assert due is not None
    return due


async def shows_expiry(page: Page, store: ModeStore, who: Who) -> None:
    """The page's countdown says what is left until the server's expiry (to the second)."""

    async def matches() -> bool:
        text = await page.locator(COUNTDOWN).text_content()
        left = ((await expires_ms(store, who)) - (await redis_now_ms(store))) / 1000
        return text is not None and abs(seconds_of(text) - left) <= 1.5

    await eventually(matches)


async def later_than(page: Page, at_ms: int) -> None:
    """Waits until the page's clock (the machine's, as Redis's) has passed `at_ms`."""
    await until(page, f"Date.now() > {at_ms}", timeout=120)


async def test_a_reply_moves_the_countdown_and_the_warning_does_not_come_early(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support", user="hana")
    await publish_queues_agent(store, who, idle_timeout_minutes=75)
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await hand_off(bus, who, reason="Wants a person")
    await expect(page.locator("#conversation h2")).to_contain_text("hana")
    handed = await expires_ms(store, who)
    await shows_expiry(page, store, who)

    # Ten seconds on, Jane replies: the server moves the expiry a whole timeout ahead.
    await later_than(page, handed - 75_000 + 10_000)
    await page.fill("#reply-text", "Hello Hana, I am here")
    await page.click("#reply-send")
    await bus.wait_for(bus.topics.outbound, human_reply_to(who, "Hello Hana, I am here"))
    moved = await expires_ms(store, who)
    assert moved >= handed + 9_000
    await shows_expiry(page, store, who)

    # The old expiry's warning time passes: no warning, the user has just been answered.
    await later_than(page, handed - 60_000 + 2_500)
    await expect(page.locator(COUNTDOWN)).to_be_visible()
    await expect(page.locator("#idle-warning .alert-warn")).to_have_count(0)
    await shows_expiry(page, store, who)


async def test_a_teammates_claim_and_reply_move_the_countdown_on_every_desk(
    page: Page,
    second_page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
) -> None:
    who = Who(tenant, "support", user="ivo")
    await publish_queues_agent(store, who, idle_timeout_minutes=300)
    await hand_off(bus, who, reason="Wants a person")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await sign_in(second_page, "editor", sub="omar", hash="#/desk")
    for p in (page, second_page):
        await expect(p.locator("#desk-live")).to_have_text("Live")
        await expect(p.locator("[data-action=claim]")).to_be_visible()
    handed = await expires_ms(store, who)
    for p in (page, second_page):
        await shows_expiry(p, store, who)

    # Jane claims five seconds on: the expiry moves, on her desk and on Omar's.
    await later_than(page, handed - 300_000 + 5_000)
    await page.click("[data-action=claim]")
    await expect(second_page.locator("#ticket-owner")).to_have_attribute("data-assignee", "jane")
    claimed = await expires_ms(store, who)
    assert claimed >= handed + 4_000
    for p in (page, second_page):
        await shows_expiry(p, store, who)

    # Five seconds later she replies: moved again, on both desks.
    await later_than(page, claimed - 300_000 + 5_000)
    await page.fill("#reply-text", "Hi Ivo, Jane here")
    await page.click("#reply-send")
    await bus.wait_for(bus.topics.outbound, human_reply_to(who, "Hi Ivo, Jane here"))
    replied = await expires_ms(store, who)
    assert replied >= claimed + 4_000
    for p in (page, second_page):
        await shows_expiry(p, store, who)
