"""Diffusion benchmark: seconds per step through our graph and through diffusers' pipeline.

    .venv/bin/python -m bench.diffusion [--size sd15|tiny] [--steps 2] [--width 512 --height 512]

Builds a random-weight checkpoint of the full SD 1.5 architecture (``--size sd15``, fp16 on
disk, about 2 GB) in the original single-file layout, then in one process:
- loads it through CheckpointLoaderSimple (cold, then warm: the second load is the cache);
- runs the default text-to-image graph (CheckpointLoaderSimple, CLIPTextEncode x2,
  EmptyLatentImage, KSampler euler/normal, VAEDecode, PreviewImage) through the Engine;
- runs diffusers' StableDiffusionPipeline on the very same modules, same prompt, seed, sampler
  (EulerDiscreteScheduler) and steps, decoding to pixels as well.
Each side first runs once with one step (warm-up). A step's time is the interval between two
consecutive step-end callbacks (our progress report, the pipeline's callback_on_step_end), so
text encoding, VAE decoding and file writing stay out of it; the figure is the median interval
of a run, the best of ``--rounds`` alternating rounds (wall time, and this process's CPU time,
which is steadier on a busy machine). "Outside the UNet" is the step's wall time minus the
time spent in the UNet's forward: the orchestration itself, which noise on a shared machine
hides in the totals. Set --threads on a shared CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

if __package__ in (None, ""):  # allow `python bench/diffusion/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402

PROMPT = "beautiful scenery nature glass bottle landscape, purple galaxy bottle"
NEGATIVE = "text, watermark"


def graph(ckpt: str, *, steps: int, width: int, height: int, seed: int) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "model": ["4", 0], "seed": seed, "steps": steps, "cfg": 7.5, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class StepClock:
    """Timestamps (wall, process CPU) at the end of every sampling step, and the wall time
    spent inside the UNet's forward, so that a step splits into UNet and everything else."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []
        self.unet_calls: list[tuple[float, float]] = []
        self._started = 0.0

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))

    def clear(self) -> None:
        self.marks.clear()
        self.unet_calls.clear()

    def watch(self, unet, device) -> None:
        def before(_module, _args, _kwargs=None):
            _sync(device)
            self._started = time.perf_counter()

        def after(_module, _args, _output):
            _sync(device)
            self.unet_calls.append((self._started, time.perf_counter()))

        unet.register_forward_pre_hook(before)
        unet.register_forward_hook(after)

    def median_step(self) -> tuple[float, float, float]:
        """(wall, CPU, wall outside the UNet) of the median step."""
        walls, cpus, outside = [], [], []
        for a, b in zip(self.marks, self.marks[1:]):
            walls.append(b[0] - a[0])
            cpus.append(b[1] - a[1])
            inside = sum(end - start for start, end in self.unet_calls if a[0] <= start and end <= b[0])
            outside.append(b[0] - a[0] - inside)
        mid = len(walls) // 2
        return sorted(walls)[mid], sorted(cpus)[mid], sorted(outside)[mid]


def install_graph_clock(clock: StepClock, device) -> None:
    """Mark every progress report of our KSampler (it reports once per finished step)."""
    from opencomfy.engine import progress

    original = progress.report_progress

    def report(value, max, node_id=None, preview=None):
        _sync(device)
        clock.mark()
        return original(value, max, node_id=node_id, preview=preview)

    progress.report_progress = report


async def run_graph(engine, ckpt, *, steps, width, height, seed, device) -> float:
    prompt = graph(ckpt, steps=steps, width=width, height=height, seed=seed)
    v = await engine.validate(prompt)
    assert v.ok, v.error
    engine.free()          # drop cached outputs (the model cache is kept), as a new prompt would
    _sync(device)
    t = time.perf_counter()
    r = await engine.run(prompt, prompt_id=f"bench-{steps}-{seed}", execute_outputs=v.outputs)
    _sync(device)
    assert r.status == "success", r.error
    return time.perf_counter() - t


