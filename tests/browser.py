"""Debian's Chromium, driven by Playwright, for the chat page tests.

The browser is the `chromium` Debian package (system-packages.txt), never one that
`playwright install` downloads: that needs a host we cannot reach.
"""

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Playwright, Request

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",  # tests run as root in containers
    "--disable-gpu",
    # Chromium phones home on its own (updates, sync, safe browsing): keep the network quiet,
    # so the "no request leaves the server" check sees only the page's own requests.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO / "test-artifacts" / "page"


def launch(playwright: Playwright, extra_args: list[str] = ()) -> Browser:
    """Headless Chromium; EXTRA_ARGS add flags (e.g. a fake microphone for the voice tests)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: install the Debian package `chromium` "
            "(`make setup` does, from system-packages.txt)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*LAUNCH_ARGS, *extra_args])


class PageWatch:
    """Everything on a page that should not happen: console errors, uncaught exceptions,
    alert/confirm/prompt dialogs, and requests to anywhere but the server."""

    def __init__(self, page: Page, origin: str):
        self.origin = origin
        self.allowed: list[re.Pattern] = []
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("dialog", self._dialog)
        page.on("request", self._request)

    def allow(self, pattern: str) -> None:
        """Accept console errors matching `pattern` (e.g. the browser's own line for an HTTP
        error status, which it logs for every failed fetch, expected or not)."""
        self.allowed.append(re.compile(pattern))

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if any(pattern.search(message.text) for pattern in self.allowed):
            return
        where = message.location.get("url", "")
        self.problems.append(f"console error: {message.text} ({where})")

    def _dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"{dialog.type} dialog: {dialog.message}")
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        url = request.url
        if not (url.startswith(self.origin + "/") or url.startswith(("data:", "blob:"))):
            self.problems.append(f"request outside the server: {url}")


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path)
    return path


@contextmanager
def page_opener(browser: Browser, default_target, test_name: str, defaults: dict) -> Iterator:
    """opener(settings=…, target=…, fragment=…, allow=…, **context options) → (page, watch).

    Settings (over DEFAULTS) are stored in localStorage before the page's first script runs;
    `allow` lists the console errors expected (see PageWatch.allow). When the block ends, every
    page gets its screenshot, then every watch is checked."""
    opened = []  # (context, watch)

    def opener(settings=None, target=None, fragment="", allow=(), **context_options):
        target = target or default_target
        options = {"viewport": {"width": 1280, "height": 800}, **context_options}
        context = browser.new_context(**options)
        stored = json.dumps(json.dumps({**defaults, **(settings or {})}))
        # Only when unset, so that a reload keeps what the test changed in the page.
        context.add_init_script(
            f"if (!localStorage.getItem('omnicoach.settings'))"
            f" localStorage.setItem('omnicoach.settings', {stored});"
        )
        page = context.new_page()
        watch = PageWatch(page, target.url)
        for pattern in allow:
            watch.allow(pattern)
        opened.append((context, watch))
        page.goto(f"{target.url}/{fragment}")
        page.locator("#composer-input").wait_for(state="visible")
        return page, watch

    yield opener
    for number, (context, _) in enumerate(opened):
        for page in context.pages:
            screenshot(page, f"{test_name}-{number}")
        context.close()
    for _, watch in opened:
        watch.check()
