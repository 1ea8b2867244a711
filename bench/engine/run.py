"""Engine benchmark: per-node overhead, cache-key scaling, fully cached re-run.

Run with `.venv/bin/python -m bench.engine` (or `python bench/engine/run.py`).
Targets: < 50 µs engine overhead per trivial node; a fully cached 1,000-node prompt < 20 ms.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # allow `python bench/engine/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from opencomfy.engine import Engine, NodeRegistry  # noqa: E402
from opencomfy.engine.cache_keys import CacheKeys  # noqa: E402
from opencomfy.engine.dynamic_prompt import DynamicPrompt  # noqa: E402
from opencomfy.engine.inputs import HiddenValues  # noqa: E402
from opencomfy.engine.node_spec import SpecCache  # noqa: E402


class Start:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


class Step:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",), "add": ("INT", {"default": 1, "min": 0, "max": 10})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value, add):
        return (value + add,)


class Sink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {"ui": {"value": [value]}}


class Trivial:
    """What a node's own work costs, to subtract from the engine's."""

    @staticmethod
    def call(n: int) -> float:
        step = Step()
        started = time.perf_counter()
        value = 0
        for _ in range(n):
            value = step.run(value=value, add=1)[0]
        return time.perf_counter() - started


class CountingSink:
    def __init__(self):
        self.count = 0

    def send(self, event, data):
        self.count += 1

    def send_preview(self, image_format, image, metadata):
        pass

    def send_progress_text(self, node_id, text):
        pass


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in (Start, Step, Sink):
        reg.add(cls.__name__, cls)
    return reg


def chain(length: int, start: int = 0) -> dict:
    prompt = {"0": {"class_type": "Start", "inputs": {"value": start}}}
    for i in range(1, length - 1):
        prompt[str(i)] = {"class_type": "Step", "inputs": {"value": [str(i - 1), 0], "add": 1}}
    prompt[str(length - 1)] = {"class_type": "Sink", "inputs": {"value": [str(length - 2), 0]}}
    return prompt


def timed(fn, repeat: int) -> float:
    """Median wall time of `fn()` over `repeat` runs (with gc off while timing)."""
    samples = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        finally:
            gc.enable()
    return statistics.median(samples)


async def bench_uncached(nodes: int, repeat: int) -> tuple[float, float, float]:
    """(validate s, run s, run per node µs) for a chain that always runs (cache none)."""
    engine = Engine(registry(), cache_mode="none")
    loop = asyncio.get_running_loop()
    validate_times, run_times = [], []
    for i in range(repeat):
        prompt = chain(nodes, start=i)
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        validation = await engine.validate(prompt)
        validated = time.perf_counter()
        result = await engine.run(prompt, prompt_id=f"b{i}", execute_outputs=validation.outputs,
                                  sink=CountingSink())
        finished = time.perf_counter()
        gc.enable()
        assert result.status == "success" and result.outputs[str(nodes - 1)]["value"] == [i + nodes - 2]
        validate_times.append(validated - started)
        run_times.append(finished - validated)
    del loop
    run_s = statistics.median(run_times)
    return statistics.median(validate_times), run_s, run_s / nodes * 1e6


async def bench_cached(nodes: int, repeat: int) -> tuple[float, float]:
    """(validate + run s, run s) of a prompt whose every node is cached."""
    engine = Engine(registry())
    prompt = chain(nodes)
    validation = await engine.validate(prompt)
    await engine.run(prompt, prompt_id="warm", execute_outputs=validation.outputs)
    totals, runs = [], []
    for i in range(repeat):
        again = chain(nodes)
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        validation = await engine.validate(again)
        validated = time.perf_counter()
        sink = CountingSink()
        result = await engine.run(again, prompt_id=f"c{i}", execute_outputs=validation.outputs, sink=sink)
        finished = time.perf_counter()
        gc.enable()
        assert result.status == "success" and sink.count < 10  # nothing executed
        totals.append(finished - started)
        runs.append(finished - validated)
    return statistics.median(totals), statistics.median(runs)


def bench_keys(nodes: int, repeat: int) -> float:
    reg = registry()
    prompt = chain(nodes)

    def compute():
        specs = SpecCache(reg)
        keys = CacheKeys(DynamicPrompt(prompt), specs, HiddenValues(prompt))
        keys.key_of(str(nodes - 1))

    return timed(compute, repeat)


async def main_async() -> None:
    print("opencomfy engine benchmark (median of runs; gc disabled while timing)")
    print(f"python {sys.version.split()[0]}")
    own = Trivial.call(100_000) / 100_000 * 1e6
    validate_s, run_s, per_node = await bench_uncached(1000, 7)
    print("\n1. 1,000-node chain of trivial nodes, nothing cached")
    print(f"   validate: {validate_s * 1e3:8.2f} ms   ({validate_s / 1000 * 1e6:.1f} µs/node)")
    print(f"   run:      {run_s * 1e3:8.2f} ms   ({per_node:.1f} µs/node, of which the node's own "
          f"work {own:.2f} µs)   target < 50 µs/node: {'OK' if per_node < 50 else 'MISSED'}")
    print("\n2. cache-key computation (whole chain, from its last node)")
    base = None
    for nodes in (250, 500, 1000, 2000):
        seconds = bench_keys(nodes, 9)
        base = base or seconds / nodes
        print(f"   {nodes:5d} nodes: {seconds * 1e3:7.2f} ms   ({seconds / nodes * 1e6:.2f} µs/node, "
              f"x{seconds / nodes / base:.2f} of the 250-node cost per node)")
    total_s, cached_run_s = await bench_cached(1000, 9)
    print("\n3. fully cached re-run of the 1,000-node chain")
    print(f"   run:            {cached_run_s * 1e3:7.2f} ms   target < 20 ms: "
          f"{'OK' if cached_run_s < 0.020 else 'MISSED'}")
    print(f"   validate + run: {total_s * 1e3:7.2f} ms")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
