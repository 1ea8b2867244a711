"""DiffControlNetLoader, SetUnionControlNetType, ControlNetInpaintingAliMamaApply,
CLIPTextEncodeControlnet, T5TokenizerOptions: direct results, then one HTTP graph."""

from __future__ import annotations

import shutil

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion.detect import UnsupportedCheckpoint
from opencomfy.nodes import controlnet_extra as ce
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_controlnet import ControlNetLoader
from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def cn_files(tiny_models, tmp_path_factory):
    """(module, folder): a tiny ControlNet as tiny_cn (whole), tiny_diff (its UNet-copied
    weights minus the tiny UNet's) and tiny_union (with a union key added)."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from opencomfy.diffusion.checkpoint_save import unet_state_dict
    from opencomfy.diffusion.controlnet import controlnet_to_ldm

    torch.manual_seed(5)
    module = ControlNetModel.from_unet(tiny_models[0].unet, conditioning_channels=3)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    module.eval().requires_grad_(False)
    folder = tmp_path_factory.mktemp("controlnet-extra")
    ldm = {k: t.contiguous() for k, t in controlnet_to_ldm(module.state_dict(), dict(module.config)).items()}
    save_file(ldm, str(folder / "tiny_cn.safetensors"))
    base = unet_state_dict(tiny_models[0])
    diff = {}
    for key, value in ldm.items():
        ref = base.get("model.diffusion_model." + key[len("control_model."):])
        diff[key] = (value - ref).contiguous() if ref is not None and ref.shape == value.shape else value
    assert sum(1 for k in diff if not torch.equal(diff[k], ldm[k])) > 10
    save_file(diff, str(folder / "tiny_diff.safetensors"))
    save_file({**ldm, "control_model.task_embedding": torch.zeros(8, 16)}, str(folder / "tiny_union.safetensors"))
    return module, folder


@pytest.fixture
def cn_folder(cn_files, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "controlnet",
                        ([str(cn_files[1])], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("controlnet", None)
    yield cn_files
    folder_paths.filename_list_cache.pop("controlnet", None)


def test_diff_controlnet_restores_the_whole(tiny_models, cn_folder):
    whole = ControlNetLoader().load_controlnet("tiny_cn.safetensors")[0]
    diff = ce.DiffControlNetLoader().load_controlnet(tiny_models[0], "tiny_diff.safetensors")[0]
    sa, sb = whole.model.state_dict(), diff.model.state_dict()
    assert set(sa) == set(sb)
    assert all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


def test_union_controlnet_file_is_refused(cn_folder):
    with pytest.raises(UnsupportedCheckpoint, match="union ControlNets"):
        ControlNetLoader().load_controlnet("tiny_union.safetensors")


def test_set_union_type(cn_folder):
    loaded = ControlNetLoader().load_controlnet("tiny_cn.safetensors")[0]
    depth = ce.SetUnionControlNetType().set_controlnet_type(loaded, "depth")[0]
    assert depth.union_type == 1 and depth.model is loaded.model and loaded.union_type is None
    assert ce.SetUnionControlNetType().set_controlnet_type(depth, "auto")[0].union_type is None
    assert ce.SetUnionControlNetType().set_controlnet_type(loaded, "repaint")[0].union_type == 7
    with pytest.raises(ValueError, match="unknown type"):
        ce.SetUnionControlNetType().set_controlnet_type(loaded, "pose")


def test_inpainting_apply(tiny_models, cn_folder):
    from opencomfy.diffusion.controlnet import ControlNet, residuals

    clip = tiny_models[1]
    pos, neg = CLIPTextEncode().encode(clip, "a cat")[0], CLIPTextEncode().encode(clip, "blurry")[0]
    loaded = ControlNetLoader().load_controlnet("tiny_cn.safetensors")[0]
    image = torch.rand(1, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[:, :8] = 1.0
    # A 3-channel ControlNet: applied as Apply ControlNet, the image untouched.
    p, n = ce.ControlNetInpaintingAliMamaApply().apply_inpaint_controlnet(
        pos, neg, loaded, None, image, mask, 0.7, 0.1, 0.9)
    (apply,) = p[0][1]["control"]
    assert apply.mask is None and torch.equal(apply.hint, image) and n[0][1]["control"] == (apply,)
    assert (apply.strength, apply.start_percent, apply.end_percent) == (0.7, 0.1, 0.9)
    assert ce.ControlNetInpaintingAliMamaApply().apply_inpaint_controlnet(
        pos, neg, loaded, None, image, mask, 0.0, 0.0, 1.0) == (pos, neg)
    # A ControlNet whose hint encoder takes a mask channel: masked pixels cleared, keep mask added.
    from diffusers import ControlNetModel

    four = ControlNet(ControlNetModel.from_unet(tiny_models[0].unet, conditioning_channels=4).eval(), "sd1")
    assert four.concat_mask and not loaded.concat_mask
    p, _ = ce.ControlNetInpaintingAliMamaApply().apply_inpaint_controlnet(
        pos, neg, four, None, image, mask, 1.0, 0.0, 1.0)
    (apply,) = p[0][1]["control"]
    assert torch.all(apply.hint[:, :8] == 0) and torch.equal(apply.hint[:, 8:], image[:, 8:])
    assert apply.mask.shape == (1, 1, 16, 16) and torch.all(apply.mask[:, :, :8] == 0)
    schedule = tiny_models[0].model.model_sampling
    down, mid = residuals([apply], torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 77, 32),
                          None, float(schedule.sigma_max) / 2, schedule)
    assert mid is not None and down is not None


def test_text_encode_controlnet_and_t5_options(tiny_models):
    clip = tiny_models[1]
    cond = CLIPTextEncode().encode(clip, "a cat")[0]
    (out,) = ce.CLIPTextEncodeControlnet().encode(clip, cond, "edges")
    ref = clip.encode_from_tokens(clip.tokenize("edges"), return_dict=True)
    assert torch.equal(out[0][1]["cross_attn_controlnet"], ref["cond"])
    assert torch.equal(out[0][1]["pooled_output_controlnet"], ref["pooled_output"])
    assert "cross_attn_controlnet" not in cond[0][1] and torch.equal(out[0][0], cond[0][0])
    (t5,) = ce.T5TokenizerOptions().set_options(clip, 3, 7)
    assert t5 is not clip and not getattr(clip, "tokenizer_options", None)
    assert t5.tokenizer_options["t5xxl_min_padding"] == 3 and t5.tokenizer_options["umt5xxl_min_length"] == 7
    # SD CLIPs have no T5: the same encoding.
    assert torch.equal(t5.encode_from_tokens(t5.tokenize("a cat"), return_dict=True)["cond"], cond[0][0])


# -- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint, cn_files):
    base = tmp_path_factory.mktemp("controlnet-extra-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / CKPT)
    shutil.copytree(cn_files[1], base / "models" / "controlnet")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_controlnet_extra_over_http(server):
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "t5": {"class_type": "T5TokenizerOptions", "inputs": {"clip": ["ckpt", 1], "min_padding": 1,
                                                              "min_length": 2}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["t5", 0]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "pos_cn": {"class_type": "CLIPTextEncodeControlnet", "inputs": {"clip": ["ckpt", 1],
                                                                        "conditioning": ["pos", 0], "text": "edges"}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "image": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1,
                                                         "color": 0xFF8040}},
        "mask": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 32, "height": 32}},
        "whole": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_cn.safetensors"}},
        "diff": {"class_type": "DiffControlNetLoader", "inputs": {"model": ["ckpt", 0],
                                                                  "control_net_name": "tiny_diff.safetensors"}},
        "typed": {"class_type": "SetUnionControlNetType", "inputs": {"control_net": ["diff", 0], "type": "depth"}},
    }
    applies = {"plain": None, "whole": ["whole", 0], "diff": ["typed", 0]}
    for name, control in applies.items():
        pos, neg = ["pos_cn", 0], ["neg", 0]
        if control is not None:
            graph[f"{name}_cn"] = {"class_type": "ControlNetInpaintingAliMamaApply", "inputs": {
                "positive": pos, "negative": neg, "control_net": control, "vae": ["ckpt", 2],
                "image": ["image", 0], "mask": ["mask", 0], "strength": 1.0, "start_percent": 0.0,
                "end_percent": 1.0}}
            pos, neg = [f"{name}_cn", 0], [f"{name}_cn", 1]
        graph[f"{name}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "seed": 4, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": pos, "negative": neg, "latent_image": ["latent", 0],
            "denoise": 1.0}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_ks", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    pixels = {node_id[:-len("_save")]: image.tobytes()
              for node_id, image in server.saved_images(graph, timeout=240).items()}
    # The diff ControlNet made whole acts as the whole one; both change the image.
    assert pixels["whole"] != pixels["plain"]
    assert pixels["diff"] == pixels["whole"]
