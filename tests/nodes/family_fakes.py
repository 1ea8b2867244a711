"""Stand-ins for model-family objects opencomfy cannot load yet (video VAEs, T5/Llama text
encoders), used to check what the family nodes do with them.

They behave as the real objects' interfaces say (ComfyUI's VAE and CLIP): a video VAE folds
``temporal`` frames into one latent frame after the first and ``spatial`` pixels per side into
one latent pixel; a CLIP tokenizes into one token list per tower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class FakeVideoVAE:
    """Causal video VAE: latent frame 0 is pixel frame 0; each next one averages ``temporal``
    frames. Channel c of the latent is pixel channel ``c % 3``, average-pooled."""

    def __init__(self, *, temporal: int = 4, spatial: int = 8, channels: int = 16):
        self.temporal, self.spatial, self.channels = temporal, spatial, channels
        self.downscale_index_formula = (temporal, spatial, spatial)
        self.calls: list[tuple] = []

    def temporal_compression_decode(self) -> int:
        return self.temporal

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(frames.shape))
        pooled = F.avg_pool2d(frames.movedim(-1, 1), self.spatial)          # [N, 3, h, w]
        groups = [pooled[:1]] + [pooled[i:i + self.temporal].mean(0, keepdim=True)
                                 for i in range(1, pooled.shape[0], self.temporal)]
        video = torch.cat(groups).movedim(0, 1)                              # [3, T, h, w]
        return video[[c % 3 for c in range(self.channels)]].unsqueeze(0)

    def __repr__(self) -> str:
        return f"<FakeVideoVAE t={self.temporal}>"


class FakeImageVAE:
    """An image VAE (no time axis): ``[N, H, W, 3]`` -> ``[N, 4, H/8, W/8]``."""

    downscale_ratio = 8

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(pixels[..., :3].movedim(-1, 1), 8)
        return torch.cat([pooled, pooled[:, :1]], dim=1)

    def __repr__(self) -> str:
        return "<VAE>"


class FakeClip:
    """A text encoder with the given towers; a token is the word's length, a chunk a list."""

    def __init__(self, towers=("l", "g")):
        self.towers = tuple(towers)
        self.encoded: list[dict] = []

    def tokenize(self, text: str) -> dict:
        words = [(len(word), 1.0) for word in text.split()]
        return {key: [list(words)] for key in self.towers}

    def encode_from_tokens(self, tokens, return_pooled=False, return_dict=False):
        self.encoded.append(tokens)
        chunks = sum(len(chunks) for chunks in tokens.values())
        cond = torch.full((1, max(chunks, 1), 8), float(chunks))
        return {"cond": cond, "pooled_output": torch.ones(1, 8)}

    def __repr__(self) -> str:
        return f"<CLIP {'+'.join(self.towers)}>"
