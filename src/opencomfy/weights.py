"""Model weight files: which formats exist, reading them, and giving a module its weights.

The one place that knows the file formats of model weights. It depends on nothing of ours but
the config (for the pickle opt-in), so the diffusion loaders, the embeddings, LoRA and
ControlNet readers and the assets layer all import it without importing each other. torch is
imported only inside the functions that need it: the API side (assets) uses the extension list
and must never import torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

from opencomfy.config import ALLOW_PICKLE_ENV, pickle_models_allowed

if TYPE_CHECKING:
    import torch

#: Weight files that are Python pickles (a torch zip archive wraps one): loading runs code.
PICKLE_EXTENSIONS: tuple[str, ...] = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle", ".pt2")
#: Weight files that hold only tensors and a JSON header.
SAFETENSORS_EXTENSIONS: tuple[str, ...] = (".safetensors", ".sft")


class UnsupportedCheckpoint(ValueError):
    """The file is not a model family or format we can load."""


class PickleRefused(ValueError):
    """A pickle weight file was given and the operator did not opt in."""


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_EXTENSIONS)


def check_pickle_allowed(path: str, what: str = "checkpoint") -> None:
    """Raise PickleRefused unless the operator opted in to pickle files."""
    if not pickle_models_allowed():
        raise PickleRefused(
            f"{os.path.basename(path)} is a pickle {what}, which can run code when loaded; "
            f"convert it to .safetensors or set {ALLOW_PICKLE_ENV}=1 (--allow-pickle-models) to load it")


def load_pickle(path: str, what: str = "checkpoint") -> Any:
    """The object a pickle weight file holds (tensors only: torch's weights_only loader)."""
    import torch

    check_pickle_allowed(path, what)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (or, when opted in, a pickle checkpoint)."""
    import torch

    ext = os.path.splitext(path)[1].lower()
    if ext in SAFETENSORS_EXTENSIONS:
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    if ext in PICKLE_EXTENSIONS:
        data = load_pickle(path)
        if isinstance(data, dict) and "state_dict" in data:
            data = data["state_dict"]
        if not isinstance(data, dict):
            raise UnsupportedCheckpoint(f"{os.path.basename(path)} holds no state dict")
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    raise UnsupportedCheckpoint(f"unknown checkpoint format: {os.path.basename(path)}")


def read_model_file(path: str, read: Callable[[str], dict] | None = None) -> dict:
    """``read(path)`` (default :func:`read_state_dict`) for a loader node: any failure to read the
    file becomes an UnsupportedCheckpoint naming it, which the node reports as its error."""
    name = os.path.basename(path)
    try:
        return (read or read_state_dict)(path)
    except (OSError, ValueError) as exc:
        raise UnsupportedCheckpoint(f"{name} could not be read: {exc}") from exc
    except Exception as exc:   # safetensors reports a broken header with its own error type
        raise UnsupportedCheckpoint(f"{name} is not a readable weights file: {exc}") from exc


def assign_weights(module, state_dict: dict, dtype: torch.dtype, device: torch.device | str):
    """Give a meta-device module its weights, strictly (every key must match), on ``device``."""
    converted = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    missing, unexpected = module.load_state_dict(converted, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise UnsupportedCheckpoint(f"{type(module).__name__}: weights do not match the detected "
                                    f"architecture (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return module.to(device).eval().requires_grad_(False)
