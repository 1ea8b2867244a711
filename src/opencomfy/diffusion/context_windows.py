"""Context windows: a MODEL patch that evaluates a long latent in overlapping windows.

A video latent with more frames than a model was trained on is cut along one dimension into
windows of ``length`` frames (``overlap`` frames shared between neighbours, laid out by the
schedule), the model runs once per window, and each frame's result is the weighted average of
the windows that contain it (weights per the fuse method). A latent no longer than a window runs
unchanged. Registered as an APPLY_MODEL wrapper, so it composes with the MODEL's other patches;
an OUTER_SAMPLE wrapper records the run's sigmas because the uniform schedules shift with the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from opencomfy.diffusion import patcher_extension as ext

SCHEDULES = ("standard_static", "standard_uniform", "looped_uniform", "batched")
FUSE_METHODS = ("pyramid", "relative", "flat", "overlap-linear")
WRAPPER_KEY = "context_windows"


def ordered_halving(step: int) -> float:
    """The step's 64-bit pattern read backwards as a fraction in [0, 1): successive steps spread
    evenly over the interval (0, 1/2, 1/4, 3/4, ...), so uniform windows move every step."""
    return int(format(step, "064b")[::-1], 2) / (1 << 64)


def _to_start(window: list[int], frames: int) -> list[int]:
    first = window[0]
    return [(v - first + frames) % frames for v in window]


def _to_end(window: list[int], frames: int) -> list[int]:
    started = _to_start(window, frames)
    shift = frames - 1 - started[-1]
    return [v + shift for v in started]


def _wrap_position(window: list[int], frames: int) -> int | None:
    """Where a window that runs past the last frame back to the first one wraps (None: never)."""
    previous = -1
    for i, v in enumerate(window):
        if v % frames < previous:
            return i
        previous = v % frames
    return None


@dataclass(frozen=True)
class ContextWindows:
    """The settings of a ContextWindowsManual patch and the windowed model call."""

    length: int
    overlap: int
    schedule: str
    stride: int = 1
    closed_loop: bool = False
    fuse: str = "pyramid"
    dim: int = 0

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"context_schedule {self.schedule!r} is not supported; use one of {list(SCHEDULES)}")
        if self.fuse not in FUSE_METHODS:
            raise ValueError(f"fuse_method {self.fuse!r} is not supported; use one of {list(FUSE_METHODS)}")
        if self.length < 1 or self.overlap < 0 or self.stride < 1:
            raise ValueError("context_length and context_stride must be at least 1, context_overlap at least 0")
        if self.overlap >= self.length and self.schedule != "batched":
            raise ValueError(f"context_overlap ({self.overlap}) must be smaller than context_length "
                             f"({self.length})")

    # -- schedules ------------------------------------------------------------------------------

    def windows(self, frames: int, step: int = 0) -> list[list[int]]:
        """The frame indices of each window for a latent of ``frames`` at sampling ``step``."""
        if frames <= self.length:
            return [list(range(frames))]
        if self.schedule == "batched":
            return [list(range(s, min(s + self.length, frames))) for s in range(0, frames, self.length)]
        if self.schedule == "standard_static":
            return self._static(frames)
        return self._uniform(frames, step, looped=self.schedule == "looped_uniform")

    def _static(self, frames: int) -> list[list[int]]:
        out = []
        for start in range(0, frames, self.length - self.overlap):
            if start + self.length >= frames:
                # The last window ends on the last frame (it overlaps its neighbour more).
                out.append(list(range(frames - self.length, frames)))
                break
            out.append(list(range(start, start + self.length)))
        return out

    def _uniform(self, frames: int, step: int, *, looped: bool) -> list[list[int]]:
        # Wider strides (every 2nd, 4th... frame) add windows that span more of the video.
        strides = min(self.stride, int(math.ceil(math.log2(frames / self.length))) + 1)
        phase = ordered_halving(step)
        out: list[list[int]] = []
        for k in range(strides):
            spacing = 1 << k
            pad = int(round(frames * phase)) if looped else 0
            end = frames + pad + (0 if self.closed_loop else -self.overlap)
            for j in range(int(phase * spacing) + pad, end, self.length * spacing - self.overlap):
                out.append([e % frames for e in range(j, j + self.length * spacing, spacing)])
        if looped:
            return out
        # Without looping, a window that wraps past the end slides back to end on the last frame;
        # the frames it no longer covers get a window of their own; duplicates are dropped.
        result: list[list[int]] = []
        i = 0
        while i < len(out):
            at = _wrap_position(out[i], frames)
            if at is not None:
                first_wrapped = out[i][at]
                out[i] = _to_end(out[i], frames)
                if first_wrapped not in out[(i + 1) % len(out)]:
                    out.insert(i + 1, list(range(first_wrapped, first_wrapped + self.length)))
            if out[i] not in result:
                result.append(out[i])
            i += 1
        return result

    # -- fusing ---------------------------------------------------------------------------------

    def weights(self, window: list[int], frames: int) -> torch.Tensor:
        """Each position's weight in the average of the windows that hold its frame."""
        n = len(window)
        if self.fuse == "flat":
            return torch.ones(n)
        if self.fuse == "pyramid":
            # Rising by 1 to the middle and falling again: 1, 2, ..., 2, 1.
            half = (n + 1) // 2
            rise = list(range(1, half + 1))
            return torch.tensor(rise + rise[::-1][n % 2:], dtype=torch.float32)
        if self.fuse == "relative":
            # Distance from the window's centre, relative to its span; never quite zero.
            first, last = window[0], window[-1]
            centre, half_span = (first + last) / 2, (last - first + 1e-2) / 2
            return torch.tensor([max(1e-2, 1 - abs(v - centre) / half_span) for v in window])
        w = torch.ones(n)
        if self.overlap > 0:
            # overlap-linear: ramps across the shared frames, except at the latent's own ends.
            if min(window) > 0:
                w[:self.overlap] = torch.linspace(1e-37, 1, self.overlap)
            if max(window) < frames - 1:
                w[-self.overlap:] = torch.linspace(1, 1e-37, self.overlap)
        return w

    # -- the patch ------------------------------------------------------------------------------

    def apply_model_wrapper(self, executor, x, t, c_concat=None, c_crossattn=None, control=None,
                            transformer_options=None, **kwargs):
        """APPLY_MODEL wrapper: the model per window, the windows' predictions averaged."""
        if self.dim >= x.ndim:
            raise ValueError(f"context windows over dim {self.dim}, but the latent has only {x.ndim} "
                             f"dimensions {tuple(x.shape)}")
        options = transformer_options or {}
        # Along the batch, the batch holds one copy of the frames per conditioning (cond, uncond).
        pieces = max(1, len(options.get("cond_or_uncond") or [])) if self.dim == 0 else 1
        if self.dim == 0 and x.shape[0] % pieces:
            pieces = 1
        frames = x.shape[0] // pieces if self.dim == 0 else x.shape[self.dim]
        if frames <= self.length:
            return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        sums = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
        counts = torch.zeros(x.shape, device=x.device, dtype=torch.float32)
        for window in self.windows(frames, _step(options, t)):
            idx = torch.tensor(window, device=x.device)
            if self.dim == 0:
                idx = torch.cat([idx + k * frames for k in range(pieces)])
            take = _taker(x, self.dim, idx)
            sub_options = {**options, "sigmas": take(options["sigmas"])} if "sigmas" in options else options
            out = executor(take(x), take(t), take(c_concat), take(c_crossattn), control, sub_options,
                           **{k: take(v) for k, v in kwargs.items()})
            out = out.to(sums.device, sums.dtype)
            w = self.weights(window, frames).to(sums.device)
            if self.dim == 0:
                w = w.repeat(pieces)
            shape = [1] * out.ndim
            shape[self.dim] = w.shape[0]
            w = w.reshape(shape)
            sums.index_add_(self.dim, idx, out * w)
            counts.index_add_(self.dim, idx, w.expand_as(out))
        return sums / counts

    def outer_sample_wrapper(self, executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
        """OUTER_SAMPLE wrapper: keeps the run's sigmas where the model calls find them."""
        guider = executor.class_obj
        options = getattr(guider, "model_options", None)
        if isinstance(options, dict):
            options.setdefault("transformer_options", {})["sample_sigmas"] = sigmas
        return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)


