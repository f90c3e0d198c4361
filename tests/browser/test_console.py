"""The console in a real browser: switch a user to Human and back, a viewer's read-only view,
agent settings, and the desk receiving a handoff live and replying to the user."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who, attachment
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.store import ModeStore
from tests.api.helpers import NOTICE, make_token, publish_agent, route
from tests.browser.conftest import shot

pytestmark = pytest.mark.integration


async def test_sign_in_refuses_a_bad_token(page: Page, api_url: str, tenant: str) -> None:
    await page.goto(f"{api_url}/console/")
    await shot(page, "sign-in")
    await page.fill("#token-input", make_token("not-the-secret" * 4, tenant))
    await page.click("button[type=submit]")
    await expect(page.locator(".alert-error")).to_contain_text("refused")
    await expect(page.locator("#nav")).to_be_hidden()


async def test_editor_switches_a_user_to_human_and_back(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who, other = Who(tenant, "support"), Who(tenant, "billing")
    await publish_agent(store, who, idle=30)
    await route(bus, who, "Where is my order #1042?", attachments=[attachment(1)])
    await route(bus, other, "And my invoice?")

    await sign_in(page, "editor", hash="#/users/web/alice")
    card = page.locator("article.routing[data-agent=support]")
    await expect(card).to_have_attribute("data-mode", "ai")
    await expect(
        page.locator("article.routing[data-agent=billing] [data-action=to-human]")
    ).to_be_disabled()
    await card.click()  # selects the agent: its history and transcript below
    await expect(page.locator("#transcript .turn-user").first).to_contain_text("order #1042")
    await expect(page.locator("#transcript .attachment")).to_contain_text("photo-1.png")

    await card.locator("[data-action=to-human]").click()
    await page.fill("#switch-reason", "Customer asked for a person about a lost parcel.")
    await page.click("dialog button[type=submit]")

    await expect(card).to_have_attribute("data-mode", "human")
    await expect(card.locator(".badge")).to_have_text("Human")
    await expect(card.locator(".reason")).to_have_text(
        "Customer asked for a person about a lost parcel."
    )
    await expect(card.locator(".cause")).to_contain_text("operator:jane")
    await expect(card.locator(".countdown")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    await expect(page.locator("#history tbody tr")).to_have_count(1)
    await shot(page, "user-human")
    changed = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "mode_changed" and v.get("tenant_id") == tenant,
    )
    assert changed[0]["to_mode"] == "human" and changed[0]["actor"] == "operator:jane"

    await card.locator("[data-action=to-ai]").click()
    await page.fill("#switch-reason", "Parcel found; the bot can take it from here.")
    await page.click("dialog button[type=submit]")

    await expect(card).to_have_attribute("data-mode", "ai")
    await expect(card.locator(".badge")).to_have_text("AI")
    await expect(card.locator(".cause")).to_contain_text("Back on AI by operator:jane")
    await expect(page.locator("#history tbody tr")).to_have_count(2)
    await expect(page.locator("#history tbody tr").first).to_contain_text("Parcel found")
    await shot(page, "user-back-to-ai")


async def test_a_viewer_sees_no_switch_buttons(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who)
    await route(bus, who, "hello")
    command = who.command("to_human", reason="The user wants to cancel the contract.")
    await bus.send(bus.topics.commands, command, key=who.key)
    await bus.wait_for(bus.topics.events, lambda v: v.get("command_id") == command["command_id"])

    await sign_in(page, "viewer", sub="victor", hash="#/users/web/alice")

    card = page.locator("article.routing[data-agent=support]")
    await expect(card).to_have_attribute("data-mode", "human")
    await expect(card.locator(".reason")).to_have_text("The user wants to cancel the contract.")
    await expect(page.locator("#history tbody tr")).to_have_count(1)
    await expect(page.locator("[data-action]")).to_have_count(0)
    await shot(page, "user-viewer")

    await page.goto(page.url.split("#")[0] + "#/agents/support")
    await expect(page.locator("#f-enabled")).to_be_disabled()
    await expect(page.locator("#apply")).to_have_count(0)
    await expect(page.locator("[data-action=publish]")).to_have_count(0)
    await page.goto(page.url.split("#")[0] + "#/desk")
    await expect(page.locator("#desk-live")).to_have_text("Live")
    await expect(page.locator("#reply-text")).to_have_count(0)
    await expect(page.locator("#return-to-ai")).to_have_count(0)
    await expect(page.locator("#ticket-owner")).to_contain_text("owner: nobody")  # shown, and
    await expect(page.locator(".ticket-actions")).to_have_count(0)  # no actions for a viewer


async def test_agent_settings_apply_validate_and_publish(
    page: Page, sign_in: Callable[..., Any], tenant: str
) -> None:
    await sign_in(page, "editor", hash="#/agents/support")
    await page.click("#create-agent")  # an unknown id is a new agent only when asked
    await expect(page.locator("#published-label")).to_have_text("New agent: nothing applied yet")

    await page.fill("#f-idle", "0")
    await page.evaluate("document.querySelector('#f-idle').removeAttribute('min')")
    await page.click("#apply")
    await expect(page.locator('.field-error[data-for="idle_timeout_minutes"]')).to_have_text(
        "Too small: at least 1."
    )

    await page.fill("#f-idle", "30")
    await page.fill("#f-instructions", "Hand off when the user asks for a refund over 100 EUR.")
    await page.fill("#f-notice", "Sam from support will take it from here.")
    await page.click("#apply")
    await expect(page.locator(".version-item")).to_have_count(1)
    await expect(page.locator("#published-label")).to_have_text("No version published yet")
    await page.click(".version-item[data-version='1'] [data-action=publish]")
    await page.click("dialog[open] button[type=submit]")  # the confirmation
    await expect(page.locator(".version-item[data-version='1'] .badge")).to_have_text("Live")
    await expect(page.locator("#published-label")).to_contain_text(
        "Live: version 1 · Handoff on · 30 min idle timeout"
    )

    await page.uncheck("#f-enabled")
    await page.click("#apply-publish")
    await page.click("dialog[open] button[type=submit]")
    await expect(page.locator(".version-item")).to_have_count(2)
    await expect(page.locator(".version-item[data-version='2'] .badge")).to_have_text("Live")
    await expect(page.locator("#published-label")).to_contain_text("Handoff off")
    await page.click(".version-item[data-version='1'] .version-name")
    await expect(page.locator("#f-enabled")).to_be_checked()
    await shot(page, "agent-settings")


async def test_agent_form_errors_are_said_in_words_and_notices_are_bounded(
    page: Page, sign_in: Callable[..., Any]
) -> None:
    """The waiting and return messages carry the notice bound (`GET /v1/limits`) as their
    `maxlength` and a counter; a too long one (the bound lifted, as an old page would send it)
    is refused in words, not in pydantic's."""
    await sign_in(page, "editor", hash="#/agents/support")
    await page.click("#create-agent")
    for box, name in (("#f-waiting", "waiting_notice_text"), ("#f-return", "return_notice_text")):
        await expect(page.locator(box)).to_have_attribute("maxlength", "1000")
        counter = page.locator(f".field:has({box}) .counter")
        await page.fill(box, "Hello")
        await expect(counter).to_have_text("5 / 1000")
        await page.evaluate(f"document.querySelector('{box}').removeAttribute('maxlength')")
        await page.fill(box, "x" * 1001)
        await expect(counter).to_have_text("1001 / 1000")
        await page.click("#apply")
        error = page.locator(f'.field-error[data-for="{name}"]')
        await expect(error).to_have_text("Too long: at most 1000 characters (you have 1001).")
        await page.fill(box, "Back soon.")
    await page.click("#apply")
    await expect(page.locator(".version-item")).to_have_count(1)


