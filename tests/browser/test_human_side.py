"""The human side in a real browser: the queue pages, a claim from the desk (and a second
teammate's claim losing, told in words), and the analytics page drawing its charts from real
data, under the console's strict CSP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from devstack.harness.bus import Bus
from devstack.harness.events import Who
from devstack.harness.sandbox import redis_now_ms
from services.handoff.state.store import ModeStore
from tests.api.helpers import make_token
from tests.browser.conftest import shot
from tests.support.analytics import TicketLife, human_reply, mode_changed, settled
from tests.support.tickets import hand_off, publish_queues_agent

pytestmark = pytest.mark.integration


def csp_violations(page: Page) -> list[str]:
    """Console messages of content the CSP refused (the console must need none)."""
    found: list[str] = []
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return found


async def test_queue_page_creates_a_queue_and_shows_a_waiting_ticket(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    refused = csp_violations(page)
    await sign_in(page, "editor", hash="#/queues")
    await expect(page.locator("#queue-list [data-queue=default]")).to_be_visible()
    await page.fill("#new-queue", "billing")
    await page.click("#new-queue-form button[type=submit]")
    await expect(page.locator("#queue-save")).to_have_text("Create queue")
    await page.fill("#queue-display-name", "Billing")
    await page.fill("#queue-timezone", "Europe/Berlin")
    await page.uncheck("#queue-always-open")
    for day in ("mon", "tue", "wed", "thu", "fri"):
        await page.fill(f"#queue-hours-{day}", "00:00-24:00")
    await page.fill("#queue-hours-sat", "10:00-14:00")
    await page.fill("#queue-closed-dates", "2026-12-24\n2026-12-25")
    await page.fill("#queue-pickup-minutes", "5")
    await page.select_option("#queue-on-no-pickup", "notify")
    await page.click("#queue-save")
    await expect(page.locator(".toast-success")).to_contain_text("Queue billing saved.")
    await expect(page.locator("#queue-save")).to_have_text("Save")

    await page.click("a[data-nav=queues]")
    item = page.locator("#queue-list [data-queue=billing]")
    await expect(item).to_contain_text("Billing")
    await expect(item).to_contain_text("Europe/Berlin · pickup within 5 min")

    who = Who(tenant, "support", user="erin")
    await publish_queues_agent(store, who)
    opened = await hand_off(bus, who, queue="billing", reason="Charged twice for one order")
    await item.locator("a").click()
    row = page.locator(f"#queue-tickets tr[data-ticket='{opened['ticket_id']}']")
    await expect(row.locator(".position")).to_have_text("1")
    await expect(row).to_contain_text("erin")
    await expect(row).to_contain_text("Waiting")
    await expect(row).to_contain_text("Charged twice for one order")
    await expect(row.locator(".waiting")).to_have_text(re.compile(r"^\d+ (s|min)"))
    await expect(page.locator("[data-figure=waiting] .figure-value")).to_have_text("1")
    await expect(page.locator("#queue-timezone")).to_have_value("Europe/Berlin")
    await expect(page.locator("#queue-hours-sat")).to_have_value("10:00-14:00")
    await shot(page, "queue")
    assert not refused, refused


async def test_desk_claim_and_a_second_teammate_losing_the_race(
    page: Page,
    second_page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    store: ModeStore,
    tenant: str,
) -> None:
    who = Who(tenant, "support", user="fred")
    await publish_queues_agent(store, who)
    await hand_off(bus, who, queue="billing", reason="Wants a refund")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    await sign_in(second_page, "editor", sub="omar", hash="#/desk")
    for p in (page, second_page):
        await expect(p.locator("#ticket-owner")).to_contain_text(
            "Queue billing · owner: nobody yet"
        )
        await expect(p.locator("[data-action=claim]")).to_be_visible()

    # Both click Claim at once: the server lets exactly one win.
    await asyncio.gather(
        page.locator("[data-action=claim]").click(),
        second_page.locator("[data-action=claim]").click(),
    )
    pages = {"jane": page, "omar": second_page}
    winners = []
    for p in pages.values():
        owner = p.locator("#ticket-owner")
        await expect(owner).to_have_attribute("data-assignee", re.compile(".+"))
        winners.append(str(await owner.get_attribute("data-assignee")))
    [winner] = set(winners)
    loser = pages["omar" if winner == "jane" else "jane"]
    await expect(pages[winner].locator("#ticket-owner")).to_contain_text("owner: you")
    error = loser.locator("#ticket-error")
    await expect(error).to_have_text("Someone else took this ticket a moment ago.")
    await expect(loser.locator("#ticket-owner")).to_contain_text(f"owner: {winner}")
    await expect(loser.locator("[data-action=claim]")).to_have_count(0)
    await expect(pages[winner].locator(".ticket .owner")).to_have_text("Owner: you")
    await shot(pages[winner], "desk-claimed")
    await shot(loser, "desk-claim-lost")


async def test_analytics_page_draws_charts_from_real_data(
    page: Page,
    sign_in: Callable[..., Any],
    bus: Bus,
    api_url: str,
    jwt_secret: str,
    tenant: str,
) -> None:
    refused = csp_violations(page)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    def at(minutes: float) -> str:
        return (hour + timedelta(minutes=minutes)).isoformat()

    ann, ben = Who(tenant, "support", user="ann"), Who(tenant, "support", user="ben")
    ta, tb = TicketLife(ann, "billing"), TicketLife(ben, "default")
    sends = [
        (ann, mode_changed(ann, "human", "agent", "Refund request", at(0))),
        (ann, ta.change("queued", at(0))),
        (ann, ta.change("assigned", at(2), "jane")),
        (ann, human_reply(ann, at(3))),
        (ann, ta.change("resolved", at(12), "jane")),
        (ann, mode_changed(ann, "ai", "operator", "Refunded.", at(12))),
        (ben, mode_changed(ben, "human", "operator", "Asked for a person", at(70))),
        (ben, tb.change("queued", at(70))),
        (ben, tb.change("assigned", at(70.5), "omar")),
        (ben, tb.change("closed", at(100), "omar")),
        (ben, mode_changed(ben, "ai", "timeout", "Idle.", at(100))),
    ]
    for who, record in sends:
        topic = bus.topics.outbound if record["type"] == "outbound_message" else bus.topics.events
        await bus.send(topic, record, key=who.key)
    token = make_token(jwt_secret, tenant, "viewer")
    async with httpx.AsyncClient(base_url=api_url) as http:
        body = await settled(
            http,
            f"/v1/tenants/{tenant}/analytics",
            {"Authorization": f"Bearer {token}"},
            lambda b: b["totals"]["returns_to_ai"] >= 2,
        )
    totals = body["totals"]
    assert (totals["handoffs"], totals["pickup_wait_seconds"]["p50"]) == (2, 30.0)

    await sign_in(page, "viewer", hash="#/analytics")
    for chart in ("pickup-wait", "handoffs-by-queue", "handoffs-by-reason", "returns-by-cause"):
        canvas = page.locator(f"#chart-{chart}")
        await expect(canvas).to_be_visible()
        box = await canvas.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, chart
    drawn = await page.evaluate(
        "() => [...document.querySelectorAll('canvas')].map((c) => window.Chart.getChart(c)"
        "?.data.datasets.map((d) => d.data))"
    )
    wait_p50 = [p["pickup_wait_p50"] for p in body["series"]]
    by_queue = {
        q: [p["handoffs_by_queue"].get(q, 0) for p in body["series"]]
        for q in ("billing", "default")
    }
    assert drawn[0][0] == wait_p50
    assert drawn[1] == [by_queue["billing"], by_queue["default"]]
    assert drawn[2] == [[1, 1]]
    assert drawn[3] == [[1, 1]]
    figure = page.locator("[data-figure] .figure-value")
    await expect(figure).to_have_text(["2", "30 s", "3 min", "10 min", "2", "0 %"])
    await page.select_option("#analytics-queue", "billing")
    await expect(figure).to_have_text(["1", "2 min", "3 min", "10 min", "1", "0 %"])
    await shot(page, "analytics")
    assert not refused, refused


async def test_desk_warns_a_minute_before_the_idle_return(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    """An idle timeout of 80 minutes of one second each (the tests' minute): the warning
    shows once a (real) minute is left, with a live countdown; Extend (R19, audited) moves
    the expiry a whole timeout ahead and the warning goes."""
    who = Who(tenant, "support", user="gina")
    await publish_queues_agent(store, who, idle_timeout_minutes=80)
    await sign_in(page, "editor", hash="#/desk")
    await hand_off(bus, who, reason="Wants a person")
    await expect(page.locator("#ticket-owner")).to_contain_text("owner: nobody yet")
    await expect(page.locator("#idle-warning .alert-warn")).to_have_count(0)
    warning = page.locator("#idle-warning .alert-warn")
    await expect(warning).to_contain_text("Back to the AI in", timeout=45_000)
    await expect(warning.locator(".countdown")).to_have_text(re.compile(r"^00:[0-5]\d$"))
    await expect(warning.locator("#extend")).to_be_visible()
    await shot(page, "desk-idle-warning")
    before = (await store.read_state(who.key)).expires_at_ms
    await warning.locator("#extend").click()
    await expect(page.locator(".toast-success")).to_contain_text("Extended")
    await expect(warning).to_have_count(0)
    after = (await store.read_state(who.key)).expires_at_ms
    now = await redis_now_ms(store)
    assert before is not None and after is not None and after > before
    assert after - now > 70_000  # a whole timeout (80 s) from the click again
    [audit] = await bus.wait_for(
        bus.topics.events,
        lambda v: (
            v.get("type") == "operator_action"
            and v.get("action") == "idle_extend"
            and v.get("tenant_id") == tenant
        ),
    )
    assert audit["actor"] == "operator:jane"


async def test_desk_transfers_releases_and_assigns_a_ticket(
    page: Page, sign_in: Callable[..., Any], bus: Bus, store: ModeStore, tenant: str
) -> None:
    who = Who(tenant, "support", user="hugo")
    await publish_queues_agent(store, who)
    opened = await hand_off(bus, who, reason="Invoice question")
    await sign_in(page, "editor", sub="jane", hash="#/desk")
    owner = page.locator("#ticket-owner")
    await expect(owner).to_contain_text("Queue default · owner: nobody yet")

    await page.click("[data-action=transfer]")
    await page.select_option("#transfer-to", "billing")
    await page.fill("#transfer-note", "Billing knows invoices.")
    await page.click("dialog button[type=submit]")
    await expect(owner).to_have_attribute("data-queue", "billing")
    await page.click("[data-action=claim]")
    await expect(owner).to_contain_text("owner: you")
    await page.click("[data-action=release]")
    await expect(owner).to_contain_text("owner: nobody yet")
    await page.click("[data-action=assign]")
    await page.fill("#assign-to", "omar")
    await page.click("dialog button[type=submit]")
    await expect(owner).to_contain_text("Queue billing · owner: omar")

    changes = await bus.wait_for(
        bus.topics.events,
        lambda v: v.get("type") == "ticket_changed" and v.get("ticket_id") == opened["ticket_id"],
        count=5,
    )
    steps = [(c["from_status"], c["status"], c["queue"], c["assignee"]) for c in changes]
    assert steps == [
        (None, "queued", "default", None),
        ("queued", "queued", "billing", None),
        ("queued", "assigned", "billing", "jane"),
        ("assigned", "queued", "billing", None),
        ("queued", "assigned", "billing", "omar"),
    ]
    await shot(page, "desk-assigned")
