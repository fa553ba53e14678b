"""Browser test harness: headless Chromium driven by Playwright against Django's live server.

Fixtures
--------
- ``live_server`` (pytest-django): Django's threaded test server on the test database. Tests
  that use it run with ``transaction=True`` semantics (data is committed so the server thread
  sees it, and the tables are flushed afterwards).
- ``browser`` (session): one Chromium for the whole run, Debian's ``/usr/bin/chromium`` or
  ``$CHROMIUM_PATH``. Playwright never downloads a browser here. Without Chromium every browser
  test is skipped with the reason (CI sets TRADEPORT_REQUIRE_ALL_TESTS=1, which fails skips).
- ``context`` / ``page`` (function): a fresh, cookie-less browser context per test with
  ``base_url`` = the live server, so ``page.goto("/login/")`` works. When a test fails, a
  full-page screenshot of every page it opened lands in ``test-artifacts/``.
- ``console_errors``: console errors, uncaught page errors and CSP violations of the test's
  pages; ``assert console_errors == []`` proves a page is clean.
- ``login``: signs a user in through the real login page.
- ``api_get``: calls the live server without the browser's cookies (e.g. with an API key).

Mark browser tests ``pytest.mark.browser`` and ``pytest.mark.django_db(transaction=True)``.

Playwright's sync API keeps an asyncio loop running in the test thread for as long as it is
started, and Django refuses ORM calls from a thread with a running loop
(SynchronousOnlyOperation). The ``_playwright`` fixture therefore sets Django's documented
escape hatch DJANGO_ALLOW_ASYNC_UNSAFE while Playwright runs (and restores it at the end of
the session). The ORM is still only called from the test thread, never from the loop.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from conftest import TEST_PASSWORD
from portal.tests.servers import daphne_serving

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS_DIR = Path(settings.BASE_DIR) / "test-artifacts"
#: Playwright's default timeouts are 30 s; a local server answers in milliseconds.
DEFAULT_TIMEOUT_MS = 10_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="package")
def _playwright():
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        pytest.skip(
            f"Browser tests need Chromium at {CHROMIUM_PATH} (set CHROMIUM_PATH, or on Debian: "
            "apt-get install -y chromium chromium-driver)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in requirements.txt
        pytest.skip("Browser tests need the playwright package (pip install -r requirements.txt)")

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        yield playwright
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser(_playwright):
    browser = _playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


# Records `securitypolicyviolation` events: Chromium also logs them to the console, this
# catches them even if that wording changes. Injected over CDP, so the page's CSP allows it.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def console_errors() -> list[str]:
    """Filled while the test runs; `assert console_errors == []` proves its pages were clean."""
    return []


def _new_context(browser, base_url: str, console_errors: list[str], *, serves_websockets: bool):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.add_init_script(_CSP_LISTENER)

    def on_console(page, message):
        if message.type != "error":
            return
        if not serves_websockets and _NO_WEBSOCKETS.search(message.text):
            return  # Django's live server speaks only HTTP: the pages fall back to REST polling
        source = message.location.get("url") or ""
        where = f" ({source})" if source and source != page.url else ""
        console_errors.append(f"console error on {page.url}: {message.text}{where}")

    def watch(page):
        page.on("console", lambda message: on_console(page, message))
        page.on("pageerror", lambda error: console_errors.append(f"page error on {page.url}: {error}"))

    context.on("page", watch)
    return context


_NO_WEBSOCKETS = re.compile(r"^WebSocket connection to 'ws://[^']+/ws/v1/' failed")


@pytest.fixture
def context(browser, live_server, console_errors):
    context = _new_context(browser, live_server.url, console_errors, serves_websockets=False)
    yield context
    context.close()


@pytest.fixture
def daphne_url(tmp_path):
    """A real daphne (HTTP and WebSockets) on the test database and Redis; see
    `portal.tests.servers.daphne_serving`."""
    with daphne_serving(tmp_path) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def daphne_page(browser, daphne_url, console_errors):
    """A page of a fresh browser context whose base URL is the daphne server."""
    context = _new_context(browser, daphne_url, console_errors, serves_websockets=True)
    yield context.new_page()
    context.close()


@pytest.fixture
def daphne_login(daphne_url, daphne_page):
    """`daphne_login(user)` signs `user` in on the daphne page through the real login page and
    returns the page. daphne runs with the production settings, so the user's password is first
    stored with the production hasher (the test's fast MD5 hash would not verify there)."""
    from django.contrib.auth.hashers import make_password
    from django.utils.module_loading import import_string

    from portal.models import User
    from portal.settings.base import PASSWORD_HASHERS

    def sign_in(user):
        production_hasher = import_string(PASSWORD_HASHERS[0])()
        User.objects.filter(pk=user.pk).update(password=make_password(TEST_PASSWORD, hasher=production_hasher))
        daphne_page.goto("/login/")
        daphne_page.get_by_label("Username").fill(user.get_username())
        daphne_page.get_by_label("Password").fill(TEST_PASSWORD)
        daphne_page.get_by_role("button", name="Sign in").click()
        daphne_page.wait_for_url(f"{daphne_url}/")
        return daphne_page

    return sign_in


@pytest.fixture
def page(context, request, artifacts_dir):
    page = context.new_page()
    yield page
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        for index, open_page in enumerate(context.pages):
            suffix = f"-{index}" if index else ""
            try:
                open_page.screenshot(path=str(artifacts_dir / f"{name}{suffix}.png"), full_page=True)
            except Exception as error:  # a crashed page must not hide the test's own failure
                print(f"could not save a screenshot of {open_page.url}: {error}")


@pytest.fixture
def login(live_server):
    """`login(page, "alice")` signs in through the real login page and waits for home."""

    def sign_in(page, username: str, password: str = TEST_PASSWORD, *, expect_home: bool = True):
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        if expect_home:
            page.wait_for_url(f"{live_server.url}/")
        else:
            page.wait_for_load_state()
        return page

    return sign_in


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@pytest.fixture
def api_get(live_server) -> Callable[..., ApiResponse]:
    """GET a live-server path with plain urllib: no browser cookies, so only `headers` authenticate."""

    def get(path: str, headers: dict[str, str] | None = None) -> ApiResponse:
        request = urllib.request.Request(f"{live_server.url}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, received, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, received, body = error.code, error.headers, error.read()
        return ApiResponse(status, {name.lower(): value for name, value in received.items()}, body)

    return get