async def test_the_joined_message_toggle_says_what_it_does(
    page: Page, sign_in: Callable[..., Any]
) -> None:
    """`announce_teammate` only sends the user "<name> from our team has joined the
    conversation."; the web chat shows who is answering whatever it says."""
    await sign_in(page, "editor", hash="#/agents/support")
    await page.click("#create-agent")
    toggle = page.locator("#f-announce")
    await expect(page.locator("label[for=f-announce]")).to_have_text(
        "Send the user a message when a teammate takes the conversation"
    )
    await expect(toggle).to_have_attribute("aria-describedby", "f-announce-hint")
    await expect(page.locator("#f-announce-hint")).to_have_text(
        "The message names them: “Sam from our team has joined the conversation.” The web "
        "chat shows who is answering, by name, either way."
    )


async def test_desk_gets_a_ticket_live_and_replies_to_the_user(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support", user="bob")
    await publish_agent(store, who, idle=60)
    await route(bus, who, "My card was charged twice for order 77.")

    await sign_in(page, "editor", hash="#/desk")
    await expect(page.locator("#desk-live")).to_have_text("Live")
    await expect(page.locator("#tickets .empty")).to_be_visible()

    command = who.command("to_human", reason="Double charge: the user wants a refund now.")
    await bus.send(bus.topics.commands, command, key=who.key)  # the agent's handoff tool

    ticket = page.locator(f"#tickets .ticket[data-interaction='{who.key}']")
    await expect(ticket).to_contain_text("Double charge: the user wants a refund now.")
    await ticket.click()
    conversation = page.locator("#conversation")
    await expect(conversation.locator(".turn-user").first).to_contain_text("charged twice")
    await expect(conversation.locator(".turn-system")).to_contain_text(NOTICE)

    await route(bus, who, "Here is the bank statement.", attachments=[attachment(3)])
    await expect(conversation.locator(".turn-user").last).to_contain_text("bank statement")
    await expect(conversation.locator(".attachment")).to_contain_text("photo-3.png")

    await page.fill("#reply-text", "Hi Bob, I see both charges. Refunding one now.")
    await page.click("#reply-send")
    await expect(conversation.locator(".turn-human")).to_contain_text("Refunding one now.")
    sent = await bus.wait_for(
        bus.topics.outbound,
        lambda v: v.get("sender") == "human" and v.get("tenant_id") == tenant,
    )
    assert sent[0]["text"] == "Hi Bob, I see both charges. Refunding one now."
    assert sent[0]["user"] == {"channel": "web", "external_id": "bob"}
    await shot(page, "desk")

    # The desk shows the ticket's queue and owner; Resolve with a note returns it to the AI.
    await expect(page.locator("#ticket-owner")).to_contain_text("Queue default · owner: nobody")
    await page.click("[data-action=resolve]")
    await page.fill("#resolve-note", "Refunded the second charge.")
    await expect(page.locator("#resolve-return")).to_be_checked()
    await page.click("dialog button[type=submit]")
    await expect(ticket).to_have_count(0)
    await expect(conversation.locator(".alert-info")).to_contain_text(
        "Resolved by you; support has the conversation again."
    )
    back = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "mode_changed"
            and v.get("tenant_id") == tenant
            and v.get("to_mode") == "ai"
        ),
    )
    assert back[0]["actor"] == "operator:jane"
    [resolved] = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "ticket_changed"
            and v.get("tenant_id") == tenant
            and v.get("status") == "resolved"
        ),
    )
    assert resolved["note"] == "Refunded the second charge."


async def test_apply_keeps_the_settings_of_the_version_it_edits(
    page: Page, sign_in: Callable[..., Any], store: ModeStore, tenant: str
) -> None:
    """Found from outside: Apply on an unchanged form dropped the version's queues, so billing
    handoffs went to the default queue."""
    config = HandoffConfig(
        enabled=True,
        notice_text=NOTICE,
        queues=("default", "billing"),
        out_of_hours="stay_with_ai",
        announce_teammate=True,
    )
    n = await store.apply_agent_version(tenant, "support", config, "2026-01-01T00:00:00Z", "t")
    await store.publish_agent_version(tenant, "support", n)
    await sign_in(page, "editor", hash="#/agents/support")
    await expect(page.locator("#f-queues")).to_have_value("default, billing")

    await page.click("#apply")

    await expect(page.locator(".version-item")).to_have_count(2)
    versions, _ = await store.agent_versions(tenant, "support")
    kept = versions[-1].handoff
    assert (kept.queues, kept.out_of_hours, kept.announce_teammate) == (
        config.queues,
        "stay_with_ai",
        True,
    )
