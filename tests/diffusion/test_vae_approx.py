"""VAELoader's extra entries: the TAESD approximations from models/vae_approx and pixel_space,
and the loader types that are listed (as in ComfyUI) but fail at run time with a clear error."""

from __future__ import annotations

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.nodes.diffusion_loaders import CLIPLoader, DualCLIPLoader, VAELoader
from opencomfy.nodes.diffusion_vae import VAEDecode, VAEEncode


@pytest.fixture
def vae_folders(tmp_path, monkeypatch):
    folders = {}
    for kind in ("vae", "vae_approx"):
        folder = tmp_path / kind
        folder.mkdir()
        folders[kind] = folder
        monkeypatch.setitem(folder_paths.folder_names_and_paths, kind,
                            ([str(folder)], folder_paths.supported_pt_extensions))
        folder_paths.filename_list_cache.pop(kind, None)
    yield folders
    for kind in folders:
        folder_paths.filename_list_cache.pop(kind, None)


def _tiny_autoencoder(latent_channels: int):
    from diffusers import AutoencoderTiny

    torch.manual_seed(latent_channels)
    return AutoencoderTiny(latent_channels=latent_channels).eval()


def _write_taesd(folder, name: str, autoencoder) -> None:
    """Save diffusers' AutoencoderTiny in TAESD's own two-file layout."""
    from safetensors.torch import save_file

    state = autoencoder.state_dict()
    encoder = {k[len("encoder.layers."):]: v for k, v in state.items() if k.startswith("encoder.layers.")}
    decoder = {}
    for key, value in state.items():
        if key.startswith("decoder.layers."):
            index, _, rest = key[len("decoder.layers."):].partition(".")
            decoder[f"{int(index) + 1}.{rest}"] = value      # TAESD's decoder starts with a clamp
    save_file({k: v.contiguous() for k, v in encoder.items()}, str(folder / f"{name}_encoder.safetensors"))
    save_file({k: v.contiguous() for k, v in decoder.items()}, str(folder / f"{name}_decoder.safetensors"))


def test_list_has_the_files_then_complete_approximations_then_pixel_space(vae_folders):
    (vae_folders["vae"] / "a.safetensors").write_bytes(b"")
    for name in ("taesd_encoder.pth", "taesd_decoder.pth", "taef1_decoder.safetensors"):
        (vae_folders["vae_approx"] / name).write_bytes(b"")
    assert VAELoader.INPUT_TYPES()["required"]["vae_name"][0] == ["a.safetensors", "taesd", "pixel_space"]


def test_pixel_space_is_the_identity_between_images_and_minus_one_to_one(vae_folders):
    (vae,) = VAELoader().load_vae("pixel_space")
    image = torch.rand(1, 12, 20, 3)
    (latent,) = VAEEncode().encode(vae, image)
    assert latent["samples"].shape == (1, 3, 12, 20)
    assert torch.allclose(latent["samples"], image.movedim(-1, 1) * 2 - 1)
    (decoded,) = VAEDecode().decode(vae, latent)
    assert torch.allclose(decoded, image, atol=1e-6)


@pytest.mark.parametrize("name,channels", [("taesd", 4), ("taef1", 16)])
def test_taesd_matches_diffusers_autoencoder_tiny(vae_folders, name, channels):
    from opencomfy.diffusion.approx_vae import TAESD_LATENT_FORMATS

    reference = _tiny_autoencoder(channels)
    _write_taesd(vae_folders["vae_approx"], name, reference)
    assert name in VAELoader.INPUT_TYPES()["required"]["vae_name"][0]
    (vae,) = VAELoader().load_vae(name)
    scale, shift = TAESD_LATENT_FORMATS[name]
    latent = torch.randn(1, channels, 4, 6)
    with torch.no_grad():
        expected = reference.decode((latent - shift) * scale).sample
    decoded = vae.decode(latent)
    assert decoded.shape == (1, 32, 48, 3)
    assert torch.allclose(decoded, ((expected + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1), atol=2e-3)
    image = torch.rand(1, 32, 48, 3)
    with torch.no_grad():
        expected_latent = reference.encode(image.permute(0, 3, 1, 2) * 2 - 1).latents / scale + shift
    assert torch.allclose(vae.encode(image), expected_latent, atol=2e-2)


def test_missing_approximation_file_is_a_clear_error(vae_folders):
    with pytest.raises(FileNotFoundError, match="taesdxl_encoder"):
        VAELoader().load_vae("taesdxl")


def test_loader_types_of_other_families_fail_when_run_naming_them():
    assert "hunyuan_image" in CLIPLoader.INPUT_TYPES()["required"]["type"][0]
    with pytest.raises(ValueError, match="wan family"):
        CLIPLoader().load_clip("x.safetensors", "wan")
    assert "hunyuan_image" in DualCLIPLoader.INPUT_TYPES()["required"]["type"][0]
