"""ControlNets: single-file LDM ControlNets loaded into diffusers' ``ControlNetModel``, and the
residuals they add to the UNet for conditioning entries that carry a ``control``.

A ControlNet file holds a copy of the UNet's encoder (``input_blocks``, ``middle_block``), the
hint encoder (``input_hint_block``) and the zero convolutions (``zero_convs``,
``middle_block_out``), with or without a ``control_model.`` prefix.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from opencomfy.diffusion.detect import UnsupportedCheckpoint, _indices, bundled_config
from opencomfy.diffusion.ldm_keys import unet_key_to_ldm

CONTROL_PREFIX = "control_model."


@dataclass
class ControlNet:
    """ComfyUI's CONTROL_NET: a diffusers ControlNetModel and the family it belongs to."""

    model: object
    family: str
    # Union ControlNets: the chosen control type's index (None: auto). Kept on the value for
    # SetUnionControlNetType; the LDM ControlNets we load take no type and ignore it.
    union_type: int | None = None

    @property
    def concat_mask(self) -> bool:
        """Whether the hint encoder takes a mask channel after the image (4 input channels)."""
        config = getattr(self.model, "config", None)
        return getattr(config, "conditioning_channels", 3) == 4

    def modules(self):
        return [self.model]

    patches = ()


@dataclass(frozen=True)
class ControlApply:
    """One ControlNet applied to a conditioning entry: hint image, strength, active range."""

    control: ControlNet
    hint: torch.Tensor          # IMAGE [B, H, W, C], 0..1
    strength: float
    start_percent: float = 0.0
    end_percent: float = 1.0
    mask: torch.Tensor | None = None   # [B, 1, H, W] keep-mask appended to the hint (inpainting)
    # The entry's own text for the ControlNet (CLIPTextEncodeControlnet); None: the prompt's.
    context: torch.Tensor | None = None   # [1 or B, tokens, dim]
    pooled: torch.Tensor | None = None    # [1 or B, dim], for ControlNets with a pooled input


