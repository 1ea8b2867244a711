"""Hypernetworks (the A1111 kind): small MLPs that add to the keys and values of attention.

A file maps a context width (768, 320, 640, 1280...) to two stacks of linear layers, one for
the keys and one for the values; between them the activation, layer norm and dropout the file
names. As an attention patch (``attn1_patch`` and ``attn2_patch``) it turns the attention's
inputs ``(q, k, v)`` into ``(q, k + strength * mlp_k(k), v + strength * mlp_v(v))`` wherever
the width has a stack.
"""

from __future__ import annotations

import os

import torch

from opencomfy.weights import UnsupportedCheckpoint

ACTIVATIONS = {
    "linear": torch.nn.Identity, "relu": torch.nn.ReLU, "leakyrelu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU, "swish": torch.nn.Hardswish, "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid, "softsign": torch.nn.Softsign, "mish": torch.nn.Mish,
}


def _stack(weights: dict, *, activation: str, layer_norm: bool, dropout: bool,
           activate_output: bool, last_layer_dropout: bool) -> torch.nn.Sequential:
    names = [k[:-len(".weight")] for k in weights if k.endswith(".weight")]
    layers: list[torch.nn.Module] = []
    i = 0
    while i < len(names):
        last, penultimate = i == len(names) - 1, i == len(names) - 2
        weight, bias = weights[f"{names[i]}.weight"], weights[f"{names[i]}.bias"]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        linear.load_state_dict({"weight": weight, "bias": bias})
        layers.append(linear)
        if activation != "linear" and (not last or activate_output):
            layers.append(ACTIVATIONS[activation]())
        if layer_norm:
            # The norm's weights follow the linear layer's in the file.
            i += 1
            norm_weight, norm_bias = weights[f"{names[i]}.weight"], weights[f"{names[i]}.bias"]
            norm = torch.nn.LayerNorm(norm_weight.shape[0])
            norm.load_state_dict({"weight": norm_weight, "bias": norm_bias})
            layers.append(norm)
        if dropout and not last and (not penultimate or last_layer_dropout):
            layers.append(torch.nn.Dropout(p=0.3))
        i += 1
    return torch.nn.Sequential(*layers).eval().requires_grad_(False)


class HypernetworkPatch:
    """The attention patch: ``(q, k, v, extra_options) -> (q, k', v')``."""

    def __init__(self, stacks: dict[int, torch.nn.ModuleList], strength: float):
        self.stacks = stacks
        self.strength = strength

    def __call__(self, q, k, v, extra_options):
        stack = self.stacks.get(k.shape[-1])
        if stack is not None:
            with torch.no_grad():
                k = k + stack[0].to(k.device, k.dtype)(k) * self.strength
                v = v + stack[1].to(v.device, v.dtype)(v) * self.strength
        return q, k, v

    def to(self, device):
        self.stacks = {d: s.to(device) for d, s in self.stacks.items()}
        return self


def load_hypernetwork(path: str, strength: float) -> HypernetworkPatch:
    """The patch of a hypernetwork file (``.pt`` needs pickles allowed, ``.safetensors`` never)."""
    from opencomfy.weights import load_pickle

    name = os.path.basename(path)
    if path.lower().endswith((".safetensors", ".sft")):
        raise UnsupportedCheckpoint(f"{name}: hypernetworks are nested dictionaries, which safetensors "
                                    "files cannot hold; use the original .pt file")
    data = load_pickle(path, "hypernetwork")
    if not isinstance(data, dict):
        raise UnsupportedCheckpoint(f"{name} holds no hypernetwork")
    activation = data.get("activation_func", "linear")
    if activation not in ACTIVATIONS:
        raise UnsupportedCheckpoint(f"{name}: unknown activation {activation!r} "
                                    f"(known: {', '.join(ACTIVATIONS)})")
    options = {"activation": activation, "layer_norm": bool(data.get("is_layer_norm", False)),
               "dropout": bool(data.get("use_dropout", False)),
               "activate_output": bool(data.get("activate_output", False)),
               "last_layer_dropout": bool(data.get("last_layer_dropout", False))}
    stacks: dict[int, torch.nn.ModuleList] = {}
    for key, value in data.items():
        try:
            width = int(key)
        except (TypeError, ValueError):
            continue    # the settings above
        if not isinstance(value, (list, tuple)) or len(value) < 2:
            raise UnsupportedCheckpoint(f"{name}: width {width} does not hold two layer stacks")
        stacks[width] = torch.nn.ModuleList([_stack(value[i], **options) for i in (0, 1)])
    if not stacks:
        raise UnsupportedCheckpoint(f"{name} has no layers")
    return HypernetworkPatch(stacks, strength)
