"""bench/server: overhead and throughput of a ComfyUI-API server.

    python -m bench.server                      # starts its own opencomfy on a temp dir
    python -m bench.server --url http://127.0.0.1:8188   # any ComfyUI-API server

Prints: sequential latency (submit -> final `executing {node: null}`) of
EmptyImage -> ImageInvert -> PreviewImage with a different colour each time; prompts per
second for a burst of 200; POST /api/prompt latency with 16 concurrent submitters;
/api/object_info latency; /api/history?max_items=50 latency (with N stored jobs when this
script started the server and seeded it); server memory before and after.
Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.server.seed import seed_finished_jobs


def graph(colour: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": colour}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


class Client:
    """One websocket client that records when each of its prompts finished."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url
        self.client_id = uuid.uuid4().hex
        self.done: dict[str, asyncio.Future] = {}

    async def connect(self) -> None:
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        self.ws = await self.session.ws_connect(ws_url, max_msg_size=0)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if data.get("type") == "executing" and data["data"].get("node") is None:
                pid = data["data"].get("prompt_id")
                fut = self.done.setdefault(pid, asyncio.get_running_loop().create_future())
                if not fut.done():
                    fut.set_result(time.perf_counter())

    async def submit(self, colour: int) -> tuple[str, float]:
        t0 = time.perf_counter()
        async with self.session.post(f"{self.url}/api/prompt",
                                     json={"prompt": graph(colour), "client_id": self.client_id}) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"submit failed: {r.status} {body}")
        pid = body["prompt_id"]
        self.done.setdefault(pid, asyncio.get_running_loop().create_future())
        return pid, t0

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"median {statistics.median(values) * 1000:8.2f} ms   p95 {p95 * 1000:8.2f} ms   (n={len(values)})"


async def sequential(session, url: str, runs: int) -> list[float]:
    client = Client(session, url)
    await client.connect()
    out = []
    for i in range(runs):
        pid, t0 = await client.submit((i * 7919) % 0xFFFFFF)
        out.append(await asyncio.wait_for(client.done[pid], 60) - t0)
    await client.close()
    return out


async def burst(session, url: str, count: int) -> float:
    client = Client(session, url)
    await client.connect()
    t0 = time.perf_counter()
    pids = [pid for pid, _ in await asyncio.gather(*(client.submit(i) for i in range(count)))]
    await asyncio.wait_for(asyncio.gather(*(client.done[p] for p in pids)), 300)
    elapsed = time.perf_counter() - t0
    await client.close()
    return count / elapsed


async def concurrent_submit(session, url: str, workers: int, per_worker: int) -> list[float]:
    client = Client(session, url)
    await client.connect()
    latencies: list[float] = []
    pids: list[str] = []

    async def submitter(w: int) -> None:
        for i in range(per_worker):
            pid, t0 = await client.submit(w * 1000 + i)
            latencies.append(time.perf_counter() - t0)
            pids.append(pid)

    await asyncio.gather(*(submitter(w) for w in range(workers)))
    await asyncio.wait_for(asyncio.gather(*(client.done[p] for p in pids)), 300)
    await client.close()
    return latencies


async def get_latency(session, url: str, path: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with session.get(url + path) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status}")
        out.append(time.perf_counter() - t0)
    return out


def rss_mb(pid: int | None) -> str:
    if pid is None:
        return "n/a (foreign server)"
    import psutil

    return f"{psutil.Process(pid).memory_info().rss / 2**20:.1f} MB"


async def run(args, url: str, pid: int | None, db_url: str | None) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"X-API-Key": args.api_key} if args.api_key else None
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        print(f"server: {url}")
        print(f"memory at start                     {rss_mb(pid)}")
        await sequential(session, url, 5)  # warm up: imports, caches, first PNG encode
        print(f"sequential submit->done              {ms(await sequential(session, url, args.runs))}")
        print(f"burst of {args.burst}                        {await burst(session, url, args.burst):8.1f} prompts/s")
        lat = await concurrent_submit(session, url, 16, args.per_submitter)
        print(f"POST /api/prompt, 16 submitters      {ms(lat)}")
        print(f"GET /api/object_info                 {ms(await get_latency(session, url, '/api/object_info', args.runs))}")
        h = "/api/history?max_items=50"
        print(f"GET {h} (few jobs) {ms(await get_latency(session, url, h, args.runs))}")
        if db_url and args.seed_history:
            t0 = time.perf_counter()
            await seed_finished_jobs(db_url, args.seed_history)
            print(f"seeded {args.seed_history} finished jobs in {time.perf_counter() - t0:.1f} s")
            print(f"memory after seeding                {rss_mb(pid)}")
            print(f"GET {h} ({args.seed_history} jobs) {ms(await get_latency(session, url, h, args.runs))}")
            print(f"GET /api/jobs?limit=50 ({args.seed_history}) "
                  f"{ms(await get_latency(session, url, '/api/jobs?limit=50', args.runs))}")
        elif args.seed_history:
            print("history seeding: skipped (only possible when this script starts the server)")
        print(f"memory at end                       {rss_mb(pid)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="an already running ComfyUI-API server; default: start opencomfy")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--burst", type=int, default=200)
    p.add_argument("--per-submitter", type=int, default=10)
    p.add_argument("--seed-history", type=int, default=100_000, metavar="N")
    p.add_argument("--database-url", help="when starting opencomfy: its database (default SQLite)")
    p.add_argument("--api-key", help="send X-API-Key on every request and the websocket (a server "
                   "with --auth required); bench.identity measures what authentication adds")
    args = p.parse_args()
    if args.url:
        asyncio.run(run(args, args.url.rstrip("/"), None, None))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.harness import Server

    with tempfile.TemporaryDirectory(prefix="opencomfy-bench-") as tmp:
        server = Server(base_dir=Path(tmp), database_url=args.database_url).start()
        try:
            db_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp).resolve() / 'opencomfy.db'}"
            asyncio.run(run(args, server.url, server.proc.pid, db_url))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