def controlnet_config(shapes: dict[str, tuple]) -> tuple[dict, str]:
    """(diffusers ControlNetModel config, family) from an LDM ControlNet's tensor shapes."""
    conv_in = shapes["input_blocks.0.0.weight"]
    inputs = _indices(shapes, r"input_blocks\.(\d+)\.")
    downsamples = _indices(shapes, r"input_blocks\.(\d+)\.0\.op\.weight")
    levels = len(downsamples) + 1
    layers = (len(inputs) - 1 - len(downsamples)) // levels
    if layers < 1:
        raise UnsupportedCheckpoint("unrecognised ControlNet block layout")
    proj = shapes["middle_block.1.proj_in.weight"]
    family = "sdxl" if "label_emb.0.0.weight" in shapes else ("sd2" if len(proj) == 2 else "sd1")
    config = copy.deepcopy(bundled_config(f"{family}_unet"))
    for key in ("out_channels", "up_block_types", "_class_name", "center_input_sample", "sample_size"):
        config.pop(key, None)
    channels, down_types, depths = [], [], []
    for level in range(levels):
        first = level * (layers + 1) + 1
        channels.append(shapes[f"input_blocks.{first}.0.out_layers.3.weight"][0])
        attention = f"input_blocks.{first}.1.proj_in.weight" in shapes
        down_types.append("CrossAttnDownBlock2D" if attention else "DownBlock2D")
        blocks = _indices(shapes, rf"input_blocks\.{first}\.1\.transformer_blocks\.(\d+)\.")
        depths.append(max(blocks) + 1 if blocks else 1)
    attn2 = next(k for k in shapes if k.endswith("attn2.to_k.weight"))
    # The hint encoder: conv_in, a (conv, strided conv) pair per width step, conv_out.
    widths = _hint_widths(shapes)[:-1]
    config.update({
        "in_channels": conv_in[1], "layers_per_block": layers, "block_out_channels": channels,
        "down_block_types": down_types, "cross_attention_dim": shapes[attn2][1],
        "use_linear_projection": len(proj) == 2,
        "conditioning_channels": shapes["input_hint_block.0.weight"][1],
        "conditioning_embedding_out_channels": [widths[0], *widths[2::2]],
    })
    if family != "sd1":
        config["attention_head_dim"] = [max(1, c // 64) for c in channels]
    if family == "sdxl":
        config["transformer_layers_per_block"] = depths
        adm_in = shapes["label_emb.0.0.weight"][1]
        config["projection_class_embeddings_input_dim"] = adm_in
        config["addition_time_embed_dim"] = (adm_in - 1280) // 6
    else:
        config["transformer_layers_per_block"] = depths[0] if len(set(depths)) == 1 else depths
    return config, family


def _hint_widths(shapes: dict) -> list[int]:
    convs = sorted(_indices(shapes, r"input_hint_block\.(\d+)\.weight"))
    return [shapes[f"input_hint_block.{i}.weight"][0] for i in convs]


UNION_KEYS = ("task_embedding", "control_add_embedding.linear_1.weight")


def load_controlnet_file(path: str, diff_base: dict[str, torch.Tensor] | None = None) -> ControlNet:
    """Load an LDM-layout ControlNet file. ``diff_base`` (a UNet in the LDM layout, without
    prefix) makes it a diff ControlNet: the file's copies of UNet weights are deltas to it."""
    from opencomfy.weights import read_state_dict

    state = read_state_dict(path)
    if any(k.startswith(CONTROL_PREFIX) for k in state):
        state = {k[len(CONTROL_PREFIX):]: v for k, v in state.items() if k.startswith(CONTROL_PREFIX)}
    if any(k in state for k in UNION_KEYS):
        raise UnsupportedCheckpoint("union ControlNets (ControlNet++ / ProMax, with task embeddings) are "
                                    "not supported yet; use a single-type ControlNet")
    if "input_hint_block.0.weight" not in state:
        raise UnsupportedCheckpoint("not a ControlNet in the LDM layout")
    if diff_base is not None:
        state = add_diff_weights(state, diff_base)
    return controlnet_from_state(state)


def add_diff_weights(state: dict, base: dict) -> dict:
    """A diff ControlNet's weights made whole: each tensor the UNet also has (same name, same
    shape) is a difference to it; the hint encoder and zero convolutions are taken as they are."""
    out = {}
    matched = 0
    for key, value in state.items():
        ref = base.get(key)
        if ref is not None and tuple(ref.shape) == tuple(value.shape):
            out[key] = value.to(torch.float32) + ref.to(value.device, torch.float32)
            out[key] = out[key].to(value.dtype)
            matched += 1
        else:
            out[key] = value
    if not matched:
        raise UnsupportedCheckpoint("diff ControlNet: none of its weights match the given MODEL's UNet "
                                    "(a ControlNet for another model family?)")
    return out


def controlnet_from_state(state: dict) -> ControlNet:
    """A ControlNet from an LDM-layout state dict (no ``control_model.`` prefix)."""
    from accelerate import init_empty_weights
    from diffusers.models.controlnets.controlnet import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    from opencomfy.diffusion.memory import offload_device, weight_dtype
    from opencomfy.weights import assign_weights

    shapes = {k: tuple(v.shape) for k, v in state.items()}
    config, family = controlnet_config(shapes)
    converted = convert_controlnet_checkpoint(state, config)
    converted.update(_hint_encoder_keys(state))
    with init_empty_weights():
        model = ControlNetModel.from_config(config)
    return ControlNet(model=assign_weights(model, converted, weight_dtype("unet"), offload_device()), family=family)


def _hint_encoder_keys(state: dict) -> dict:
    """input_hint_block.{0, 2, ..., n} -> conv_in, blocks.*, conv_out (any number of blocks)."""
    convs = sorted(_indices(state, r"input_hint_block\.(\d+)\.weight"))
    out = {}
    for rank, index in enumerate(convs):
        if rank == 0:
            name = "controlnet_cond_embedding.conv_in"
        elif rank == len(convs) - 1:
            name = "controlnet_cond_embedding.conv_out"
        else:
            name = f"controlnet_cond_embedding.blocks.{rank - 1}"
        for kind in ("weight", "bias"):
            out[f"{name}.{kind}"] = state[f"input_hint_block.{index}.{kind}"]
    return out


def controlnet_to_ldm(state_dict: dict, config: dict) -> dict:
    """A diffusers ControlNetModel state dict -> the LDM ControlNet layout (``control_model.``)."""
    out = {}
    for key, value in state_dict.items():
        if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.*)", key):
            ldm = f"zero_convs.{m[1]}.0.{m[2]}"
        elif key.startswith("controlnet_mid_block."):
            ldm = "middle_block_out.0." + key[len("controlnet_mid_block."):]
        elif key.startswith("controlnet_cond_embedding."):
            rest = key[len("controlnet_cond_embedding."):]
            blocks = len(config["conditioning_embedding_out_channels"]) * 2 - 2
            if rest.startswith("conv_in."):
                ldm = "input_hint_block.0." + rest[len("conv_in."):]
            elif rest.startswith("conv_out."):
                ldm = f"input_hint_block.{2 * (blocks + 1)}." + rest[len("conv_out."):]
            else:
                m = re.match(r"blocks\.(\d+)\.(.*)", rest)
                if m is None:
                    raise UnsupportedCheckpoint(f"unexpected ControlNet hint-encoder key {key!r}")
                ldm = f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        else:
            ldm = unet_key_to_ldm(key, layers_per_block=config["layers_per_block"],
                                  up_blocks_with_attention=set())
        out[CONTROL_PREFIX + ldm] = value
    return out


def prepare_hint(hint: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> [batch, C, height, width] (resized, center-cropped, repeated)."""
    x = hint[..., :3].permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        x = F.interpolate(x, size=(max(height, round(h * scale)), max(width, round(w * scale))),
                          mode="nearest-exact")
        top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
        x = x[..., top:top + height, left:left + width]
    reps = -(-batch // x.shape[0])
    return x.repeat(reps, 1, 1, 1)[:batch]


def _to_batch(t: torch.Tensor, batch: int) -> torch.Tensor:
    """A per-entry tensor ([1 or B, ...]) repeated or cut to ``batch`` rows."""
    reps = -(-batch // t.shape[0])
    return t.repeat(reps, *([1] * (t.ndim - 1)))[:batch]


def residuals(controls, x, timestep, context, added, sigma, schedule):
    """Sum of the active ControlNets' (down residuals, mid residual) for one batch piece."""
    down_total, mid_total = None, None
    for apply in controls:
        high = schedule.percent_to_sigma(apply.start_percent)
        low = schedule.percent_to_sigma(apply.end_percent)
        if not (low <= sigma <= high):
            continue
        model = apply.control.model
        hint = prepare_hint(apply.hint, x.shape[0], x.shape[-2] * 8, x.shape[-1] * 8)
        if apply.mask is not None and apply.control.concat_mask:
            keep = prepare_hint(apply.mask.movedim(1, -1), x.shape[0], hint.shape[-2], hint.shape[-1])
            hint = torch.cat([hint, keep[:, :1]], dim=1)
        ctx, piece_added = context, added
        if apply.context is not None:
            ctx = _to_batch(apply.context, x.shape[0]).to(x.device)
        if apply.pooled is not None and added and "text_embeds" in added:
            piece_added = {**added, "text_embeds": _to_batch(apply.pooled, x.shape[0]).to(x.device)}
        kwargs = {"added_cond_kwargs": piece_added} if piece_added else {}
        down, mid = model(x.to(model.dtype), timestep, encoder_hidden_states=ctx.to(model.dtype),
                          controlnet_cond=hint.to(x.device, model.dtype), conditioning_scale=apply.strength,
                          return_dict=False, **kwargs)
        if down_total is None:
            down_total, mid_total = list(down), mid
        else:
            # ControlNets applied to one UNet all give one residual per down block.
            down_total = [a + b for a, b in zip(down_total, down, strict=True)]
            mid_total = mid_total + mid
    return down_total, mid_total
