"""RebatchLatents (ComfyUI ``comfy_extras/nodes_rebatch.py``): regroup a list of latent batches.

The node takes the whole list (``INPUT_IS_LIST``) and returns a list of batches of at most
``batch_size`` samples. Consecutive entries of one spatial size are joined; a size change
closes the current batch. Each output carries its ``batch_index`` (the sample's position in
the whole stream unless the input had one) and its noise mask, dropped when all ones.
"""

from __future__ import annotations

import torch


class _Batch:
    """Samples, noise masks and seed indices travelling together."""

    def __init__(self, samples: torch.Tensor, masks: torch.Tensor, indices: list[int]):
        self.samples, self.masks, self.indices = samples, masks, indices

    def __len__(self) -> int:
        return self.samples.shape[0]

    def join(self, other: "_Batch") -> "_Batch":
        return _Batch(torch.cat((self.samples, other.samples)),
                      torch.cat((self.masks, other.masks)), self.indices + other.indices)

    def cut(self, start: int, stop: int) -> "_Batch":
        return _Batch(self.samples[start:stop], self.masks[start:stop],
                      self.indices[start:stop])

    def as_latent(self) -> dict:
        return {"samples": self.samples, "noise_mask": self.masks, "batch_index": self.indices}


def _entry_batch(latent: dict, offset: int) -> _Batch:
    samples = latent["samples"]
    batch, _, height, width = samples.shape
    if "noise_mask" in latent:
        # ComfyUI computes a resize of a mismatched mask but discards the result, so the
        # mask is used at its own size; the same is done here.
        masks = latent["noise_mask"]
    else:
        masks = torch.ones((batch, 1, height * 8, width * 8), device="cpu")
    if masks.shape[0] < batch:
        masks = masks.repeat((batch - 1) // masks.shape[0] + 1, 1, 1, 1)[:batch]
    indices = latent.get("batch_index", [i + offset for i in range(batch)])
    return _Batch(samples, masks, indices)


class RebatchLatents:
    """Split and join a list of latents into batches of ``batch_size``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "latents": ("LATENT",),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
        }}

    RETURN_TYPES = ("LATENT",)
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "rebatch"
    CATEGORY = "latent/batch"

    def rebatch(self, latents, batch_size):
        size = batch_size[0]
        batches: list[_Batch] = []
        current: _Batch | None = None
        processed = 0
        for latent in latents:
            entry = _entry_batch(latent, processed)
            processed += len(entry.indices)
            if current is None:
                current = entry
            elif entry.samples.shape[-2:] != current.samples.shape[-2:]:
                batches.append(current.cut(0, size))
                current = entry
            else:
                current = current.join(entry)
            if len(current) > size:
                whole = len(current) // size
                batches.extend(current.cut(i * size, (i + 1) * size) for i in range(whole))
                rest = current.cut(whole * size, len(current))
                current = rest if len(rest) else None
        if current is not None:
            batches.append(current.cut(0, size))

        outputs = [batch.as_latent() for batch in batches]
        for latent in outputs:
            if latent["noise_mask"].mean() == 1.0:
                del latent["noise_mask"]
        return (outputs,)


NODES = [
    ("RebatchLatents", RebatchLatents, "Rebatch Latents", "comfy_extras.nodes_rebatch"),
]
