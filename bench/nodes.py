"""Node benchmarks, one sub-benchmark per flag (no flag: all of them).

    .venv/bin/python -m bench.nodes --save-video [--frames 600 --size 512]

--save-video  Peak memory of SaveVideo while it encodes an IMAGE batch (CreateVideo's value,
              the usual end of a video graph) and while it re-encodes a video file (LoadVideo
              -> Video Slice -> SaveVideo, a transcode). The batch itself is built first and
              is not counted: the figure is what saving adds on top, as resident memory
              (RSS, sampled every millisecond: torch, numpy and FFmpeg's buffers alike) and as
              Python-tracked allocations (tracemalloc: numpy and Python objects, not torch's
              or FFmpeg's), each compared with one decoded frame (float32 RGB) and with the
              whole decoded video. Encoding frame by frame, the extra should stay a few dozen
              frames (x264's lookahead) however long the video is.

--samplers    Time per sampling step of SamplerCustomAdvanced (RandomNoise, CFGGuider,
              KSamplerSelect, BasicScheduler) against KSampler with the same model, prompts,
              latent, seed, sampler and scheduler, on a random-weight SD 1.5 checkpoint
              (``--sampler-model tiny``: a small UNet; ``sd15``: the real architecture, 2 GB
              written once). Both run inside a prompt context, so progress events go out as
              in a real run (previews off). A step is the interval between two consecutive
              progress reports; each run's median step, then the median over ``--repeats``
              runs taken in alternation, as wall time and as this process's CPU time (the
              steadier figure on a shared machine). The two paths share the sampler code, so
              the ratio should stay within 2%.

    .venv/bin/python -m bench.nodes --samplers [--sampler-model tiny --steps 20 --repeats 7]

To add a part: write ``def bench_<name>(args) -> None``, register it in ``PARTS`` and give
it a ``--<name>`` flag with its options in ``_add_options``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable

if __package__ in (None, ""):  # allow `python bench/nodes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


class PeakMemory:
    """Peak RSS (a sampling thread) and peak tracemalloc size over a ``with`` block, both as
    the growth over their level when the block started."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.rss_peak = 0
        self.traced_peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, _rss() - self._base)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        self._base = _rss()
        tracemalloc.start()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.rss_peak = max(self.rss_peak, _rss() - self._base)
        self.traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def _mib(n: float) -> str:
    return f"{n / 2**20:8.1f} MiB"


def _frames(count: int, size: int) -> torch.Tensor:
    """``count`` frames of ``size``x``size``: moving gradients, so the encoder has real work."""
    images = torch.empty((count, size, size, 3), dtype=torch.float32)
    ramp = torch.linspace(0, 1, size)
    for i in range(count):
        shift = i / max(count - 1, 1)
        images[i, ..., 0] = (ramp[None, :] + shift) % 1.0
        images[i, ..., 1] = ramp[:, None]
        images[i, ..., 2] = shift
    return images


def _report(label: str, peak: PeakMemory, seconds: float, frames: int, frame_bytes: int,
            video_bytes: int) -> None:
    print(f"{label}: {frames} frames in {seconds:.1f} s ({frames / seconds:.0f} frames/s)")
    print(f"  extra RSS at peak   {_mib(peak.rss_peak)} = {peak.rss_peak / frame_bytes:6.1f} frames"
          f" = {100 * peak.rss_peak / video_bytes:5.2f}% of the decoded video")
    print(f"  tracemalloc peak    {_mib(peak.traced_peak)} = {peak.traced_peak / frame_bytes:6.1f} frames")


