"""PhotoMaker v1 (Li et al. 2023, "Customizing Realistic Human Photos via Stacked ID Embedding").

The ID encoder turns face photos into the embedding of one prompt token:

- a CLIP image tower (ViT-L/14) gives each photo's pooled embedding; two projections (768 and
  1280 wide for v1) are concatenated into an ID embedding as wide as the model's text tokens
  (SDXL's 2048);
- the prompt names a class word followed by the trigger word (``"a photo of a man photomaker"``).
  The trigger word is removed, the class word's token is repeated once per photo (the "stacked
  ID embedding") and each copy is fused with one photo's ID embedding:
  ``layer_norm(mlp2(mlp1([token, id]) + token))``, where each MLP is layer norm, linear, GELU,
  linear, and ``mlp2`` adds its input back.

``models/photomaker`` files: the published ``photomaker-v1.bin`` is a pickle holding
``{"id_encoder": {...}, "lora_weights": {...}}``; converted ``.safetensors`` hold the same
``id_encoder`` weights flat (with or without the ``id_encoder.`` prefix). Inside:
``vision_model.*`` and ``visual_projection.weight`` (transformers' CLIP layout),
``visual_projection_2.weight`` and ``fuse_module.{mlp1,mlp2,layer_norm}.*``. The LoRA weights
are not used here: load them with a LoRA loader, as ComfyUI users do.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from opencomfy.diffusion.clip_vision import clip_preprocess, vision_config
from opencomfy.diffusion.memory import models_in_use
from opencomfy.diffusion.tokenizer import END_ID
from opencomfy.weights import UnsupportedCheckpoint, is_pickle_name, load_pickle, read_model_file, read_state_dict

TRIGGER_WORD = "photomaker"
_TOWER_KEYS = ("vision_model.", "visual_projection.")


class _MLP(torch.nn.Module):
    """Layer norm, linear, GELU, linear; optionally adding the input back."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, residual: bool):
        super().__init__()
        self.layernorm = torch.nn.LayerNorm(in_dim)
        self.fc1 = torch.nn.Linear(in_dim, hidden_dim)
        self.fc2 = torch.nn.Linear(hidden_dim, out_dim)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(F.gelu(self.fc1(self.layernorm(x))))
        return out + x if self.residual else out


class FuseModule(torch.nn.Module):
    """Merges a class-word token with an ID embedding of the same width."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp1 = _MLP(2 * dim, dim, dim, residual=False)
        self.mlp2 = _MLP(dim, dim, dim, residual=True)
        self.layer_norm = torch.nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, id_embeds: torch.Tensor) -> torch.Tensor:
        fused = self.mlp1(torch.cat([tokens, id_embeds], dim=-1)) + tokens
        return self.layer_norm(self.mlp2(fused))


class IDEncoder(torch.nn.Module):
    """The CLIP tower (``tower``), the second projection and the fuse module."""

    def __init__(self, tower: torch.nn.Module, hidden: int, second_dim: int, dim: int):
        super().__init__()
        self.tower = tower
        self.visual_projection_2 = torch.nn.Linear(hidden, second_dim, bias=False)
        self.fuse_module = FuseModule(dim)


class PhotoMaker:
    """PHOTOMAKER: the loaded ID encoder and its image preprocessing."""

    def __init__(self, model: IDEncoder, image_size: int, dim: int, name: str = "PhotoMaker"):
        self.model = model
        self.image_size = image_size
        self.dim = dim                 # the width of the text tokens it fuses into
        self.name = name
        self.patches: list = []

    def modules(self):
        return [self.model]

    def id_embeds(self, image: torch.Tensor) -> torch.Tensor:
        """IMAGE ``[N, H, W, C]`` -> one ID embedding per photo, ``[N, dim]`` (float32, CPU)."""
        pixels = clip_preprocess(image.float(), size=self.image_size, crop=True)
        model: Any = self.model
        with models_in_use(self) as device, torch.no_grad():
            dtype = model.visual_projection_2.weight.dtype
            pooled = model.tower.vision_model(pixel_values=pixels.to(device, dtype)).pooler_output
            ids = torch.cat([model.tower.visual_projection(pooled), model.visual_projection_2(pooled)], dim=-1)
        return ids.float().cpu()

    def fuse(self, tokens: torch.Tensor, id_embeds: torch.Tensor) -> torch.Tensor:
        """Class-word tokens ``[N, dim]`` fused with ID embeddings ``[N, dim]``."""
        fuse_module: Any = self.model.fuse_module
        with models_in_use(self) as device, torch.no_grad():
            dtype = fuse_module.layer_norm.weight.dtype
            out = fuse_module(tokens.to(device, dtype), id_embeds.to(device, dtype))
        return out.float().cpu()

    def __repr__(self) -> str:
        return f"<PHOTOMAKER {self.name} {self.dim}-wide>"


def _class_token_place(clip, text_words: list[str], trigger: int, cleaned_tokens: dict, key: str):
    """(chunk, position) of the class word's last token: the word before the trigger word."""
    prefix = clip.tokenize(" ".join(text_words[:trigger]))[key]
    chunk = len(prefix) - 1
    row = [t for t, *_ in prefix[chunk]]
    count = row.index(END_ID, 1) - 1       # tokens between the start and the end token
    if count == 0:
        raise ValueError(f"put a class word (man, woman, ...) right before '{TRIGGER_WORD}' in the prompt: "
                         "its token is the one PhotoMaker fuses the photos into")
    cleaned = cleaned_tokens[key]
    if chunk >= len(cleaned) or cleaned[chunk][count][0] != row[count]:
        raise ValueError(f"could not find the class word before '{TRIGGER_WORD}' among the prompt's tokens")
    return chunk, count


