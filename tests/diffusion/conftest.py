"""Fixtures for the diffusion extra: tiny random SD 1.x checkpoints in the real file layout.

Skipped as a whole when the extra (diffusers, transformers, safetensors, accelerate) is not
installed. Torch runs on one thread: on a small shared machine that is many times faster.
"""

from __future__ import annotations

import pytest

from opencomfy.diffusion import available

if not available():
    pytest.skip("the diffusion extra is not installed", allow_module_level=True)

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(path, (unet, vae, text_encoder)) of a tiny random SD 1.x checkpoint (safetensors)."""
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny_sd1.safetensors"
    modules = write_sd1_checkpoint(path, "tiny", seed=0)
    return path, modules


@pytest.fixture(scope="session")
def tiny_models(tiny_checkpoint):
    """(MODEL, CLIP, VAE) loaded from the tiny checkpoint through our loader."""
    from opencomfy.diffusion.loading import load_checkpoint_file

    return load_checkpoint_file(str(tiny_checkpoint[0]))
