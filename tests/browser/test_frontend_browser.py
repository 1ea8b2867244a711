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

    def wait_for(self, page, paths, timeout_s: float = 60) -> None:
        """Let the page run until it has called each of `paths` (the frontend fetches some
        of them lazily, after its first idle moment)."""
        missing = set(paths)
        for _ in range(int(timeout_s * 10)):
            missing -= self.paths()
            if not missing:
                return
            page.wait_for_timeout(100)
        raise AssertionError(f"the frontend never called {sorted(missing)}; "
                             f"it called {sorted(self.paths())}")


def wait_for_app(page) -> None:
    """The frontend has booted: its app object exists with a graph and node definitions."""
    page.wait_for_function(
        "() => window.app && window.app.graph && window.app.api && window.app.api.clientId"
        " && document.querySelector('#splash-loader') === null",
        timeout=90_000)


def inverted(colour: int) -> tuple[int, int, int]:
    return tuple(255 - ((colour >> shift) & 0xFF) for shift in (16, 8, 0))


def test_frontend_loads_queues_and_shows_the_image(web_server, page, tmp_path):
    requests = RequestLog(page, web_server.url)
    page.goto(web_server.url + "/")
    wait_for_app(page)
    page.wait_for_load_state("networkidle")

    # The frontend's start-up calls reached our server and none failed (the first-run
    # template browser's thumbnails included).
    requests.wait_for(page, ("/api/features", "/api/users", "/api/system_stats",
                             "/api/settings", "/api/i18n", "/api/extensions", "/api/object_info",
                             "/api/global_subgraphs", "/api/jobs"))
    page.wait_for_load_state("networkidle")
    assert not requests.failed, requests.failed
    page.screenshot(path=str(tmp_path / "frontend-loaded.png"))
    page.keyboard.press("Escape")  # close the first-run template browser

    # The frontend itself turns the graph into a prompt and queues it.
    prefix = f"browser_{uuid.uuid4().hex[:8]}"
    nodes, queued = page.evaluate(
        """async (prompt) => {
            await window.app.loadApiJson(prompt, 'browser-test');
            const nodes = window.app.graph.nodes.map(n => n.type).sort();
            return [nodes, await window.app.queuePrompt(0, 1)];
        }""", workflow_prompt(prefix))
    assert nodes == ["EmptyImage", "ImageInvert", "SaveImage"]
    assert queued is True

    # Its media panel (fed by /api/jobs) shows the saved image once the job is done.
    page.evaluate("() => window.app.extensionManager.command.execute("
                  "'Workspace.ToggleSidebarTab.assets')")
    thumbnail = page.locator(f"img[src*='filename={prefix}']").first
    thumbnail.wait_for(state="visible", timeout=60_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle())
    size, pixel = page.evaluate(
        """(img) => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return [[img.naturalWidth, img.naturalHeight],
                    Array.from(ctx.getImageData(10, 10, 1, 1).data.slice(0, 3))];
        }""", thumbnail.element_handle())
    assert size == [64, 48]

    jobs = web_server.get("/api/jobs?status=completed&limit=10").json()["jobs"]
    [job] = [j for j in jobs if j["preview_output"]["filename"].startswith(prefix)]
    assert job["outputs_count"] == 1
    # The browser shows exactly the pixels the server saved: the inverted colour (ComfyUI's
    # float round trip truncates, so a channel may be one below the exact inverse).
    from PIL import Image

    saved = Image.open(web_server.base_dir / "output" / job["preview_output"]["filename"])
    assert tuple(pixel) == saved.convert("RGB").getpixel((10, 10))
    assert all(0 <= want - got <= 1 for got, want in zip(pixel, inverted(COLOUR)))

    page.screenshot(path=str(tmp_path / "frontend-with-job.png"))
    assert not requests.failed, requests.failed
