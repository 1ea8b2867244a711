"""`/system_stats` never shows a credential from the command line: anonymous callers of a
`--auth required` server see only the program and the frontend's switches; a local server
shows the whole line with secret values and URL passwords replaced."""

from __future__ import annotations

import sys

from opencomfy.config import Config
from opencomfy.http import system
from tests.identity.fixtures import start_auth_server
from tests.server.test_system_app import PingableDatabase, make_app

SECRET = "hunter2-s3cr3t"


def test_redact_argv_hides_secret_flag_values_and_url_passwords():
    argv = ["main.py", "serve", "--database-url", f"postgresql://app:{SECRET}@db/opencomfy",
            f"--database-url=postgresql://app:{SECRET}@db/x", "--s3-endpoint", f"http://minio:{SECRET}@s3:9000",
            f"--s3-secret-key={SECRET}", "--api-key", SECRET, f"--hf-token={SECRET}", "--password", SECRET,
            "--comfy-api-base", f"https://{SECRET}@api.example/v1", "--listen", "0.0.0.0",
            "--extra", f"https://user:{SECRET}@host/x", "--database-echo", "--port", "8188"]
    shown = system.redact_argv(argv)
    assert SECRET not in " ".join(shown), shown
    assert shown[:4] == ["main.py", "serve", "--database-url", system.REDACTED]
    assert f"--s3-secret-key={system.REDACTED}" in shown and f"--hf-token={system.REDACTED}" in shown
    assert f"https://{system.REDACTED}@api.example/v1" in shown
    assert f"https://user:{system.REDACTED}@host/x" in shown
    # What is not a secret stays as it was (a flag without a value does not hide the next flag).
    assert shown[shown.index("--listen"):shown.index("--listen") + 2] == ["--listen", "0.0.0.0"]
    assert shown[-3:] == ["--database-echo", "--port", "8188"]


async def test_local_system_stats_shows_the_redacted_line(aiohttp_client, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["opencomfy", "serve", "--database-url",
                                      f"postgresql://app:{SECRET}@db/x", "--port", "8188"])
    client = await aiohttp_client(make_app(tmp_path, PingableDatabase()))
    argv = (await (await client.get("/api/system_stats")).json())["system"]["argv"]
    assert argv == ["opencomfy", "serve", "--database-url", system.REDACTED, "--port", "8188"]


def test_shown_argv_with_auth_required_keeps_only_the_frontends_switches(tmp_path):
    config = Config(base_directory=tmp_path, auth="required")
    argv = ["/srv/venv/bin/opencomfy", "serve", "--listen", "0.0.0.0", "--disable-api-nodes",
            "--database-url", f"postgresql://app:{SECRET}@db/x", "--enable-manager"]
    assert system.shown_argv(config, argv) == ["opencomfy", "--disable-api-nodes", "--enable-manager"]


def test_anonymous_system_stats_of_an_auth_server_shows_no_command_line(tmp_path):
    srv = start_auth_server(tmp_path, "sqlite", "--s3-endpoint", f"http://minio:{SECRET}@127.0.0.1:9",
                            "--comfy-api-base", f"https://{SECRET}@api.example", "--disable-api-nodes")
    try:
        r = srv.get("/api/system_stats")
        assert r.status == 200
        assert SECRET.encode() not in r.body and b"--s3-endpoint" not in r.body
        argv = r.json()["system"]["argv"]
        assert argv[1:] == ["--disable-api-nodes"] and len(argv) == 2
        assert SECRET not in srv.log()  # nor in the server's own log
    finally:
        srv.stop()
