"""Browser tests: Playwright driving Debian's chromium (Playwright's own browser download needs a
network the tests do not have). Fixtures, registered by tests/conftest.py:

- `browser`: one headless chromium for the session;
- `page`: a fresh context and page per test; when the test ends, its last screen is kept in
  <TEST_HOME>/screenshots/<test>.png, whatever the outcome (a failure's screen explains it).

`keep_screenshot(page, name)` keeps one more, at a moment the test chooses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tally import config


def chromium() -> str:
    """Debian's chromium; installed when missing and we may (as the PostgreSQL fixture does)."""
    found = shutil.which("chromium")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("Debian's chromium is needed: apt-get install chromium")
    return found


def screenshot_dir() -> Path:
    return config.load().home / "screenshots"


def keep_screenshot(page, name: str) -> Path:
    """Save the page's screen as <TEST_HOME>/screenshots/<name>.png; return the path."""
    path = screenshot_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(), headless=True,
            # Root in a container has no user namespaces for the sandbox; nothing the tests open
            # comes from outside the machine. No name resolves: the browser's own background
            # calls stay here too.
            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--host-resolver-rules=MAP * ^NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    try:
        keep_screenshot(opened, request.node.name)
    finally:
        context.close()
