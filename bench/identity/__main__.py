"""bench/identity: what authentication adds to a request.

    python -m bench.identity            # starts two opencomfy servers on temp dirs

Starts one server with `--auth none` and one with `--auth required`, creates a user and an
API key through the CLI, then times GET /api/prompt (a route that does almost nothing else)
sequentially: without credentials on the first, with `X-API-Key`, with a bearer JWT and
with the session cookie on the second. Prints medians and the difference. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.harness import Server  # noqa: E402


async def median_ms(url: str, headers: dict, runs: int) -> float:
    async with aiohttp.ClientSession() as session:
        for _ in range(min(200, runs)):  # warm-up (connections, caches)
            async with session.get(url, headers=headers) as r:
                await r.read()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            async with session.get(url, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2000)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-identity-"))
    local = Server(base_dir=tmp / "local").start()
    auth = Server(base_dir=tmp / "auth", args=["--auth", "required", "--rate-limit", "0"]).start()
    try:
        done = auth.cli("users", "create", "--email", "bench@example.com", "--password", "bench-pw")
        assert done.returncode == 0, done.stderr
        key = auth.cli("keys", "create", "--email", "bench@example.com").stdout.strip()
        token = auth.post("/login", {"email": "bench@example.com", "password": "bench-pw"}).json()["token"]
        session = auth.request("POST", "/api/auth/session", headers={"X-API-Key": key})
        cookie = session.headers["Set-Cookie"].split(";", 1)[0]
        base = asyncio.run(median_ms(local.url + "/api/prompt", {}, args.runs))
        print(f"--auth none        GET /api/prompt median {base:.3f} ms")
        for name, headers in (("X-API-Key", {"X-API-Key": key}),
                              ("Bearer JWT", {"Authorization": f"Bearer {token}"}),
                              ("session cookie", {"Cookie": cookie})):
            got = asyncio.run(median_ms(auth.url + "/api/prompt", headers, args.runs))
            print(f"{name:18s} GET /api/prompt median {got:.3f} ms  (auth adds {got - base:+.3f} ms)")
    finally:
        local.stop()
        auth.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
