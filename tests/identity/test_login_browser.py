"""The stock frontend signed in through /login, in headless Chromium: it loads with no
failing call, queues a workflow, and sees only its own jobs (another tenant's stay hidden)."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.test_frontend_browser import (CHROMIUM, CHROMIUM_ARGS, RequestLog,
                                                 wait_for_app, workflow_prompt)
from tests.identity.fixtures import start_auth_server
from tests.identity.tenants import create_user, new_tenant

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def test_signed_in_frontend_queues_and_sees_only_its_own_jobs(tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    srv = start_auth_server(tmp_path / "srv", "sqlite")
    try:
        other = new_tenant(srv)
        other_prefix = f"other_{uuid.uuid4().hex[:8]}"
        r = other.post("/api/prompt", {"prompt": workflow_prompt(other_prefix)})
        assert r.status == 200
        me = create_user(srv, password="browser-pass")
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                page.goto(srv.url + "/")
                assert page.url.endswith("/login")  # signed out: sent to sign in
                page.fill("#email", me.email)
                page.fill("#password", "browser-pass")
                requests = RequestLog(page, srv.url)
                page.click("button[type=submit]")
                wait_for_app(page)
                page.wait_for_load_state("networkidle")
                requests.wait_for(page, ("/api/features", "/api/users", "/api/settings",
                                         "/api/object_info", "/api/jobs"))
                page.wait_for_load_state("networkidle")
                assert not requests.failed, requests.failed
                page.keyboard.press("Escape")
                prefix = f"mine_{uuid.uuid4().hex[:8]}"
                queued = page.evaluate(
                    """async (prompt) => {
                        await window.app.loadApiJson(prompt, 'login-test');
                        return await window.app.queuePrompt(0, 1);
                    }""", workflow_prompt(prefix))
                assert queued is True
                page.evaluate("() => window.app.extensionManager.command.execute("
                              "'Workspace.ToggleSidebarTab.assets')")
                page.locator(f"img[src*='filename={prefix}']").first.wait_for(
                    state="visible", timeout=60_000)
                # What the signed-in page can read: its own jobs, never the other tenant's.
                seen = page.evaluate("""async () => {
                    const jobs = await (await fetch('/api/jobs?limit=100')).json();
                    const history = await (await fetch('/api/history')).json();
                    return [jobs.jobs.map(j => (j.preview_output || {}).filename || ''),
                            JSON.stringify(history)];
                }""")
                names, history = seen
                assert any(n.startswith(prefix) for n in names)
                assert not any(n.startswith(other_prefix) for n in names)
                assert other_prefix not in history
                assert not requests.failed, requests.failed
            finally:
                browser.close()
    finally:
        srv.stop()
