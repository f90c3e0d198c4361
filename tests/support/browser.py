"""Debian's Chromium for Playwright: never a downloaded browser, and no background traffic
(the machine's network is closed; Chromium's own connections would only be refused)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# axe-core 4.14.1 (MPL-2.0, tests/support/vendor/axe-core.LICENSE), from npm (`npm pack
# axe-core`), vendored for the tests only: the pages never load it.
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SERIOUS = ("serious", "critical")


async def axe_violations(page: Page) -> list[str]:
    """The page's serious and critical axe violations, as `rule: target` lines. The page's
    context must be opened with bypass_csp=True (axe is injected as an inline script)."""
    await page.add_script_tag(content=AXE.read_text())
    found = await page.evaluate(
        """async () => {
          const r = await axe.run(document, { resultTypes: ['violations'] });
          return r.violations.map(v => ({ id: v.id, impact: v.impact,
            targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5) }));
        }"""
    )
    return [f"{v['id']}: {', '.join(v['targets'])}" for v in found if v["impact"] in SERIOUS]