def bench_save_video(args) -> None:
    from opencomfy.compat import folder_paths
    from opencomfy.compat.comfy_api.latest._video import VideoFromComponents
    from opencomfy.nodes.video import CreateVideo, LoadVideo, SaveVideo, VideoSlice

    torch.set_num_threads(max(1, args.threads))
    frames, size = args.frames, args.size
    frame_bytes = size * size * 3 * 4
    video_bytes = frames * frame_bytes
    print(f"SaveVideo, {frames} frames of {size}x{size} at 24 fps: one decoded frame is "
          f"{_mib(frame_bytes).strip()}, the whole video {_mib(video_bytes).strip()}")
    hidden = {"prompt": {"1": {"class_type": "SaveVideo"}}, "extra_pnginfo": {"workflow": {}}}
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as base:
        folder_paths.configure(base_directory=base)
        os.makedirs(os.path.join(base, "input"), exist_ok=True)
        # Warm-up: load the codec libraries and x264's tables, which are not the save's doing.
        SaveVideo.PREPARE_CLASS_CLONE(hidden).execute(
            video=CreateVideo.execute(images=_frames(4, size), fps=24.0).args[0],
            filename_prefix="warmup", format="auto", codec="auto")
        images = _frames(frames, size)
        video = CreateVideo.execute(images=images, fps=24.0).args[0]
        assert isinstance(video, VideoFromComponents)
        started = time.perf_counter()
        with PeakMemory() as peak:
            out = SaveVideo.PREPARE_CLASS_CLONE(hidden).execute(
                video=video, filename_prefix="bench", format="auto", codec="auto")
        _report("IMAGE batch -> MP4", peak, time.perf_counter() - started, frames, frame_bytes,
                video_bytes)
        del video, images
        gc.collect()

        saved = out.ui.as_dict()["images"][0]["filename"]
        os.replace(os.path.join(base, "output", saved), os.path.join(base, "input", "src.mp4"))
        loaded = LoadVideo.execute(file="src.mp4").args[0]
        # Starting one frame in forces a real decode + encode (a whole file would be remuxed).
        sliced = VideoSlice.execute(video=loaded, start_time=1 / 24, duration=0.0,
                                    strict_duration=False).args[0]
        started = time.perf_counter()
        with PeakMemory() as peak:
            SaveVideo.PREPARE_CLASS_CLONE(hidden).execute(
                video=sliced, filename_prefix="bench", format="auto", codec="auto")
        _report("MP4 file -> MP4 (transcode)", peak, time.perf_counter() - started, frames - 1,
                frame_bytes, video_bytes)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _StepClock:
    """(wall, process CPU) marks at every progress report of the node being timed."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def install(self) -> Callable[[], None]:
        from opencomfy.engine import progress

        original = progress.report_progress

        def report(value, max, node_id=None, preview=None):
            _sync()
            self.marks.append((time.perf_counter(), time.process_time()))
            return original(value, max, node_id=node_id, preview=preview)

        progress.report_progress = report

        def uninstall() -> None:
            progress.report_progress = original

        return uninstall

    def median_step(self) -> tuple[float, float]:
        """(wall, CPU) seconds of the run's median step."""
        pairs = list(zip(self.marks, self.marks[1:], strict=False))
        walls = sorted(b[0] - a[0] for a, b in pairs)
        cpus = sorted(b[1] - a[1] for a, b in pairs)
        return walls[len(walls) // 2], cpus[len(cpus) // 2]


def bench_samplers(args) -> None:
    import statistics

    from opencomfy.diffusion.loading import load_checkpoint_file
    from opencomfy.diffusion.memory import compute_device
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint
    from opencomfy.engine.events import NullSink
    from opencomfy.engine.progress import NodeContext, RunState, enter_node, leave_node
    from opencomfy.nodes.custom_sampling_guiders import CFGGuider, RandomNoise, SamplerCustomAdvanced
    from opencomfy.nodes.custom_sampling_samplers import KSamplerSelect
    from opencomfy.nodes.custom_sampling_sigmas import BasicScheduler
    from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
    from opencomfy.nodes.diffusion_sampling import KSampler
    from opencomfy.nodes.latent import EmptyLatentImage

    if args.threads:
        torch.set_num_threads(args.threads)
    steps, cfg, seed, sampler_name, scheduler = args.steps, 7.5, 1, "euler", "normal"
    with tempfile.TemporaryDirectory(prefix="bench-samplers-") as base:
        path = os.path.join(base, f"random_{args.sampler_model}.safetensors")
        dtype = torch.float16 if args.sampler_model == "sd15" else torch.float32
        write_sd1_checkpoint(path, args.sampler_model, seed=0, dtype=dtype)
        model, clip, _vae = load_checkpoint_file(path)
    (positive,) = CLIPTextEncode().encode(clip, "a lighthouse on a cliff at dusk")
    (negative,) = CLIPTextEncode().encode(clip, "blurry")
    (latent,) = EmptyLatentImage().generate(args.resolution, args.resolution, 1)

    def ksampler():
        return KSampler().sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                 latent, denoise=1.0)[0]

    def custom_advanced():
        (noise,) = RandomNoise().get_noise(seed)
        (guider,) = CFGGuider().get_guider(model, positive, negative, cfg)
        (sampler,) = KSamplerSelect().get_sampler(sampler_name)
        (sigmas,) = BasicScheduler().get_sigmas(model, scheduler, steps, 1.0)
        return SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)[0]

    runs = {"KSampler": ksampler, "SamplerCustomAdvanced": custom_advanced}
    clock = _StepClock()
    uninstall = clock.install()
    # One prompt context for all runs, with a sink that drops the events it is sent.
    run_state = RunState(prompt_id="bench-samplers", sink=NullSink(), interrupt=None,
                         extra_data={"preview_method": "none"})
    token = enter_node(NodeContext(run_state, "3"))
    per_step: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    totals: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, torch.Tensor] = {}
    try:
        for name, run in runs.items():      # warm-up: first calls allocate and cache
            outputs[name] = run()["samples"]
        for i in range(args.repeats):
            # Alternate which goes first, so drift on a busy machine hits both alike.
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            for name in order:
                clock.marks.clear()
                _sync()
                started = time.perf_counter()
                runs[name]()
                _sync()
                totals[name].append(time.perf_counter() - started)
                per_step[name].append(clock.median_step())
    finally:
        leave_node(token)
        uninstall()
    same = torch.equal(outputs["KSampler"], outputs["SamplerCustomAdvanced"])
    print(f"samplers: random {args.sampler_model} SD 1.5 checkpoint on {compute_device()}, "
          f"torch threads {torch.get_num_threads()}, {args.resolution}x{args.resolution}, {steps} steps "
          f"{sampler_name}/{scheduler}, cfg {cfg}, {args.repeats} runs each; same latents: {same}")
    wall, cpu = {}, {}
    for name in runs:
        walls = [w for w, _ in per_step[name]]
        wall[name] = statistics.median(walls)
        cpu[name] = statistics.median(c for _, c in per_step[name])
        print(f"  {name:22s} {wall[name] * 1000:9.2f} ms/step wall (runs' medians "
              f"{min(walls) * 1000:.2f}..{max(walls) * 1000:.2f})  {cpu[name] * 1000:9.2f} ms/step CPU  "
              f"whole run {statistics.median(totals[name]):.3f} s")
    for label, figures in (("wall", wall), ("CPU", cpu)):
        ratio = figures["SamplerCustomAdvanced"] / figures["KSampler"]
        print(f"  SamplerCustomAdvanced / KSampler per step, {label}: {ratio:.4f} "
              f"({(ratio - 1) * 100:+.2f}%; within 2%: {'yes' if abs(ratio - 1) <= 0.02 else 'no'})")


PARTS: dict[str, Callable] = {
    "save_video": bench_save_video,
    "samplers": bench_samplers,
}


def _add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--save-video")
    group.add_argument("--save-video", action="store_true", help="SaveVideo's peak memory")
    group.add_argument("--frames", type=int, default=600)
    group.add_argument("--size", type=int, default=512, help="frame width and height")
    group = parser.add_argument_group("--samplers")
    group.add_argument("--samplers", action="store_true",
                       help="SamplerCustomAdvanced vs KSampler, time per step")
    group.add_argument("--sampler-model", choices=["tiny", "sd15"], default="tiny")
    group.add_argument("--steps", type=int, default=20)
    group.add_argument("--repeats", type=int, default=7)
    group.add_argument("--resolution", type=int, default=512, help="image width and height")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_options(parser)
    args = parser.parse_args(argv)
    chosen = [name for name in PARTS if getattr(args, name)] or list(PARTS)
    for name in chosen:
        PARTS[name](args)


if __name__ == "__main__":
    main()
