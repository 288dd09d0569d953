"""Browser fixtures shared by every test that drives Chromium (registered from tests/conftest.py).

- `chromium_browser` is one headless Debian Chromium (``/usr/bin/chromium``, or
  ``TRACKOPS_CHROMIUM``) per test module. Playwright's sync API keeps its event loop marked as
  running in the calling thread for as long as it is open, so it is closed at the end of each
  module: a test of another module that runs an asyncio loop of its own (the fuzz test does) then
  finds none running, and two browsers are never open at once. No browser is ever
  downloaded. Without Chromium or Playwright the test skips, except under CI=true, where it fails.
- `browser_page` is a fresh page in its own context (no cookies or storage shared), 1280x800.
- `screenshot(page, name)` saves ``docs/images/<name>.png`` only when TRACKOPS_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import unavailable

CHROMIUM = os.environ.get("TRACKOPS_CHROMIUM", "/usr/bin/chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture(scope="module")
def chromium_browser():
    """The module's headless Chromium (Playwright's sync API allows one open at a time per thread)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"Chromium ({CHROMIUM})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser):
    """A fresh page (its own context: no cookies or storage shared between tests), 1280x800."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def screenshot(page, name: str) -> Path | None:
    """Save the page as docs/images/<name>.png when TRACKOPS_SCREENSHOTS=1; else do nothing."""
    if os.environ.get("TRACKOPS_SCREENSHOTS") != "1":
        return None
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    path = DOCS_IMAGES / f"{name}.png"
    page.screenshot(path=str(path))
    return path

