"""`/api/free` with unload_models reaches the diffusion model cache through ComfyUI's
`comfy.model_management.unload_all_models`, which custom nodes call too."""

from __future__ import annotations

from opencomfy.compat.comfy import model_management
from opencomfy.diffusion import cache


def test_unload_all_models_empties_the_diffusion_cache(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"x")
    key = cache.file_key(str(path))
    cache.get_or_load(key, lambda: object())
    assert key in cache._entries
    model_management.unload_all_models()
    assert not cache._entries
