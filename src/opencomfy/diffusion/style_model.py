"""STYLE_MODEL: turns a CLIP_VISION_OUTPUT into extra conditioning tokens.

Two kinds of ``models/style_models`` file are known, told apart by their keys: the T2I-Adapter
style model (``style_embedding``: a small transformer over CLIP ViT-L/14's tokens, giving a few
tokens in the text encoder's width) and Flux Redux (``redux_up``/``redux_down``: two linear
layers over SigLIP's tokens, giving tokens in T5's width). Sizes are read off the shapes.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from opencomfy.weights import UnsupportedCheckpoint, read_state_dict

T2I_STYLE_HEADS = 8  # not visible in the weights; the released adapter uses 8


class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _LayerNorm32(nn.LayerNorm):
    """A LayerNorm computed in float32 whatever the input dtype (as CLIP's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class _ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = _LayerNorm32(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", _QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = _LayerNorm32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class T2IStyleAdapter(nn.Module):
    """Learned style tokens appended to the image tokens, run through a few transformer layers,
    then projected to the text encoder's width (T2I-Adapter's style model)."""

    def __init__(self, *, width: int, context_dim: int, layers: int, tokens: int, heads: int = T2I_STYLE_HEADS):
        super().__init__()
        self.num_token = tokens
        self.style_embedding = nn.Parameter(torch.zeros(1, tokens, width))
        self.ln_pre = _LayerNorm32(width)
        self.transformer_layes = nn.Sequential(*[_ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.ln_post = _LayerNorm32(width)
        self.proj = nn.Parameter(torch.zeros(width, context_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        style = self.style_embedding.expand(x.shape[0], -1, -1).to(x.dtype)
        x = self.ln_pre(torch.cat([x, style], dim=1))
        x = self.transformer_layes(x.permute(1, 0, 2)).permute(1, 0, 2)   # attention wants [L, N, D]
        return self.ln_post(x[:, -self.num_token:, :]) @ self.proj


class ReduxImageEncoder(nn.Module):
    """Flux Redux: SigLIP tokens -> T5-width tokens through a widening MLP."""

    def __init__(self, *, redux_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.redux_up = nn.Linear(redux_dim, hidden)
        self.redux_down = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.redux_down(nn.functional.silu(self.redux_up(x)))


class StyleModel:
    """STYLE_MODEL: ``get_cond(clip_vision_output)`` -> tokens ``[B, n, context_dim]``."""

    def __init__(self, model: nn.Module, kind: str):
        self.model, self.kind = model, kind

    def get_cond(self, clip_vision_output) -> torch.Tensor:
        hidden = clip_vision_output.last_hidden_state
        param = next(self.model.parameters())
        with torch.no_grad():
            return self.model(hidden.to(param.device, param.dtype)).float()

    def __repr__(self) -> str:
        return f"<STYLE_MODEL {self.kind}>"


def build_style_model(state_dict: dict) -> StyleModel:
    if "style_embedding" in state_dict:
        _, tokens, width = state_dict["style_embedding"].shape
        layers = 1 + max(int(m[1]) for k in state_dict if (m := re.match(r"transformer_layes\.(\d+)\.", k)))
        model = T2IStyleAdapter(width=width, context_dim=state_dict["proj"].shape[1], layers=layers, tokens=tokens)
        kind = "t2i_style"
    elif "redux_down.weight" in state_dict:
        hidden, redux_dim = state_dict["redux_up.weight"].shape
        model = ReduxImageEncoder(redux_dim=redux_dim, hidden=hidden, out_dim=state_dict["redux_down.weight"].shape[0])
        kind = "flux_redux"
    else:
        raise UnsupportedCheckpoint("not a style model (neither a T2I-Adapter style model nor Flux Redux)")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise UnsupportedCheckpoint(f"the weights do not fit a {kind} model: {exc}") from exc
    return StyleModel(model.eval().requires_grad_(False), kind)


def load_style_model_file(path: str) -> StyleModel:
    name = os.path.basename(path)
    try:
        return build_style_model(read_state_dict(path))
    except UnsupportedCheckpoint as exc:
        raise UnsupportedCheckpoint(f"{name}: {exc}") from exc
    except Exception as exc:   # a broken file: safetensors raises its own error types
        raise UnsupportedCheckpoint(f"{name} could not be read: {exc}") from exc
