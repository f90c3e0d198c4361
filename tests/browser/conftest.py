"""Playwright on Debian's Chromium (/usr/bin/chromium, headless; no browser download), against
the handoff service the session fixtures run. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.api.helpers import make_token
from tests.support.browser import chromium

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as b:
        yield b


@asynccontextmanager
async def desktop_page(browser: Browser) -> AsyncIterator[Page]:
    """A page of a browser context of its own (its own sign-in), at desktop size."""
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    context.set_default_timeout(15_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    errors: list[str] = []
    async with desktop_page(browser) as p:
        p.on("pageerror", lambda e: errors.append(str(e)))
        yield p
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
async def second_page(browser: Browser) -> AsyncIterator[Page]:
    """A second teammate's page, beside `page`."""
    async with desktop_page(browser) as p:
        yield p


@pytest.fixture
def sign_in(api_url: str, jwt_secret: str, tenant: str) -> Callable[..., object]:
    """sign_in(page, role, sub, hash): pastes a token in the sign-in box, opens `hash`."""

    async def go(page: Page, role: str = "editor", sub: str = "jane", hash: str = "") -> None:
        await page.goto(f"{api_url}/console/{hash}")
        await page.fill("#token-input", make_token(jwt_secret, tenant, role, sub))
        await page.click("button[type=submit]")
        await expect(page.locator("#who-role")).to_have_text(role)

    return go


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
