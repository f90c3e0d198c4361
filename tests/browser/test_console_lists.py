"""Safe changes in the console (issue 14): lists and search of agents and users, an unknown
agent id said as such before it becomes a new agent, Publish confirmed with the diff in an
accessible dialog, the user page's transcript live, one colour per speaker everywhere, and
the state version labelled as such."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from services.handoff.domain.modes import HandoffConfig
from services.handoff.state.store import ModeStore
from tests.api.helpers import NOTICE, publish_agent, route
from tests.browser.conftest import shot
from tests.support.tickets import hand_off

pytestmark = pytest.mark.integration
WEBCHAT_CSS = Path(__file__).resolve().parents[2] / "services/webchat/static/chat.css"


async def apply(store: ModeStore, who: Who, **handoff: Any) -> int:
    config = HandoffConfig(**{"enabled": True, "notice_text": NOTICE, **handoff})
    return await store.apply_agent_version(
        who.tenant, who.agent, config, "2026-01-02T00:00:00Z", "t"
    )


async def test_agents_page_lists_the_agents_and_searches_them(
    page: Page, sign_in: Callable[..., Any], store: ModeStore, tenant: str
) -> None:
    await publish_agent(store, Who(tenant, "support"))
    await apply(store, Who(tenant, "support"), idle_timeout_minutes=5)  # v2, not live
    await apply(store, Who(tenant, "sales"))

    await sign_in(page, "viewer", hash="#/agents")
    rows = page.locator("#agent-list [data-agent]")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#agent-list [data-agent=support]")).to_contain_text("version 1 live")
    await expect(page.locator("#agent-list [data-agent=support]")).to_contain_text(
        "version 2 not published"
    )
    await expect(page.locator("#agent-list [data-agent=sales]")).to_contain_text("not published")
    await shot(page, "agents-list")

    await page.fill("#agent-search", "SAL")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-agent", "sales")
    await page.fill("#agent-search", "nobody")
    await expect(page.locator("#agent-list")).to_contain_text("No agent matches")
    await page.fill("#agent-search", "supp")
    await page.locator("#agent-list [data-agent=support] a").click()
    await expect(page).to_have_url(re.compile(r"#/agents/support$"))
    await expect(page.locator("#published-label")).to_contain_text("Live: version 1")


async def test_a_typo_in_an_agent_id_is_said_before_it_starts_a_new_agent(
    page: Page, sign_in: Callable[..., Any], store: ModeStore, tenant: str
) -> None:
    await publish_agent(store, Who(tenant, "support"))

    await sign_in(page, "editor", hash="#/agents")
    await page.fill("#agent-id", "suport")
    await page.press("#agent-id", "Enter")

    warning = page.locator("#unknown-agent")
    await expect(warning).to_contain_text("No agent named “suport” yet — create it?")
    await expect(warning.locator("a[data-suggestion=support]")).to_be_visible()
    await expect(page.locator("#settings-form")).to_have_count(0)  # nothing to apply yet
    await shot(page, "agent-unknown")
    await warning.locator("a[data-suggestion=support]").click()
    await expect(page.locator("#published-label")).to_contain_text("Live: version 1")

    await page.goto(page.url.split("#")[0] + "#/agents/new-bot")
    await expect(page.locator("#unknown-agent")).to_contain_text("No agent named “new-bot” yet")
    await page.click("#create-agent")
    await expect(page.locator("#settings-form")).to_be_visible()
    await expect(page.locator("#published-label")).to_have_text("New agent: nothing applied yet")


async def test_users_page_lists_the_users_and_searches_them(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    await publish_agent(store, Who(tenant, "support"))
    for user in ("alice", "bob", "alicia"):
        await route(bus, Who(tenant, "support", user=user), f"Hello from {user}")
    await hand_off(bus, Who(tenant, "support", user="alice"), reason="Asked for a person")

    await sign_in(page, "viewer", hash="#/users")
    rows = page.locator("#user-list tbody tr")
    await expect(rows).to_have_count(3)
    alice = page.locator("#user-list tr[data-user=alice]")
    await expect(alice.locator(".badge")).to_have_text("Human")
    await expect(page.locator("#user-list tr[data-user=bob] .badge")).to_have_text("AI")
    await shot(page, "users-list")

    await page.fill("#user-search", "ALI")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#user-list tr[data-user=bob]")).to_have_count(0)
    await alice.locator("a").click()
    await expect(page).to_have_url(re.compile(r"#/users/web/alice$"))
    await expect(page.locator("article.routing[data-agent=support]")).to_have_attribute(
        "data-mode", "human"
    )


async def test_publish_asks_first_and_shows_the_diff_in_an_accessible_dialog(
    page: Page, sign_in: Callable[..., Any], store: ModeStore, tenant: str
) -> None:
    support = Who(tenant, "support")
    await publish_agent(store, support, idle=30)
    # A notice-only change: the kind the version list used to hide.
    await apply(store, support, idle_timeout_minutes=30, notice_text="Sam will reply shortly.")

    await sign_in(page, "editor", hash="#/agents/support")
    v2 = page.locator(".version-item[data-version='2']")
    await expect(v2.locator(".version-changes")).to_have_text("Changed: Message to the user")
    publish = v2.locator("[data-action=publish]")
    await publish.click()

    dialog = page.locator("dialog[open]")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("h2")).to_have_text("Publish version 2?")
    diff = dialog.locator("table.diff tbody tr")
    await expect(diff).to_have_count(1)
    await expect(diff.first).to_contain_text("Message to the user")
    await expect(diff.first.locator(".was")).to_have_text(NOTICE)
    await expect(diff.first.locator(".now")).to_have_text("Sam will reply shortly.")
    await shot(page, "publish-diff")
    assert await page.evaluate(
        "document.querySelector('dialog[open]').contains(document.activeElement)"
    )
    for _ in range(6):  # the focus stays in the dialog
        await page.keyboard.press("Tab")
        assert await page.evaluate(
            "document.querySelector('dialog[open]').contains(document.activeElement)"
        )
    await page.keyboard.press("Escape")
    await expect(page.locator("dialog")).to_have_count(0)
    assert await publish.evaluate("el => el === document.activeElement")
    await expect(page.locator("#published-label")).to_contain_text("Live: version 1")

    await publish.click()
    await page.locator("dialog[open] button[type=submit]").click()
    await expect(v2.locator(".badge")).to_have_text("Live")
    await expect(page.locator("#published-label")).to_contain_text("Live: version 2")
    # The Publish button is gone with the dialog: the focus lands on what changed, not <body>.
    await expect(page.locator("#published-label")).to_be_focused()

    # Apply and publish asks too, with what the form would change.
    await page.fill("#f-idle", "45")
    await page.click("#apply-publish")
    await expect(page.locator("dialog[open] table.diff tbody tr")).to_have_count(1)
    await expect(page.locator("dialog[open] table.diff")).to_contain_text("Idle timeout")
    await page.keyboard.press("Escape")
    await expect(page.locator(".version-item")).to_have_count(2)  # nothing applied


async def test_the_user_page_transcript_and_cards_are_live(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=30)
    await route(bus, who, "First question")

    await sign_in(page, "viewer", hash="#/users/web/alice")
    card = page.locator("article.routing[data-agent=support]")
    await expect(card).to_have_attribute("data-mode", "ai")
    await expect(page.locator("#transcript .turn-user")).to_have_count(1)

    await route(bus, who, "Second question, while the page is open")
    await expect(page.locator("#transcript .turn-user").last).to_contain_text(
        "Second question", timeout=10_000
    )
    await hand_off(bus, who, reason="Needs a person")
    await expect(card).to_have_attribute("data-mode", "human", timeout=10_000)
    await expect(page.locator("#transcript .turn-system")).to_contain_text(NOTICE)


def _webchat_colours() -> dict[str, str]:
    css = WEBCHAT_CSS.read_text()
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", css))


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


async def test_each_speaker_has_one_colour_in_the_console_and_the_web_chat(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=30)
    await route(bus, who, "Hello")
    await sign_in(page, "viewer", hash="#/users/web/alice")
    await expect(page.locator("#transcript .turn-user")).to_have_count(1)
    chat = _webchat_colours()

    colours = await page.evaluate(
        """() => {
          const list = document.querySelector('#transcript .transcript');
          const out = {};
          for (const role of ['user', 'ai', 'human']) {
            const li = document.createElement('li');
            li.className = `turn turn-${role}`;
            const label = document.createElement('span');
            label.className = 'turn-role';
            li.append(label);
            list.append(li);
            out[role] = { bg: getComputedStyle(li).backgroundColor,
                          label: getComputedStyle(label).color };
          }
          const badge = (mode) => {
            const b = document.createElement('span');
            b.className = `badge mode-${mode}`;
            document.body.append(b);
            return getComputedStyle(b).backgroundColor;
          };
          out.badges = { ai: badge('ai'), human: badge('human') };
          return out;
        }"""
    )
    assert colours["ai"]["bg"] == _rgb(chat["ai-bg"]) == colours["badges"]["ai"]
    assert colours["human"]["bg"] == _rgb(chat["human-bg"]) == colours["badges"]["human"]
    assert colours["user"]["label"] == _rgb(chat["user"])
    assert colours["human"]["bg"] != colours["user"]["bg"] != colours["ai"]["bg"]


async def test_the_routing_card_labels_the_state_version(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support")
    await publish_agent(store, who, idle=30)
    await hand_off(bus, who, reason="Needs a person")
    await sign_in(page, "viewer", hash="#/users/web/alice")
    version = page.locator("article.routing[data-agent=support] .routing-foot .version")
    await expect(version).to_have_text("State version 1")
    await expect(version).to_have_attribute(
        "title", re.compile("changes of this user's routing.*not an agent version")
    )
