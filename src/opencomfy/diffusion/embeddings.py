"""Textual-inversion embeddings: ``embedding:name`` in a prompt inserts learned token vectors.

Files live in the ``embeddings`` model folder (``name``, ``name.safetensors``, ``name.pt``...).
Formats: A1111/kohya safetensors (``emb_params``, or one tensor), SDXL embeddings with one
tensor per tower (``clip_l``, ``clip_g``), and pickled ``string_to_param`` files when pickles
are allowed. Each vector counts as one token of the prompt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from opencomfy.weights import is_pickle_name, load_pickle, read_state_dict

log = logging.getLogger(__name__)

PREFIX = "embedding:"
EXTENSIONS = ("", ".safetensors", ".pt", ".bin", ".pth")


@dataclass(frozen=True)
class EmbeddingToken:
    """Stands for vector ``index`` of embedding ``name`` until a tower resolves it."""

    name: str
    index: int
    vectors: "EmbeddingVectors"

    def vector(self, tower_key: str, width: int) -> torch.Tensor | None:
        return self.vectors.for_tower(tower_key, width, self.index)


class EmbeddingVectors:
    """The tensors of one embedding file, per tower key ("l", "g", ...) or untagged."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = {k: (v if v.ndim == 2 else v.reshape(-1, v.shape[-1])).float()
                        for k, v in tensors.items()}

    @property
    def count(self) -> int:
        return max(v.shape[0] for v in self.tensors.values())

    def for_tower(self, tower_key: str, width: int, index: int) -> torch.Tensor | None:
        tagged = self.tensors.get(f"clip_{tower_key}")
        candidates = [tagged] if tagged is not None else list(self.tensors.values())
        for t in candidates:
            if t.shape[-1] == width and index < t.shape[0]:
                return t[index]
        return None


def _read(path: str) -> dict[str, torch.Tensor]:
    if is_pickle_name(path):
        data = load_pickle(path, "embedding")
        if isinstance(data, dict) and "string_to_param" in data:
            return {"emb_params": next(iter(data["string_to_param"].values()))}
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    return read_state_dict(path)


def find_embedding(name: str) -> str | None:
    from opencomfy.compat import folder_paths

    for ext in EXTENSIONS:
        path = folder_paths.get_full_path("embeddings", name + ext)
        if path is not None:
            return path
    return None


def load_embedding(name: str) -> EmbeddingVectors | None:
    """The vectors of ``embedding:name``, or None (with a warning) if there is no such file."""
    from opencomfy.diffusion import cache

    path = find_embedding(name)
    if path is None:
        log.warning("embedding:%s does not exist, ignoring", name)
        return None
    try:
        return cache.get_or_load(cache.file_key(path, "embedding"), lambda: EmbeddingVectors(_read(path)))
    except Exception as exc:  # noqa: BLE001 - a bad embedding file must not fail the prompt
        log.warning("embedding:%s could not be read (%s), ignoring", name, exc)
        return None
