"""Spec fuzzing: schemathesis sends what `spec/openapi.yaml` allows, and what it does not, to
a `--auth required` server with a real API key and workspace token. No request may end in
a server error, and every response must fit the spec's schema, except the deviations that
docs/spec-deviations.md lists (relaxed exactly there, and shown to still happen).

The run is bounded (a fixed seed, a time budget, a few examples per operation and phase,
a timeout per request and one for the whole run) so it neither hangs nor floods. On failure
the assertion carries schemathesis' report: each failing request as a curl command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.conformance.spec import load_spec, response_validator
from tests.harness import REPO, Server

SPEC = REPO / "spec" / "openapi.yaml"
DEVIATIONS_DOC = REPO / "docs" / "spec-deviations.md"
SEED = 20260105
MAX_TIME_S = 45          # the whole schemathesis run, all phases
MAX_EXAMPLES = 8         # per operation and phase: enough to find, not enough to flood
REQUEST_TIMEOUT_S = 15   # per request: a handler that hangs is a failure, not a stuck test
CHECKS = ("not_a_server_error", "response_schema_conformance")

# Operations that would wreck the run itself (by operationId), with why. Everything else,
# the destructive ones included, is fuzzed: the server belongs to this test alone.
EXCLUDED = {
    "revokeWorkspaceAPIKey": "revokes API keys: the fuzzer's own key would stop working",
    "bulkRevokeWorkspaceMemberAPIKeys": "revokes every key of a member, the fuzzer's included",
    "removeWorkspaceMember": "may remove the fuzzing user from its own workspace",
    "leaveWorkspace": "takes the fuzzing user out of its workspace",
    "deleteWorkspace": "may delete the workspace the key belongs to",
}


# Operations no credential of the run can pass, rightly: the token exchange takes an identity
# token (from sign-in), and the run holds a workspace token and an API key.
AUTH_ONLY_FAILS = {"POST /api/auth/token"}
MAX_GATED = 3


def listed_deviations() -> list[tuple[str, str]]:
    """(operationId, check name) of each row of the table in docs/spec-deviations.md."""
    rows = []
    for line in DEVIATIONS_DOC.read_text().splitlines():
        match = re.match(r"^\|\s*`(\w+)`[^|]*\|\s*`(\w+)`\s*\|", line)
        if match:
            rows.append((match[1], match[2]))
    return rows


def _operation_ids() -> set[str]:
    return {op["operationId"] for item in load_spec()["paths"].values()
            for op in item.values() if isinstance(op, dict) and "operationId" in op}


def schemathesis_config(deviations: list[tuple[str, str]]) -> str:
    """schemathesis.toml: credentials per security scheme (the API key where the spec takes
    one, the workspace token where it wants a Bearer token), only our checks, relaxed per
    listed deviation. (Checks are chosen here and not with -c: options on the command line
    would override the per-operation ones.)"""
    lines = ["[auth.openapi.ApiKeyAuth]", 'api_key = "${FUZZ_API_KEY}"', "",
             "[auth.openapi.BearerAuth]", 'bearer = "${FUZZ_BEARER_TOKEN}"', "",
             "[checks]", "enabled = false"]
    lines += [f"{check}.enabled = true" for check in CHECKS]
    for operation_id, check in deviations:
        lines += ["", "[[operations]]", f'include-operation-id = "{operation_id}"',
                  f"checks.{check}.enabled = false"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    """A `--auth required` server (both rate limits off: the fuzzer is one busy client, and
    many of its requests carry deliberately broken credentials), a user made through the
    admin CLI, a team workspace of theirs (so invites and members can be fuzzed too), an
    API key of that workspace from the CLI and a workspace token for it (for the routes the
    spec reserves to Bearer tokens). No OPENCOMFY_SECRETS_KEYS: secrets must work with the
    keyring the server makes for itself."""
    base = tmp_path_factory.mktemp("fuzz")
    srv = Server(base_dir=base, args=["--auth", "required", "--rate-limit", "0",
                                      "--auth-failure-limit", "0"],
                 env={"OPENCOMFY_SECRETS_KEYS": ""})
    email, password = "fuzz@example.com", "fuzz fuzz fuzz"
    done = srv.cli("users", "create", "--email", email, "--password", password)
    assert done.returncode == 0, done.stderr
    srv.start()
    r = srv.post("/login", {"email": email, "password": password})
    assert r.status == 200, r.body
    identity = {"Authorization": f"Bearer {r.json()['token']}"}
    personal = srv.post("/api/auth/token", {}, headers=identity)
    assert personal.status == 200, personal.body
    r = srv.post("/api/workspaces", {"name": "fuzz team"},
                 headers={"Authorization": f"Bearer {personal.json()['token']}"})
    assert r.status == 201, r.body
    team_id = r.json()["id"]
    r = srv.post("/api/auth/token", {"workspace_id": team_id}, headers=identity)
    assert r.status == 200, r.body
    srv.bearer = r.json()["token"]
    done = srv.cli("keys", "create", "--email", email, "--workspace", team_id, "--name", "fuzz")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("comfyui-"), done.stdout
    yield srv, key
    srv.stop()


def test_excluded_and_deviating_operations_exist_in_the_spec():
    ids = _operation_ids()
    assert set(EXCLUDED) <= ids, set(EXCLUDED) - ids
    deviations = listed_deviations()
    assert deviations, "docs/spec-deviations.md lists no deviation: the table is unreadable"
    assert {op for op, _ in deviations} <= ids


# How to show each listed deviation: the request that produces it.
def _userdata_post(srv: Server, key: str):
    return srv.post("/api/userdata/fuzz-deviation%2Fa.json", data=b"{}",
                    headers={"X-API-Key": key})


def _userdata_move(srv: Server, key: str):
    _userdata_post(srv, key)
    return srv.post("/api/userdata/fuzz-deviation%2Fa.json/move/fuzz-deviation%2Fb.json"
                    "?overwrite=true", headers={"X-API-Key": key})


DEMONSTRATIONS = {
    "postUserdataFile": ("POST", "/api/userdata/{file}", _userdata_post),
    "moveUserdataFile": ("POST", "/api/userdata/{file}/move/{dest}", _userdata_move),
}


@pytest.mark.parametrize(("operation_id", "check"), listed_deviations())
def test_each_listed_deviation_still_happens(fuzz_target, operation_id, check):
    """A deviation that no longer happens must leave the list (and the run's relaxations)."""
    srv, key = fuzz_target
    assert check == "response_schema_conformance", "only schema deviations can be shown here"
    assert operation_id in DEMONSTRATIONS, f"add a request that shows {operation_id}'s deviation"
    method, path, send = DEMONSTRATIONS[operation_id]
    r = send(srv, key)
    assert r.status == 200, r.body
    validator = response_validator(method, path, r.status)
    assert validator is not None and list(validator.iter_errors(r.json())), (
        f"{operation_id} now answers as the spec says: drop it from docs/spec-deviations.md")


def _schemathesis() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("schemathesis is not installed (requirements/test.txt)")
    return [str(exe)]


@pytest.mark.slow
@pytest.mark.timeout(MAX_TIME_S + 240)
def test_fuzzing_finds_no_server_error_and_no_schema_violation(fuzz_target, tmp_path):
    srv, key = fuzz_target
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(listed_deviations()))
    excluded = [arg for op in EXCLUDED for arg in ("--exclude-operation-id", op)]
    # One worker: the server is the bottleneck anyway, and with several threads hypothesis'
    # use of Python 3.11's ast module fails now and then ("AST constructor recursion depth
    # mismatch"), a runtime error of the fuzzer that would read as a failure of ours.
    cmd = [*_schemathesis(), "--config-file", str(config), "--no-color", "run", str(SPEC),
           "--url", srv.url,
           "--phases", "examples,coverage,fuzzing", "--seed", str(SEED),
           "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_TIME_S),
           "--request-timeout", str(REQUEST_TIMEOUT_S), "--workers", "1",
           "--generation-database", "none", "--continue-on-failure", *excluded]
    try:
        env = {**os.environ, "FUZZ_API_KEY": key, "FUZZ_BEARER_TOKEN": srv.bearer}
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env,
                              timeout=MAX_TIME_S + 180)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"schemathesis did not finish in time:\n{(out or '')[-6000:]}\n{srv.log()}")
    report = done.stdout + done.stderr
    (tmp_path / "schemathesis-report.txt").write_text(report)  # kept with pytest's tmp dirs
    assert "API Operations" in report, report[-6000:]  # it ran against the server at all
    assert done.returncode == 0, (
        f"schemathesis found failures (reproduce with the curl lines):\n{_failures(report)}\n"
        f"server log:\n{_server_error_tracebacks(srv)}")
    # A gate that turns the fuzzer away (a rate limit, a credential that stopped working)
    # shows as dozens of operations answered only 429 or 401, and the run would test nothing
    # behind it. One or two such operations are schemathesis' reading of an operation whose
    # generated requests were all refused for their own reasons (the 50-keys quota is a 429).
    warnings = _section(report, "WARNINGS", "SUMMARY")
    gated = (_listed(warnings, "Rate limited:") | _listed(warnings, "401 Unauthorized")) - AUTH_ONLY_FAILS
    assert len(gated) <= MAX_GATED, warnings