def _taker(x: torch.Tensor, dim: int, idx: torch.Tensor):
    """Selects the window from tensors laid out like ``x`` along ``dim``; others pass as they are."""
    size = x.shape[dim]

    def take(v):
        if isinstance(v, dict):
            return {k: take(item) for k, item in v.items()}
        if isinstance(v, torch.Tensor) and v.ndim > dim and v.shape[dim] == size and (dim == 0 or v.ndim == x.ndim):
            return v.index_select(dim, idx.to(v.device))
        return v
    return take


def _step(options: dict, t: torch.Tensor) -> int:
    """The sampling step of this call: where its sigma sits in the run's sigmas (0 if unknown)."""
    sigmas = options.get("sample_sigmas")
    if not isinstance(sigmas, torch.Tensor) or t.numel() == 0:
        return 0
    sigma = float(t.reshape(-1)[0])
    matches = torch.nonzero(torch.isclose(sigmas.float().cpu(), torch.tensor(sigma), rtol=1e-4))
    return int(matches[0]) if len(matches) else 0


def patch_model(model, windows: ContextWindows):
    """A clone of ``model`` that runs in context windows (replacing any earlier windows patch)."""
    m = model.clone()
    m.remove_wrappers_with_key(ext.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    m.remove_wrappers_with_key(ext.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY)
    m.add_wrapper_with_key(ext.WrappersMP.APPLY_MODEL, WRAPPER_KEY, windows.apply_model_wrapper)
    m.add_wrapper_with_key(ext.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, windows.outer_sample_wrapper)
    return m
