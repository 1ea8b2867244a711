"""CLIPTextEncodeControlnet at sampling time: the ControlNet attends to the entry's
``cross_attn_controlnet`` instead of the prompt's text; then one HTTP graph."""

from __future__ import annotations

import shutil

import pytest
import torch

from opencomfy.diffusion.conditioning import Cond, predict, resolve
from opencomfy.diffusion.controlnet import ControlNet, prepare_hint, residuals
from opencomfy.nodes.controlnet_extra import CLIPTextEncodeControlnet
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_controlnet import ControlNetApply
from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def cn_module(tiny_models, tmp_path_factory):
    """A tiny ControlNet with non-zero output convolutions, and its folder (LDM layout)."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from opencomfy.diffusion.controlnet import controlnet_to_ldm

    torch.manual_seed(11)
    module = ControlNetModel.from_unet(tiny_models[0].unet, conditioning_channels=3)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "controlnet_down_blocks" in name or "controlnet_mid_block" in name or "conv_out" in name:
                p.normal_(0, 0.2)
    module.eval().requires_grad_(False)
    folder = tmp_path_factory.mktemp("controlnet-context")
    ldm = controlnet_to_ldm(module.state_dict(), dict(module.config))
    save_file({k: t.contiguous() for k, t in ldm.items()}, str(folder / "tiny_cn.safetensors"))
    return module, folder


def _entries(tiny_models, cn_module):
    clip = tiny_models[1]
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(3))
    prompt = CLIPTextEncode().encode(clip, "a photo of a cat")[0]
    with_cn = ControlNetApply().apply_controlnet(prompt, ControlNet(cn_module[0], "sd1"), image, 0.8)[0]
    (with_text,) = CLIPTextEncodeControlnet().encode(clip, with_cn, "canny edges")
    return with_cn, with_text, image


def test_controlnet_uses_its_own_text(tiny_models, cn_module):
    with_cn, with_text, image = _entries(tiny_models, cn_module)
    schedule = tiny_models[0].model.model_sampling
    sigma = float(schedule.sigma_max) / 3
    (plain,) = resolve(with_cn, schedule=schedule, height=2, width=2)
    (texted,) = resolve(with_text, schedule=schedule, height=2, width=2)
    cn_ctx = with_text[0][1]["cross_attn_controlnet"]
    assert texted.controls[0].context is cn_ctx and plain.controls[0].context is None
    x, t = torch.randn(2, 4, 2, 2, generator=torch.Generator().manual_seed(1)), torch.tensor([400.0, 400.0])
    prompt_ctx = with_cn[0][0].expand(2, -1, -1)
    down, mid = residuals(texted.controls, x, t, prompt_ctx, None, sigma, schedule)
    ref_down, ref_mid = cn_module[0](x, t, encoder_hidden_states=cn_ctx.expand(2, -1, -1),
                                     controlnet_cond=prepare_hint(image, 2, 16, 16),
                                     conditioning_scale=0.8, return_dict=False)
    assert torch.equal(mid, ref_mid) and all(torch.equal(a, b) for a, b in zip(down, ref_down, strict=True))
    p_down, p_mid = residuals(plain.controls, x, t, prompt_ctx, None, sigma, schedule)
    assert not torch.allclose(p_mid, mid)


def test_sampling_passes_the_controlnet_text(tiny_models, cn_module):
    """Through the UNet call: the ControlNet sees the controlnet text, the UNet the prompt."""
    model = tiny_models[0]
    with_cn, with_text, _ = _entries(tiny_models, cn_module)
    schedule = model.model.model_sampling
    seen: list[torch.Tensor] = []
    hook = cn_module[0].register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["encoder_hidden_states"]), with_kwargs=True)
    try:
        x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
        sigma = float(schedule.sigma_max) / 3
        outs = []
        for cond in (with_cn, with_text):
            conds: list[Cond] = resolve(cond, schedule=schedule, height=8, width=8)
            outs.append(predict(model, x, sigma, [conds])[0])
    finally:
        hook.remove()
    assert torch.equal(seen[0], with_cn[0][0])
    assert torch.equal(seen[1], with_text[0][1]["cross_attn_controlnet"])
    assert not torch.allclose(outs[0], outs[1])


# -- over HTTP ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint, cn_module):
    base = tmp_path_factory.mktemp("controlnet-context-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / CKPT)
    shutil.copytree(cn_module[1], base / "models" / "controlnet")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def test_controlnet_text_over_http(server):
    """The prompt's own text as controlnet text changes nothing; another text changes the image."""
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "image": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1,
                                                         "color": 0xFF8040}},
        "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny_cn.safetensors"}},
        "apply": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["pos", 0], "control_net": ["cn", 0],
                                                              "image": ["image", 0], "strength": 1.0}},
    }
    variants = {"prompt": None, "same": "a lighthouse", "other": "a stormy sea"}
    for name, text in variants.items():
        pos = ["apply", 0]
        if text is not None:
            graph[f"{name}_txt"] = {"class_type": "CLIPTextEncodeControlnet", "inputs": {
                "clip": ["ckpt", 1], "conditioning": pos, "text": text}}
            pos = [f"{name}_txt", 0]
        graph[f"{name}_ks"] = {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "seed": 4, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": pos, "negative": ["neg", 0], "latent_image": ["latent", 0],
            "denoise": 1.0}}
        graph[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"{name}_ks", 0],
                                                                      "vae": ["ckpt", 2]}}
        graph[f"{name}_save"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": name,
                                                                       "images": [f"{name}_dec", 0]}}
    pixels = {node_id[:-len("_save")]: image.tobytes()
              for node_id, image in server.saved_images(graph, timeout=240).items()}
    assert pixels["same"] == pixels["prompt"]
    assert pixels["other"] != pixels["prompt"]
