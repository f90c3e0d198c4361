"""Safe console sessions (issue 14): a token's expiry is said as expiry, never as a parse
error of `Bearer null`; one sign-in serves every tab; errors are words, not validation paths."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, expect

from devstack.harness.sandbox import wait_until
from tests.api.helpers import make_token

pytestmark = pytest.mark.integration


async def test_an_expired_session_says_so_and_never_sends_bearer_null(
    browser: Browser, api_url: str, jwt_secret: str, tenant: str
) -> None:
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    page = await context.new_page()
    sent: list[str] = []

    def watch(request: Request) -> None:
        sent.append(request.headers.get("authorization", ""))

    page.on("request", watch)
    try:
        # The API allows 30 s of clock skew (HANDOFF_API_JWT_LEEWAY_SECONDS): this token is
        # refused 4 s from now.
        expires = time.time() + 4
        await page.goto(f"{api_url}/console/#/queues")
        await page.fill("#token-input", make_token(jwt_secret, tenant, "editor", "jane", ttl=-26))
        await page.click("button[type=submit]")
        await expect(page.locator("#queue-list [data-queue=default]")).to_be_visible()
        # The token runs out while the desk is open: the next call says so, in words.
        await wait_until(lambda: time.time() > expires + 0.5, 10, "the token's expiry")
        await page.click("a[data-nav=desk]")
        box = page.locator(".signin")
        await expect(box).to_contain_text("Your session expired — sign in again", timeout=15_000)
        await expect(box).not_to_contain_text("Malformed")
        await expect(box).not_to_contain_text("segments")
        assert "Bearer null" not in sent and "Bearer undefined" not in sent
    finally:
        await context.close()


async def test_one_sign_in_serves_every_tab_and_sign_out_ends_them_all(
    browser: Browser, sign_in: Callable[..., Any], api_url: str
) -> None:
    context = await browser.new_context(viewport={"width": 1360, "height": 860})
    first = await context.new_page()
    try:
        await sign_in(first, "viewer", hash="#/queues")
        second = await context.new_page()
        await second.goto(f"{api_url}/console/#/queues")
        await expect(second.locator("#who-role")).to_have_text("viewer")
        await second.click("#sign-out")
        await expect(first.locator("#token-input")).to_be_visible()
    finally:
        await context.close()


async def test_errors_are_said_in_words(page: Page, sign_in: Callable[..., Any]) -> None:
    await sign_in(page, "editor", hash="#/desk")
    said = await page.evaluate(
        """async () => {
          const ui = await import('./js/ui.js');
          const { ApiError } = await import('./js/api.js');
          const tooShort = new ApiError(422, 'validation_failed', 'Invalid request.', [
            {
              loc: 'body.ai.reason', message: 'String should have at least 1 character',
              type: 'string_too_short', ctx: { min_length: 1 },
            },
          ]);
          const tooBig = new ApiError(413, 'http_413', 'files are limited to 10485760 bytes');
          const expired = new ApiError(401, 'token_expired', 'The token has expired.');
          return [ui.said(tooShort), ui.said(tooBig), ui.said(expired)];
        }"""
    )
    assert said[0] == "Please fill in the reason."
    assert "too large" in said[1] and "10485760" not in said[1]
    assert said[2] == "Your session expired — sign in again."
