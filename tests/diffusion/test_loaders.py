"""Standalone model files: UNETLoader, VAELoader, CLIPLoader and DualCLIPLoader."""

from __future__ import annotations

import copy

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion.ldm_keys import UNET_PREFIX, VAE_PREFIX, open_clip_to_ldm, unet_to_ldm, vae_to_ldm
from opencomfy.nodes.diffusion_loaders import CLIPLoader, DualCLIPLoader, UNETLoader, VAELoader


@pytest.fixture
def model_folders(tmp_path, monkeypatch):
    """Point the model kinds at fresh folders; yields {kind: folder}."""
    folders = {}
    for kind in ("diffusion_models", "vae", "text_encoders"):
        folder = tmp_path / kind
        folder.mkdir()
        folders[kind] = folder
        monkeypatch.setitem(folder_paths.folder_names_and_paths, kind,
                            ([str(folder)], folder_paths.supported_pt_extensions))
        folder_paths.filename_list_cache.pop(kind, None)
    yield folders
    for kind in folders:
        folder_paths.filename_list_cache.pop(kind, None)


def _save(path, state):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.fixture(scope="module")
def sdxl_parts(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import build_sdxl_modules

    return build_sdxl_modules(seed=3)


def test_unet_loader_reads_an_unprefixed_ldm_unet(model_folders, sdxl_parts):
    unet = sdxl_parts[0]
    ldm = unet_to_ldm(unet.state_dict(), dict(unet.config))
    _save(model_folders["diffusion_models"] / "xl_unet.safetensors",
          {k[len(UNET_PREFIX):]: v for k, v in ldm.items()})
    assert "xl_unet.safetensors" in UNETLoader.INPUT_TYPES()["required"]["unet_name"][0]
    (model,) = UNETLoader().load_unet("xl_unet.safetensors", "default")
    assert model.family == "sdxl" and model.scale_factor == 0.13025
    sa, sb = unet.state_dict(), model.unet.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_vae_loader_reads_a_bare_vae_file(model_folders, tiny_models):
    vae = tiny_models[2].autoencoder
    ldm = vae_to_ldm(vae.state_dict(), dict(vae.config))
    _save(model_folders["vae"] / "vae.safetensors", {k[len(VAE_PREFIX):]: v for k, v in ldm.items()})
    (loaded,) = VAELoader().load_vae("vae.safetensors")
    latent = torch.randn(1, 4, 4, 4)
    assert torch.allclose(loaded.decode(latent), tiny_models[2].decode(latent), atol=1e-6)


def test_clip_loader_reads_a_transformers_clip_l(model_folders, tiny_models):
    clip = tiny_models[1]
    state = {"text_model." + k.removeprefix("text_model."): v for k, v in clip.model.state_dict().items()}
    _save(model_folders["text_encoders"] / "clip_l.safetensors", state)
    (loaded,) = CLIPLoader().load_clip("clip_l.safetensors", "stable_diffusion")
    assert torch.allclose(loaded.encode("a cat"), clip.encode("a cat"), atol=1e-6)


@pytest.mark.parametrize("order", ["lg", "gl"])
def test_dual_clip_loader_builds_sdxl_clip(model_folders, sdxl_parts, order):
    from opencomfy.diffusion.loading import sdxl_clip

    _, _, clip_l, clip_g = sdxl_parts
    # CLIP-L in transformers' names; OpenCLIP-G in open_clip's own layout. Real files differ in
    # depth (12 and 32 layers); these tiny ones do not, so the projection tells them apart.
    _save(model_folders["text_encoders"] / "clip_l.safetensors",
          {"text_model." + k.removeprefix("text_model."): v for k, v in clip_l.state_dict().items()})
    _save(model_folders["text_encoders"] / "clip_g.safetensors", open_clip_to_ldm(clip_g.state_dict(), ""))
    names = ["clip_l.safetensors", "clip_g.safetensors"]
    if order == "gl":
        names.reverse()
    (clip,) = DualCLIPLoader().load_clip(*names, "sdxl")
    # the loader stores text encoders in fp16 as ComfyUI does: the reference gets the same rounding
    clip_l, clip_g = copy.deepcopy(clip_l), copy.deepcopy(clip_g)
    for p in [*clip_l.parameters(), *clip_g.parameters()]:
        p.data = p.data.half().float()
    reference = sdxl_clip(clip_l, clip_g)
    ours, theirs = clip.encode_from_tokens(clip.tokenize("a cat"), return_pooled=True), \
        reference.encode_from_tokens(reference.tokenize("a cat"), return_pooled=True)
    assert torch.allclose(ours[0], theirs[0], atol=1e-6) and torch.allclose(ours[1], theirs[1], atol=1e-6)
    with pytest.raises(Exception, match="not supported"):
        DualCLIPLoader().load_clip(*names, "flux")