def run_pipeline(pipe, *, steps, width, height, seed, device, clock=None) -> float:
    def on_step_end(_pipe, _i, _t, kwargs):
        if clock is not None:
            _sync(device)
            clock.mark()
        return kwargs

    _sync(device)
    t = time.perf_counter()
    pipe(PROMPT, negative_prompt=NEGATIVE, height=height, width=width, num_inference_steps=steps,
         guidance_scale=7.5, generator=torch.Generator().manual_seed(seed), output_type="np",
         callback_on_step_end=on_step_end)
    _sync(device)
    return time.perf_counter() - t


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="sd15", choices=["sd15", "tiny"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workdir", default=None, help="where to write the checkpoint (a temp dir)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from opencomfy.compat import folder_paths
    from opencomfy.diffusion import cache
    from opencomfy.diffusion.detect import bundled_config
    from opencomfy.diffusion.memory import compute_device
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint
    from opencomfy.engine import Engine, NodeRegistry
    from opencomfy.nodes import register_core_nodes
    from opencomfy.nodes.diffusion_loaders import CheckpointLoaderSimple

    device = compute_device()
    base = args.workdir or tempfile.mkdtemp(prefix="bench-diffusion-")
    folder_paths.configure(base_directory=base)
    ckpt_dir = os.path.join(base, "models", "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    ckpt = f"random_{args.size}.safetensors"
    path = os.path.join(ckpt_dir, ckpt)
    if not os.path.exists(path):
        t = time.perf_counter()
        write_sd1_checkpoint(path, args.size, seed=0, dtype=torch.float16 if args.size == "sd15" else torch.float32)
        print(f"wrote {path} ({os.path.getsize(path) / 1e9:.2f} GB) in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    model, clip, vae = CheckpointLoaderSimple().load_checkpoint(ckpt)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    CheckpointLoaderSimple().load_checkpoint(ckpt)
    warm = time.perf_counter() - t
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.width}x{args.height}, "
          f"{args.steps} steps, euler/normal, cfg 7.5")
    print(f"checkpoint load: {cold:.2f} s from the file (page cache warm after writing), "
          f"{warm * 1000:.2f} ms from the model cache")

    registry = NodeRegistry()
    register_core_nodes(registry)
    engine = Engine(registry)
    scheduler_config = {k: v for k, v in bundled_config("sd1_scheduler").items() if k != "_class_name"}
    # The pipeline runs on the same modules: move them where our graph runs them.
    for m in (model.unet, clip.model, vae.autoencoder):
        m.to(device)
    pipe = StableDiffusionPipeline(vae=vae.autoencoder, text_encoder=clip.model, tokenizer=clip.tokenizer,
                                   unet=model.unet, scheduler=EulerDiscreteScheduler.from_config(scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    size = dict(width=args.width, height=args.height, device=device)

    graph_clock, pipe_clock = StepClock(), StepClock()
    install_graph_clock(graph_clock, device)
    graph_clock.watch(model.unet, device)
    pipe_clock.watch(model.unet, device)
    asyncio.run(run_graph(engine, ckpt, steps=1, seed=1, **size))        # warm-up
    run_pipeline(pipe, steps=1, seed=1, **size)
    best: dict[str, tuple[float, float, float, float]] = {}
    for _round in range(args.rounds):
        for name, clock in (("graph", graph_clock), ("pipeline", pipe_clock)):
            clock.clear()
            if name == "graph":
                total = asyncio.run(run_graph(engine, ckpt, steps=args.steps, seed=1, **size))
            else:
                total = run_pipeline(pipe, steps=args.steps, seed=1, clock=clock, **size)
            wall, cpu, outside = clock.median_step()
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu, outside, total)
    for name, (wall, cpu, outside, total) in best.items():
        print(f"{name:9s} {wall * 1000:10.2f} ms/step wall  {cpu * 1000:10.2f} ms/step CPU  "
              f"{outside * 1000:8.2f} ms/step outside the UNet  (whole run {total:.2f} s, {args.steps} steps)")
    wall_ratio = best["graph"][0] / best["pipeline"][0]
    cpu_ratio = best["graph"][1] / best["pipeline"][1]
    print(f"graph / pipeline per step: wall {wall_ratio:.3f} ({(wall_ratio - 1) * 100:+.1f}%), "
          f"CPU {cpu_ratio:.3f} ({(cpu_ratio - 1) * 100:+.1f}%); outside the UNet: graph "
          f"{best['graph'][2] * 1000:.2f} ms, pipeline {best['pipeline'][2] * 1000:.2f} ms per step")
    cache.clear()


if __name__ == "__main__":
    main()