def _listed(warnings: str, heading: str) -> set[str]:
    """The operations ("METHOD /path") listed under one heading of schemathesis' warnings."""
    block = warnings.split(heading, 1)[1] if heading in warnings else ""
    block = block.split("\n", 1)[1] if "\n" in block else ""  # past the heading's own line
    block = block.lstrip("\n").split("\n\n", 1)[0]  # the list ends at the first blank line
    return set(re.findall(r"^  - (\w+ \S+)$", block, flags=re.MULTILINE))


def _failures(report: str) -> str:
    """The FAILURES and ERRORS sections of the report (each failing request, as curl)."""
    return _section(report, "FAILURES", "WARNINGS") + _section(report, "ERRORS", "WARNINGS")


def _section(report: str, title: str, next_title: str) -> str:
    start = report.find(f"= {title} =")
    if start < 0:
        return ""
    end = report.find(f"= {next_title} =", start)
    return report[start:end if end >= 0 else None][-20000:]


def _server_error_tracebacks(srv: Server) -> str:
    log = srv.log_path.read_text(errors="replace") if srv.log_path.exists() else ""
    chunks = [c for c in log.split("\n2") if "Traceback" in c]
    return "\n".join(chunks[-5:])[-8000:]


def test_fuzz_reproducers_stay_fixed(fuzz_target):
    """The server errors an earlier fuzzing run found, replayed as they were sent."""
    srv, key = fuzz_target
    auth = {"X-API-Key": key}
    huge = "2090208438484217888768"  # past 64 bits
    for path in ("/api/history_v2", "/api/tasks", "/api/jobs", "/api/assets", "/api/tags"):
        r = srv.get(f"{path}?offset={huge}", headers=auth)
        assert r.status == 200, (path, r.status, r.body[:300])
    r = srv.get(f"/api/history_v2?max_items={huge}", headers=auth)
    assert r.status == 200, r.body[:300]
    r = srv.get(f"/api/history?max_items={huge}&offset=-{huge}", headers=auth)
    assert r.status == 200, r.body[:300]
    # A multipart part header aiohttp cannot parse (control bytes in the field name).
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"A\x06w\xc2\x9a\"\r\n\r\n1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.pdf\""
            f"\r\n\r\n%PDF-1.4\n\r\n--{boundary}--\r\n").encode("latin-1")
    r = srv.post("/api/assets", data=body,
                 headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 400 and r.json()["code"], r.body[:300]
    # A non-image file is an asset like any other.
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.pdf\""
            f"\r\n\r\n%PDF-1.4 fuzz\n\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"tags\"\r\n\r\ninput\r\n--{boundary}--\r\n").encode()
    r = srv.post("/api/assets", data=body,
                 headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status == 201, r.body[:300]
    assert "preview_url" not in r.json()  # nothing to preview in a PDF
    zero = "blake3:" + "0" * 64
    for payload, status in (({"hash": zero, "tags": None, "name": "", "mime_type": ""}, 400),
                            ({"hash": zero, "tags": ["x"], "name": 5}, 400),
                            ({"hash": zero, "tags": ["x"]}, 404)):
        r = srv.post("/api/assets/from-hash", payload, headers=auth)
        assert r.status == status and r.json()["code"], (payload, r.status, r.body[:300])
    r = srv.get("/api/secrets", headers=auth)
    assert r.status == 200 and isinstance(r.json()["data"], list), r.body[:300]


def test_preview_url_is_absolute_and_follows_the_forwarded_scheme(fuzz_target):
    """`preview_url` is `format: uri`: absolute, from the request's Host, with the scheme a
    proxy reports in X-Forwarded-Proto (the header the server already trusts); a forged
    X-Forwarded-Host changes nothing."""
    from tests.harness import multipart

    srv, key = fuzz_target
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
           b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
           b"\x00\x00\x00IEND\xaeB`\x82")
    body, ctype = multipart({"tags": "input"}, {"file": ("dot.png", png)})
    r = srv.post("/api/assets", data=body, headers={"X-API-Key": key, "Content-Type": ctype})
    assert r.status == 201, r.body
    asset = r.json()
    assert asset["preview_url"] == f"{srv.url}/api/assets/{asset['id']}/content"
    r = srv.get(f"/api/assets/{asset['id']}", headers={
        "X-API-Key": key, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"})
    url = urllib.parse.urlsplit(r.json()["preview_url"])
    assert (url.scheme, url.netloc) == ("https", f"127.0.0.1:{srv.port}")
    listed = srv.get("/api/assets?include_tags=input", headers={"X-API-Key": key}).json()
    assert all(a["preview_url"].startswith(srv.url) for a in listed["assets"] if "preview_url" in a)
