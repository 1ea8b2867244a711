"""The stock frontend in headless Chromium against a real server.

It loads `/` with no failing call to our server, queues a workflow of core image nodes
(EmptyImage -> ImageInvert -> SaveImage) and then sees the saved image in its job history
panel, which reads `/api/jobs`. A screenshot is left in the test's tmp dir.

Needs Debian's chromium (`apt-get install chromium`); never a browser download.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.harness import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

#: Calls that may fail without anything being wrong, as with ComfyUI itself: user files that
#: do not exist until the user saves them.
HARMLESS_FAILURES = {
    ("GET", "/api/userdata/comfy.templates.json", 404),
    ("GET", "/api/userdata/user.css", 404),
}

#: A distinctive colour, so the test can find its own image in the panel.
COLOUR = 0x2A8C4E


def workflow_prompt(prefix: str) -> dict:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": COLOUR}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


@pytest.fixture(scope="module")
def web_server(tmp_path_factory):
    srv = Server(base_dir=tmp_path_factory.mktemp("browser")).start()
    yield srv
    srv.stop()


@pytest.fixture
def page(web_server, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            try:
                page.screenshot(path=str(tmp_path / "frontend.png"))
            except Exception:
                pass
            browser.close()


class RequestLog:
    """Every request the page makes to our server, and the ones that failed."""

    def __init__(self, page, base_url: str) -> None:
        self.base_url = base_url
        self.seen: list[tuple[str, str, int]] = []
        self.failed: list[tuple[str, str, object]] = []
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)

    def _ours(self, url: str) -> str | None:
        if not url.startswith(self.base_url):
            return None
        return url[len(self.base_url):].split("?", 1)[0] or "/"

    def _on_response(self, response) -> None:
        path = self._ours(response.url)
        if path is None:
            return
        entry = (response.request.method, path, response.status)
        self.seen.append(entry)
        if response.status >= 400 and entry not in HARMLESS_FAILURES:
            self.failed.append(entry)

    def _on_request_failed(self, request) -> None:
        path = self._ours(request.url)
        # A websocket or fetch cut short by navigation is not a server failure.
        if path is not None and path != "/ws" and "ERR_ABORTED" not in (request.failure or ""):
            self.failed.append((request.method, path, request.failure))

    def paths(self) -> set[str]:
        return {path for _, path, _ in self.seen}


def wait_for_app(page) -> None:
    """The frontend has booted: its app object exists with a graph and node definitions."""
    page.wait_for_function(
        "() => window.app && window.app.graph && window.app.api && window.app.api.clientId"
        " && document.querySelector('#splash-loader') === null",
        timeout=90_000)


def test_frontend_loads_queues_and_shows_the_image(web_server, page, tmp_path):
    requests = RequestLog(page, web_server.url)
    page.goto(web_server.url + "/")
    wait_for_app(page)
    page.wait_for_load_state("networkidle")

    # The frontend's start-up calls reached our server and none failed.
    for path in ("/api/features", "/api/system_stats", "/api/object_info", "/api/settings",
                 "/api/extensions", "/api/users"):
        assert path in requests.paths(), (path, sorted(requests.paths()))
    assert not requests.failed, requests.failed

    # Queue a workflow from the page, as the frontend's own client, and let it finish.
    prefix = f"browser_{uuid.uuid4().hex[:8]}"
    status, body = page.evaluate(
        """async (prompt) => {
            const r = await fetch('/api/prompt', {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({prompt, client_id: window.app.api.clientId})});
            return [r.status, await r.json()];
        }""", workflow_prompt(prefix))
    assert status == 200, body
    entry = web_server.wait_for_job(body["prompt_id"])
    [image] = entry["outputs"]["3"]["images"]
    assert image["filename"].startswith(prefix)

    # The job history panel (fed by /api/jobs) shows the saved image.
    page.evaluate("() => window.app.extensionManager.command.execute("
                  "'Workspace.ToggleSidebarTab.job-history')")
    thumbnail = page.locator(f"img[src*='{prefix}']").first
    thumbnail.wait_for(state="visible", timeout=30_000)
    assert any(path == "/api/jobs" for _, path, _ in requests.seen)
    # The thumbnail really loaded: the browser decoded the image the server sent.
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", thumbnail.element_handle())

    page.screenshot(path=str(tmp_path / "frontend-with-job.png"))
    assert not requests.failed, requests.failed
