"""What the real-browser tests share: Debian's chromium driven by Playwright, a page per
test, the app served on real HTTP, screenshots on failure, the phone-width check.

``tests/browser/conftest.py`` makes ``browser``, ``page`` and ``live_url`` fixtures of every
browser test from here, so one Playwright runs per session whatever the modules run
(two would collide: Playwright's sync API cannot start inside a running one). Test
modules import the helpers, never the fixtures.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``); Playwright is never
asked to download a browser of its own. Without either the tests are skipped with the
reason, except under ``CI=true``, where they fail.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("PROVISIONER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required in CI: `make test` installs it)", pytrace=False)
    pytest.skip(reason)


# --- screenshots on failure: a pytest hook, registered once ---------------------------------------

class _ScreenshotOnFailure:
    """Saves a screenshot and the HTML of the test's ``page`` when its set-up or call fails."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when not in ("setup", "call") or not report.failed:
            return
        page = getattr(item, "funcargs", {}).get("page")
        if page is None:
            return
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            (ARTIFACTS / f"{stem}.html").write_text(page.content())
            report.sections.append(("browser", f"screenshot: {ARTIFACTS / (stem + '.png')} (page {page.url})"))
        except Exception as exc:        # the browser may be what failed
            report.sections.append(("browser", f"no screenshot: {exc}"))


_PLUGIN_NAME = "client-browser-screenshots"


@pytest.fixture(scope="session")
def browser(pytestconfig):
    if not pytestconfig.pluginmanager.has_plugin(_PLUGIN_NAME):
        pytestconfig.pluginmanager.register(_ScreenshotOnFailure(), _PLUGIN_NAME)
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _missing(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright; never `playwright install`)")
    manager = sync_playwright().start()
    try:
        instance = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:
        manager.stop()
        _missing(f"chromium at {CHROMIUM} did not start: {exc}")
    yield instance
    instance.close()
    manager.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    context.close()


# --- the app on real HTTP -------------------------------------------------------------------------

@pytest.fixture
def live_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="client-browser-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


#: set to a directory to keep a desktop and a phone screenshot of every page checked
SHOTS = os.environ.get("PROVISIONER_BROWSER_SCREENSHOTS")


def _shot(page, url: str, size: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9]+", "_", urlsplit(url).path).strip("_") or "root"
        page.screenshot(path=str(Path(SHOTS) / f"{name}-{size}.png"), full_page=True)


def assert_fits_a_phone(page, url: str) -> None:
    """Nothing on ``url`` is wider than a phone's screen (no sideways scrolling)."""
    if SHOTS:
        page.goto(url)
        _shot(page, url, "desktop")
    page.set_viewport_size(PHONE)
    page.goto(url)
    _shot(page, url, "phone")
    overflow = page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const wide = [...document.querySelectorAll('body *')]
          .filter(e => e.getBoundingClientRect().right > width + 1 && getComputedStyle(e).position !== 'absolute')
          .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || '').trim().slice(0, 40));
        return {scroll: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
    }""")
    assert overflow["scroll"] <= overflow["width"], f"{url} is wider than a phone: {overflow}"
    page.set_viewport_size(DESKTOP)
