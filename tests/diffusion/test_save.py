"""Saving: a saved checkpoint is in the LDM layout with ComfyUI's metadata and samples exactly
as the original; VAE, CLIP and model files load back; LoraSave of (B - A) applied to A gives B;
DiffusersLoader; one save graph over HTTP."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors import safe_open

from opencomfy.compat import folder_paths
from opencomfy.diffusion.loading import load_checkpoint_file, load_clip_file, load_unet_file, load_vae_file
from opencomfy.diffusion.memory import models_in_use
from opencomfy.nodes.diffusion_sampling import common_ksampler
from opencomfy.nodes import diffusion_conditioning as cn
from opencomfy.nodes import model_merging as mm
from opencomfy.nodes import model_saving as ms
from tests.harness import Server


@pytest.fixture
def output_dir(tmp_path):
    previous = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path))
    yield tmp_path
    folder_paths.set_output_directory(previous)


@pytest.fixture(scope="module")
def models_b(tmp_path_factory):
    from opencomfy.diffusion.random_checkpoint import write_sd1_checkpoint

    path = tmp_path_factory.mktemp("ckpt-b") / "tiny_b.safetensors"
    write_sd1_checkpoint(path, "tiny", seed=9)
    return load_checkpoint_file(str(path))


def _sample(model, clip, seed=2):
    pos = cn.CLIPTextEncode().encode(clip, "a red house")[0]
    neg = cn.CLIPTextEncode().encode(clip, "")[0]
    return common_ksampler(model, seed, 3, 5.0, "euler", "normal", pos, neg,
                           {"samples": torch.zeros(1, 4, 4, 4)})["samples"]


def _unet(model):
    with models_in_use(model):
        return {k: v.detach().clone() for k, v in model.model_state_dict("diffusion_model.").items()}


def test_checkpoint_round_trip_samples_identically(tiny_models, output_dir):
    model, clip, vae = tiny_models
    ms.CheckpointSave().save(model, clip, vae, "checkpoints/round", prompt={"1": {"class_type": "X"}},
                             extra_pnginfo={"workflow": {"nodes": []}})
    path = output_dir / "checkpoints" / "round_00001_.safetensors"
    with safe_open(str(path), "pt") as f:
        keys, metadata = list(f.keys()), f.metadata()
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."))
               for k in keys)
    assert "model.diffusion_model.input_blocks.1.1.proj_in.weight" in keys
    assert metadata["modelspec.predict_key"] == "epsilon"
    assert metadata["prompt"] == '{"1": {"class_type": "X"}}' and metadata["workflow"] == '{"nodes": []}'
    m2, c2, v2 = load_checkpoint_file(str(path))
    assert torch.equal(_sample(model, clip), _sample(m2, c2))
    latent = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(vae.decode(latent), v2.decode(latent))


def test_saved_merge_has_the_patches_applied(tiny_models, models_b, output_dir):
    merged = mm.ModelMergeSimple().merge(tiny_models[0], models_b[0], 0.5)[0]
    ms.ModelSave().save(merged, "diffusion_models/merged")
    loaded = load_unet_file(str(output_dir / "diffusion_models" / "merged_00001_.safetensors"))
    expected, got = _unet(merged), _unet(loaded)
    key = "diffusion_model.output_blocks.3.1.proj_out.weight"
    torch.testing.assert_close(got[key], expected[key])


def test_vae_and_clip_files_load_back(tiny_models, output_dir):
    _, clip, vae = tiny_models
    ms.VAESave().save(vae, "vae/v")
    ms.CLIPSave().save(clip, "clip/c")
    v2 = load_vae_file(str(output_dir / "vae" / "v_00001_.safetensors"))
    c2 = load_clip_file(str(output_dir / "clip" / "c_clip_l_00001_.safetensors"))
    latent = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(vae.decode(latent), v2.decode(latent))
    assert torch.equal(clip.encode("a cat"), c2.encode("a cat"))


def _lora_of_difference(a, b, output_dir, name, **options):
    from opencomfy.diffusion.lora import load_lora_file

    diff = mm.ModelMergeSubtract().merge(b, a, 1.0)[0]
    ms.LoraSave().execute(f"loras/{name}", model_diff=diff, **options)
    lora = load_lora_file(str(output_dir / "loras" / f"{name}_00001_.safetensors"))
    patched = a.clone()
    patched.patches.append((lora.for_unet(a.unet), 1.0))
    return patched


def test_lora_save_of_a_difference_rebuilds_the_model(tiny_models, models_b, output_dir):
    a, b = tiny_models[0], models_b[0]
    wb = _unet(b)
    exact = _unet(_lora_of_difference(a, b, output_dir, "full", rank=8, lora_type="full_diff", bias_diff=True))
    for key in wb:      # half-precision differences: equal within fp16 rounding
        torch.testing.assert_close(exact[key], wb[key], rtol=0, atol=2e-3)
    ranked = _unet(_lora_of_difference(a, b, output_dir, "ranked", rank=4096, lora_type="standard",
                                       bias_diff=True))
    key = "diffusion_model.input_blocks.1.1.proj_in.weight"
    # Full rank; the 99th-percentile clamp of ComfyUI's extraction costs a little precision.
    error = (ranked[key] - wb[key]).norm() / (wb[key] - _unet(a)[key]).norm()
    assert error < 0.2
    with safe_open(str(output_dir / "loras" / "ranked_00001_.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "diffusion_model.input_blocks.1.1.proj_in.lora_up.weight" in keys
    assert "diffusion_model.input_blocks.1.1.proj_in.diff_b" in keys


def test_diffusers_folder_loads_like_the_checkpoint(tiny_checkpoint, tiny_models, tmp_path):
    import json

    from opencomfy.diffusion.diffusers_folder import load_diffusers_folder

    unet, vae, text = tiny_checkpoint[1]
    folder = tmp_path / "pipe"
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    model, clip, vae2 = load_diffusers_folder(str(folder))
    assert torch.equal(_sample(model, clip), _sample(*tiny_models[:2]))


@pytest.fixture(scope="module")
def save_server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("save-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / "tiny.safetensors")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_save_graph_over_http(save_server):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "ModelMergeSubtract", "inputs": {"model1": ["1", 0], "model2": ["1", 0],
                                                              "multiplier": 0.5}},
        "3": {"class_type": "LoraSave", "inputs": {"filename_prefix": "loras/x", "rank": 4,
                                                    "lora_type": "standard", "bias_diff": False,
                                                    "model_diff": ["1", 0]}},
        "4": {"class_type": "VAESave", "inputs": {"vae": ["1", 2], "filename_prefix": "vae/v"}},
        "5": {"class_type": "CLIPSave", "inputs": {"clip": ["1", 1], "filename_prefix": "clip/c"}},
        "6": {"class_type": "ModelSave", "inputs": {"model": ["2", 0], "filename_prefix": "diffusion_models/d"}},
    }
    r = save_server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    entry = save_server.wait_for_job(r.json()["prompt_id"], timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    out = save_server.base_dir / "output"
    for name in ("loras/x_00001_.safetensors", "vae/v_00001_.safetensors", "clip/c_clip_l_00001_.safetensors",
                 "diffusion_models/d_00001_.safetensors"):
        assert (out / name).stat().st_size > 1000, name
    zero = load_unet_file(str(out / "diffusion_models" / "d_00001_.safetensors"))
    assert all(float(v.abs().max()) == 0.0 for v in _unet(zero).values())     # (w - w) * 0.5
