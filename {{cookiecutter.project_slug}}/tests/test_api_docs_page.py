"""/docs in a real headless browser: Debian's chromium, driven by Playwright.

The page must list every path of /openapi.json and send a request through Swagger UI's own
"Try it out" control, under its Content-Security-Policy, with nothing refused or failing in
the browser's console. A screenshot of the page is saved among the test artifacts:
$TEST_ARTIFACTS_DIR if set, else test-artifacts/ in the project.

Playwright never downloads a browser here: it drives /usr/bin/chromium, which this test
installs with apt-get when it runs as root and the browser is missing, or the Chromium-family
browser at TEST_BROWSER (GitHub's runners have /usr/bin/google-chrome). Elsewhere it skips
saying why, unless TEST_REQUIRE_BROWSER=1 makes that a failure (the template's own runs
set it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .http_client import http_get
from .processes import PROJECT_ROOT, RunningService

# Playwright is imported where it is used, so that collecting the suite (and `make test-quick`,
# which leaves this module out) does not pay for it.
if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

# It starts the web process and a browser.
pytestmark = pytest.mark.processes

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_NAME = "api-docs-page.png"
# Swagger UI renders from the document it fetches; a slow shared machine needs some room.
RENDER_TIMEOUT_MS = 30_000
TITLE_SENT = "Sent from the API docs page"


def artifacts_dir() -> Path:
    """Where files worth keeping after the run go."""
    folder = Path(os.environ.get("TEST_ARTIFACTS_DIR") or PROJECT_ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def no_browser(reason: str) -> None:
    """Skip for want of a browser, or fail if this run was told a browser must be there."""
    if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TEST_REQUIRE_BROWSER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def install_chromium() -> None:
    """apt-get install Debian's chromium, one installer at a time on this machine."""
    lock_path = Path(tempfile.gettempdir()) / "chromium-install.lock"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt-get on this machine (a second test run, an upgrade) holds dpkg's lock a while.
    wait_for_dpkg = ["-o", "DPkg::Lock::Timeout=300"]
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if Path(CHROMIUM).exists():
            return
        for command in (
            ["apt-get", *wait_for_dpkg, "update", "-qq"],
            [
                "apt-get",
                *wait_for_dpkg,
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ],
        ):
            result = subprocess.run(
                command, env=environment, capture_output=True, text=True, timeout=900, check=False
            )
            if result.returncode != 0:
                no_browser(f"`{' '.join(command)}` failed: {result.stderr.strip()[-2000:]}")
    if not Path(CHROMIUM).exists():
        no_browser(f"apt-get installed chromium, but not at {CHROMIUM}")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser at TEST_BROWSER, or Debian's chromium, installed first if this process may."""
    chosen = os.environ.get("TEST_BROWSER")
    if chosen:
        if not Path(chosen).is_file():
            no_browser(f"TEST_BROWSER={chosen} names no file")
        return chosen
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            no_browser(
                f"no browser at {CHROMIUM}, and only root with apt-get installs one here: "
                "run `apt-get install chromium`"
            )
        install_chromium()
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """A headless chromium for this module's tests."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            # Playwright adds --no-sandbox itself: chromium's sandbox refuses to run as root.
            launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        except PlaywrightError as error:
            pytest.fail(
                f"{chromium} did not start headless; run it by hand to see why "
                f"(`{chromium} --headless --no-sandbox --dump-dom about:blank`):\n{error}",
                pytrace=False,
            )
        yield launched
        launched.close()


def operations_listed(page: Page) -> set[tuple[str, str]]:
    """The (method, path) of each operation Swagger UI shows."""
    listed: list[list[str]] = page.locator(".opblock").evaluate_all(
        """blocks => blocks.map(block => [
            block.querySelector(".opblock-summary-method").textContent.toLowerCase(),
            block.querySelector(".opblock-summary-path").dataset.path,
        ])"""
    )
    return {(method, path) for method, path in listed}


def test_docs_page_lists_every_path_and_sends_a_request_through_try_it_out(
    browser: Browser, shared_service: RunningService
) -> None:
    from playwright.sync_api import expect

    complaints: list[str] = []

    def note(message: ConsoleMessage) -> None:
        # Chromium reports each request the policy refuses as a console error.
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            complaints.append(f"console {message.type}: {message.text}")

    document = json.loads(http_get(f"{shared_service.base_url}/openapi.json")[1])
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", note)
    page.on("pageerror", lambda error: complaints.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: complaints.append(f"failed: {request.url}"))
    page.set_default_timeout(RENDER_TIMEOUT_MS)

    page.goto(f"{shared_service.base_url}/docs")
    expect(page.locator(".opblock")).to_have_count(len(documented))
    assert operations_listed(page) == documented

    create = page.locator(".opblock-post").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/todos"]')
    )
    create.locator(".opblock-summary").click()
    create.get_by_role("button", name="Try it out").click()
    create.locator("textarea.body-param__text").fill(json.dumps({"title": TITLE_SENT}))
    create.get_by_role("button", name="Execute").click()

    answer = create.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_have_text("201")
    expect(answer.locator(".response-col_description")).to_contain_text(TITLE_SENT)
    page.screenshot(path=artifacts_dir() / SCREENSHOT_NAME, full_page=True)
    listed = json.loads(http_get(f"{shared_service.base_url}/api/todos")[1])
    page.close()

    assert TITLE_SENT in {todo["title"] for todo in listed["items"]}
    assert complaints == []
