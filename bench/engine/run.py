"""Engine benchmark: per-node overhead, cache-key scaling, fully cached re-run.

Run with `.venv/bin/python -m bench.engine` (or `python bench/engine/run.py`).
Targets: < 50 µs engine overhead per trivial node; a fully cached 1,000-node prompt < 20 ms.

Figures are the best of several runs (the least disturbed by other processes), as wall time and
as this process's CPU time; on a busy machine the CPU time is the steadier of the two.
"""

from __future__ import annotations

import asyncio
import gc
import os
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


class Clock:
    """Wall and CPU time of a block, with the garbage collector paused."""

    def __enter__(self):
        gc.collect()
        gc.disable()
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        gc.enable()


def best(samples: list[Clock]) -> tuple[float, float]:
    return min(c.wall for c in samples), min(c.cpu for c in samples)


async def bench_uncached(nodes: int, repeat: int) -> tuple[tuple, tuple]:
    """Best (wall, cpu) of validate and of run for a chain that always runs (cache none)."""
    engine = Engine(registry(), cache_mode="none")
    validations, runs = [], []
    for i in range(repeat):
        prompt = chain(nodes, start=i)
        with Clock() as validated:
            validation = await engine.validate(prompt)
        with Clock() as ran:
            result = await engine.run(prompt, prompt_id=f"b{i}", execute_outputs=validation.outputs,
                                      sink=CountingSink())
        assert result.status == "success" and result.outputs[str(nodes - 1)]["value"] == [i + nodes - 2]
        validations.append(validated)
        runs.append(ran)
    return best(validations), best(runs)


async def bench_cached(nodes: int, repeat: int) -> tuple[tuple, tuple]:
    """Best (wall, cpu) of validate and of run for a prompt whose every node is cached."""
    engine = Engine(registry())
    prompt = chain(nodes)
    validation = await engine.validate(prompt)
    await engine.run(prompt, prompt_id="warm", execute_outputs=validation.outputs)
    validations, runs = [], []
    for i in range(repeat):
        again = chain(nodes)
        with Clock() as validated:
            validation = await engine.validate(again)
        sink = CountingSink()
        with Clock() as ran:
            result = await engine.run(again, prompt_id=f"c{i}", execute_outputs=validation.outputs, sink=sink)
        assert result.status == "success" and sink.count < 10  # nothing executed
        validations.append(validated)
        runs.append(ran)
    return best(validations), best(runs)


def bench_keys(nodes: int, repeat: int) -> tuple[float, float]:
    reg = registry()
    prompt = chain(nodes)
    samples = []
    for _ in range(repeat):
        keys = CacheKeys(DynamicPrompt(prompt), SpecCache(reg), HiddenValues(prompt))
        with Clock() as clock:
            keys.key_of(str(nodes - 1))
        samples.append(clock)
    return best(samples)


def fmt(pair: tuple[float, float], per: int = 1, unit: float = 1e3) -> str:
    wall, cpu = pair
    return f"wall {wall / per * unit:8.2f}  cpu {cpu / per * unit:8.2f}"


async def main_async() -> None:
    print("opencomfy engine benchmark (best of several runs; gc paused while timing)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
    own = Trivial.call(100_000) / 100_000 * 1e6
    validate, ran = await bench_uncached(1000, 9)
    per_node = min(ran) / 1000 * 1e6
    print("\n1. 1,000-node chain of trivial nodes, nothing cached (ms)")
    print(f"   validate:  {fmt(validate)}")
    print(f"   run:       {fmt(ran)}")
    print(f"   per node:  {fmt(ran, 1000, 1e6)} µs   (the node's own work: {own:.2f} µs)")
    print(f"   target < 50 µs/node: {'OK' if per_node < 50 else 'MISSED'}")
    print("\n2. cache-key computation of the whole chain, from its last node (ms)")
    base = None
    for nodes in (250, 500, 1000, 2000):
        wall, cpu = bench_keys(nodes, 15)
        base = base or cpu / nodes
        print(f"   {nodes:5d} nodes: {fmt((wall, cpu))}   cpu per node {cpu / nodes * 1e6:5.2f} µs "
              f"(x{cpu / nodes / base:.2f} of the 250-node chain's)")
    validate, ran = await bench_cached(1000, 9)
    print("\n3. fully cached re-run of the 1,000-node chain (ms)")
    print(f"   run:       {fmt(ran)}   target < 20 ms: {'OK' if min(ran) < 0.020 else 'MISSED'}")
    print(f"   validate:  {fmt(validate)}")


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
