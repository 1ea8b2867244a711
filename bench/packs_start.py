"""Server start time with 0 and with N custom-node packs.

Each run starts ``python -m opencomfy serve`` on a fresh base directory and times from the
spawn to the first 200 of ``/health`` (the port listens once every pack is loaded and the
routes are added). The packs are N copies of one small pack: two V1 nodes, one HTTP route
and a prestartup script, which is what most packs amount to at start-up. As the machine's
load makes whole starts noisy, the loading itself is also timed in this process:
``build_registry`` (core nodes, compat modules, prestartup scripts, packs) with 0 and N packs.

    .venv/bin/python bench/packs_start.py [--packs 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PACK_INIT = '''
from aiohttp import web
from server import PromptServer


class {name}Add:
    CATEGORY = "bench"
    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"a": ("INT", {{"default": 1}}), "b": ("INT", {{"default": 2}})}}}}

    def run(self, a, b):
        return (a + b,)


class {name}Echo({name}Add):
    RETURN_TYPES = ("STRING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"text": ("STRING", {{"default": ""}})}}}}

    def run(self, text):
        return (text,)


@PromptServer.instance.routes.get("/{name}/ping")
async def ping(request):
    return web.json_response({{"pack": "{name}"}})


NODE_CLASS_MAPPINGS = {{"{name}Add": {name}Add, "{name}Echo": {name}Echo}}
'''

PRESTARTUP = 'import os\nos.environ.setdefault("BENCH_PACKS_PRESTART", "1")\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_packs(base: Path, count: int) -> None:
    for i in range(count):
        name = f"BenchPack{i:02d}"
        pack = base / "custom_nodes" / name
        pack.mkdir(parents=True)
        (pack / "__init__.py").write_text(PACK_INIT.format(name=name))
        (pack / "prestartup_script.py").write_text(PRESTARTUP)


def start_once(count: int) -> float:
    """Seconds from the spawn until /health answers."""
    with tempfile.TemporaryDirectory(prefix="packs-start-") as tmp:
        base = Path(tmp)
        make_packs(base, count)
        port = free_port()
        log_path = base / "server.log"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "opencomfy", "serve", "--port", str(port),
                 "--base-directory", str(base), "--disable-auto-launch"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                elapsed = _wait_healthy(port, proc, started)
            finally:
                proc.terminate()
                proc.wait(30)
        return elapsed


def _wait_healthy(port: int, proc: subprocess.Popen, started: float) -> float:
    deadline = started + 120
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("server did not become healthy within 120 s")


def registry_build_seconds(count: int, runs: int) -> float:
    """Median seconds of build_registry over a base with ``count`` packs (in this process)."""
    sys.path.insert(0, str(REPO / "src"))
    from opencomfy.config import Config
    from opencomfy.nodes.setup import build_registry

    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="packs-build-") as tmp:
            make_packs(Path(tmp), count)
            started = time.perf_counter()
            build_registry(Config(base_directory=Path(tmp)))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"server start time, median of {args.runs} runs (spawn -> first /health 200)")
    results = {}
    for count in (0, args.packs):
        starts = [start_once(count) for _ in range(args.runs)]
        results[count] = statistics.median(starts)
        print(f"  {count:3d} packs: {statistics.median(starts):6.2f} s "
              f"(min {min(starts):.2f}, max {max(starts):.2f})")
    extra = results[args.packs] - results[0]
    print(f"  cost of {args.packs} packs: {extra:+.2f} s ({extra / max(args.packs, 1) * 1000:+.0f} ms per pack)")
    registry_build_seconds(0, 1)  # warm: the core nodes' and compat modules' first imports
    base = registry_build_seconds(0, args.runs * 2)
    loaded = registry_build_seconds(args.packs, args.runs * 2)
    print(f"build_registry in process, median of {args.runs * 2}: 0 packs {base * 1000:.0f} ms, "
          f"{args.packs} packs {loaded * 1000:.0f} ms "
          f"({(loaded - base) / max(args.packs, 1) * 1000:.1f} ms per pack)")


if __name__ == "__main__":
    main()