def _stack_class_token(tokens: dict, chunk: int, position: int, copies: int) -> None:
    """Repeat the class token ``copies`` times in place, dropping as much end padding."""
    extra = copies - 1
    for key, chunks in tokens.items():
        row = list(chunks[chunk])
        ids = [t for t, *_ in row]
        end = ids.index(END_ID, 1)
        if end + extra > len(row) - 1:
            raise ValueError(f"no room in the prompt for {copies} ID images: the part holding the class "
                             f"word is full ({key} tokens); shorten the prompt or use fewer images")
        chunks[chunk] = row[:position + 1] + [row[position]] * extra + row[position + 1:len(row) - extra]


def encode(photomaker: PhotoMaker, image: torch.Tensor, clip, text: str) -> list:
    """CONDITIONING for ``text`` with the class word before ``photomaker`` fused with the photos."""
    words = text.split(" ")
    if TRIGGER_WORD not in words:
        cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return [[cond, {"pooled_output": pooled}]]
    trigger = words.index(TRIGGER_WORD)
    tokens = clip.tokenize(" ".join(words[:trigger] + words[trigger + 1:]))
    key = next(iter(tokens))
    chunk, position = _class_token_place(clip, words, trigger, tokens, key)
    photos = int(image.shape[0])
    _stack_class_token(tokens, chunk, position, photos)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    if cond.shape[-1] != photomaker.dim:
        raise ValueError(f"this PhotoMaker model fuses {photomaker.dim}-wide text tokens and this CLIP gives "
                         f"{cond.shape[-1]}-wide ones: use the CLIP of the family it was made for "
                         "(PhotoMaker v1: SDXL)")
    start = chunk * len(tokens[key][0]) + position
    cond = cond.clone()
    cond[0, start:start + photos] = photomaker.fuse(cond[0, start:start + photos], photomaker.id_embeds(image))
    return [[cond, {"pooled_output": pooled}]]


def build_photomaker(state_dict: dict, name: str = "PhotoMaker model") -> PhotoMaker:
    """A :class:`PhotoMaker` from its ``id_encoder`` weights."""
    from accelerate import init_empty_weights
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from opencomfy.diffusion.loading import _assign

    needed = ("visual_projection.weight", "visual_projection_2.weight", "fuse_module.layer_norm.weight")
    if any(k not in state_dict for k in needed):
        raise UnsupportedCheckpoint(f"{name} is not a PhotoMaker ID encoder (it needs vision_model.*, "
                                    "visual_projection(_2).weight and fuse_module.* weights)")
    config = vision_config({k: tuple(v.shape) for k, v in state_dict.items() if k.startswith(_TOWER_KEYS)})
    second, hidden = state_dict["visual_projection_2.weight"].shape
    dim = int(state_dict["fuse_module.layer_norm.weight"].shape[0])
    if config["projection_dim"] + second != dim:
        raise UnsupportedCheckpoint(f"{name}: the two projections ({config['projection_dim']} + {second}) do not "
                                    f"make the fuse module's width ({dim})")
    settings = {k: v for k, v in config.items() if k not in ("model_type", "image_mean", "image_std")}
    with init_empty_weights():
        model = IDEncoder(CLIPVisionModelWithProjection(CLIPVisionConfig(**settings)), int(hidden), int(second), dim)
    own = {("tower." + k if k.startswith(_TOWER_KEYS) else k): v for k, v in state_dict.items()}
    return PhotoMaker(_assign(model, own, "text_encoder"), int(config["image_size"]), dim, name)


def _id_encoder_weights(path: str) -> dict:
    if is_pickle_name(path):
        data = load_pickle(path, "PhotoMaker model")
        if isinstance(data, dict) and isinstance(data.get("id_encoder"), dict):
            data = data["id_encoder"]
        if not isinstance(data, dict):
            raise UnsupportedCheckpoint(f"{os.path.basename(path)} holds no state dict")
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    data = read_state_dict(path)
    if any(k.startswith("id_encoder.") for k in data):
        data = {k[len("id_encoder."):]: v for k, v in data.items() if k.startswith("id_encoder.")}
    return data


def load_photomaker_file(path: str) -> PhotoMaker:
    """PHOTOMAKER from a ``models/photomaker`` file."""
    name = os.path.basename(path)
    state_dict = read_model_file(path, _id_encoder_weights)
    try:
        return build_photomaker(state_dict, name)
    except UnsupportedCheckpoint as exc:
        raise UnsupportedCheckpoint(str(exc) if name in str(exc) else f"{name}: {exc}") from exc
