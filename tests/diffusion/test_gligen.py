"""GLIGEN on the tiny SD 1.x model: a random GLIGEN file built from diffusers' own modules and
saved in the layout of ComfyUI's GLIGEN files, applied through GLIGENTextBoxApply.

With zero gates the image is exactly the one without GLIGEN; with random gates each transformer
block's output after self-attention is what diffusers' ``GatedSelfAttentionDense`` gives when
called directly on the same inputs, with the grounding tokens of the box computed here by hand.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion.gligen import fuser_heads, load_gligen_file
from opencomfy.diffusion.unet_patches import attention_sites
from opencomfy.nodes.clip_vision import GLIGENLoader, GLIGENTextBoxApply
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_sampling import KSampler
from opencomfy.weights import UnsupportedCheckpoint
from tests.harness import Server

PHRASE_DIM = 32     # the tiny CLIP's width (SD 1.x: 768)


def _ldm_prefix(block: tuple[str, int]) -> str:
    """Where the transformer of an LDM block sits in the original layout."""
    kind, number = block
    return "middle_block.1" if kind == "middle" else f"{kind}_blocks.{number}.1"


def _blocks(unet) -> list:
    """(BasicTransformerBlock, site) for every transformer block, in running order."""
    sites = attention_sites(unet)
    found = [(m, sites[id(m.attn1)]) for m in unet.modules()
             if getattr(m, "attn1", None) is not None and id(m.attn1) in sites]
    return sorted(found, key=lambda pair: (pair[1].transformer_index, pair[1].block_index))


def _random_gligen(unet, *, gates: bool, seed: int = 0):
    """(state dict in ComfyUI's GLIGEN layout, position net, {site: fuser}) from diffusers' modules."""
    from diffusers.models.attention import GatedSelfAttentionDense
    from diffusers.models.embeddings import GLIGENTextBoundingboxProjection

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    position_net = GLIGENTextBoundingboxProjection(positive_len=PHRASE_DIM, out_dim=PHRASE_DIM).eval()
    with torch.no_grad():
        position_net.null_positive_feature.normal_(generator=generator)
        position_net.null_position_feature.normal_(generator=generator)
    state = {f"position_net.{k}": v for k, v in position_net.state_dict().items()}
    fusers = {}
    for block, site in _blocks(unet):
        channels = block.norm1.normalized_shape[0]
        fuser = GatedSelfAttentionDense(channels, PHRASE_DIM, *fuser_heads(channels, PHRASE_DIM)).eval()
        with torch.no_grad():
            for name, p in fuser.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn(p.shape, generator=generator))
            fuser.alpha_attn.fill_(0.8 if gates else 0.0)
            fuser.alpha_dense.fill_(-0.6 if gates else 0.0)
        fusers[(site.block, site.block_index)] = fuser
        prefix = f"{_ldm_prefix(site.block)}.transformer_blocks.{site.block_index}.fuser."
        state.update({prefix + k: v for k, v in fuser.state_dict().items()})
    return state, position_net, fusers


def _save(path, state: dict) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


@pytest.fixture(scope="module")
def gligen_dir(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("gligen") / "gligen"
    folder.mkdir()
    unet = tiny_models[0].unet
    for name, gates in (("zero_gates", False), ("random", True)):
        _save(folder / f"{name}.safetensors", _random_gligen(unet, gates=gates)[0])
    (folder / "broken.safetensors").write_bytes(b"not a weights file")
    _save(folder / "not_gligen.safetensors", {"x": torch.zeros(1)})
    return folder


@pytest.fixture
def folders(gligen_dir, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "gligen",
                        ([str(gligen_dir)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("gligen", None)
    yield gligen_dir
    folder_paths.filename_list_cache.pop("gligen", None)


def _sample(model, positive, negative, cfg=1.0, steps=2):
    latent = {"samples": torch.zeros(1, 4, 4, 4)}
    return KSampler().sample(model, 5, steps, cfg, "euler", "normal", positive, negative, latent)[0]["samples"]


def _texts(clip):
    return CLIPTextEncode().encode(clip, "a meadow")[0], CLIPTextEncode().encode(clip, "")[0]


def test_loader_keeps_every_weight_under_its_block(folders, tiny_models):
    (gligen,) = GLIGENLoader().load_gligen("random.safetensors")
    state, position_net, fusers = _random_gligen(tiny_models[0].unet, gates=True)
    module = gligen.model
    assert module.key_dim == PHRASE_DIM and len(module.fusers) == len(fusers) == 4
    for k, v in position_net.state_dict().items():
        assert torch.equal(module.position_net.state_dict()[k], v), k
    for (block, index), fuser in fusers.items():
        ours = module.fusers[f"{block[0]}_{block[1]}_{index}"]
        assert ours.attn.heads == fuser.attn.heads
        for k, v in fuser.state_dict().items():
            assert torch.equal(ours.state_dict()[k], v), k
    assert GLIGENLoader().load_gligen("random.safetensors")[0] is gligen    # cached


def test_unreadable_or_foreign_files_are_clear_errors(folders):
    with pytest.raises(UnsupportedCheckpoint, match="broken.safetensors"):
        load_gligen_file(str(folders / "broken.safetensors"))
    with pytest.raises(UnsupportedCheckpoint, match="not a GLIGEN text-box model"):
        load_gligen_file(str(folders / "not_gligen.safetensors"))


def test_text_box_apply_appends_boxes_in_latent_pixels(folders, tiny_models):
    clip = tiny_models[1]
    (gligen,) = GLIGENLoader().load_gligen("random.safetensors")
    positive, _ = _texts(clip)
    (once,) = GLIGENTextBoxApply().append(positive, clip, gligen, "a red ball", 16, 24, 8, 0)
    (twice,) = GLIGENTextBoxApply().append(once, clip, gligen, "a tree", 64, 64, 0, 16)
    assert "gligen" not in positive[0][1] and torch.equal(once[0][0], positive[0][0])
    kind, model, boxes = twice[0][1]["gligen"]
    assert kind == "position" and model is gligen
    assert [b[1:] for b in boxes] == [(3, 2, 0, 1), (8, 8, 2, 0)]      # (h, w, y, x) / 8
    _, pooled = clip.encode_from_tokens(clip.tokenize("a red ball"), return_pooled=True)
    assert torch.equal(boxes[0][0], pooled)


def test_zero_gates_leave_the_image_exactly_unchanged(folders, tiny_models):
    model, clip = tiny_models[0], tiny_models[1]
    positive, negative = _texts(clip)
    (zero,) = GLIGENLoader().load_gligen("zero_gates.safetensors")
    (random_gates,) = GLIGENLoader().load_gligen("random.safetensors")
    (boxed_zero,) = GLIGENTextBoxApply().append(positive, clip, zero, "a red ball", 16, 24, 8, 0)
    (boxed,) = GLIGENTextBoxApply().append(positive, clip, random_gates, "a red ball", 16, 24, 8, 0)
    plain = _sample(model, positive, negative)
    assert torch.equal(_sample(model, boxed_zero, negative), plain)
    assert not torch.allclose(_sample(model, boxed, negative), plain, atol=1e-4)
    # With guidance the negative (no boxes) runs without the gated layers, in its own UNet call
    # (so batch-size rounding differs: equal to float32 precision, not bit for bit).
    guided = _sample(model, positive, negative, cfg=4.0)
    assert torch.allclose(_sample(model, boxed_zero, negative, cfg=4.0), guided, rtol=1e-5, atol=1e-4)


def test_gated_attention_equals_diffusers_called_directly(folders, tiny_models):
    model, clip = tiny_models[0], tiny_models[1]
    unet = model.unet
    _, position_net, fusers = _random_gligen(unet, gates=True)
    positive, negative = _texts(clip)
    (gligen,) = GLIGENLoader().load_gligen("random.safetensors")
    (boxed,) = GLIGENTextBoxApply().append(positive, clip, gligen, "a red ball", 16, 24, 8, 0)
    seen: dict = {}
    handles = []
    for block, site in _blocks(unet):
        key = (site.block, site.block_index)
        handles.append(block.register_forward_pre_hook(
            lambda _m, args, kwargs, key=key: seen.setdefault(key, {}).update(x=args[0] if args else
                                                                               kwargs["hidden_states"]),
            with_kwargs=True))
        handles.append(block.attn1.register_forward_hook(
            lambda _m, _args, out, key=key: seen[key].update(attn=out)))
        handles.append(block.norm2.register_forward_pre_hook(
            lambda _m, args, key=key: seen[key].update(after=args[0])))
    try:
        _sample(model, boxed, negative, steps=1)
    finally:
        for h in handles:
            h.remove()
    # The grounding tokens by hand: the box 8..24 x 0..24 px on a 32 x 32 px image (4 x 4
    # latent pixels) as corner fractions, in slot 0 of 30; the other slots empty.
    _, pooled = clip.encode_from_tokens(clip.tokenize("a red ball"), return_pooled=True)
    boxes, masks, phrases = torch.zeros(1, 30, 4), torch.zeros(1, 30), torch.zeros(1, 30, PHRASE_DIM)
    boxes[0, 0] = torch.tensor([1 / 4, 0.0, 3 / 4, 3 / 4])
    masks[0, 0] = 1.0
    phrases[0, 0] = pooled[0]
    with torch.no_grad():
        objs = position_net(boxes, masks, positive_embeddings=phrases)
        assert len(seen) == len(fusers) == 4
        for key, fuser in fusers.items():
            x, attn, after = seen[key]["x"], seen[key]["attn"], seen[key]["after"]
            expected = fuser(x + attn, objs.expand(x.shape[0], -1, -1))
            assert torch.allclose(after, expected, atol=1e-5), key
            assert not torch.allclose(after, x + attn, atol=1e-4), key


def test_a_clip_of_another_width_is_refused_at_the_node(folders, tiny_models):
    (gligen,) = GLIGENLoader().load_gligen("random.safetensors")

    class WideClip:
        def tokenize(self, text):
            return text

        def encode_from_tokens(self, tokens, return_pooled=False):
            return torch.zeros(1, 77, 64), torch.zeros(1, 64)

    with pytest.raises(ValueError, match="32-wide phrase embeddings"):
        GLIGENTextBoxApply().append(_texts(tiny_models[1])[0], WideClip(), gligen, "x", 64, 64, 0, 0)


# --- over HTTP ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint, gligen_dir):
    base = tmp_path_factory.mktemp("gligen-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / "tiny_sd1.safetensors")
    shutil.copytree(gligen_dir, base / "models" / "gligen")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(gligen_name: str | None) -> dict:
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_sd1.safetensors"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a meadow", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "sample": {"class_type": "KSampler", "inputs": {
            "seed": 3, "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0]}},
        "save": {"class_type": "SaveLatent", "inputs": {"samples": ["sample", 0], "filename_prefix": "gligen"}},
    }
    if gligen_name:
        graph["g"] = {"class_type": "GLIGENLoader", "inputs": {"gligen_name": gligen_name}}
        graph["box"] = {"class_type": "GLIGENTextBoxApply", "inputs": {
            "conditioning_to": ["pos", 0], "clip": ["ckpt", 1], "gligen_textbox_model": ["g", 0],
            "text": "a red ball", "width": 16, "height": 24, "x": 8, "y": 0}}
        graph["sample"]["inputs"]["positive"] = ["box", 0]
    return graph


def _run(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    return server.wait_for_job(r.json()["prompt_id"], timeout=120)


def _latent_of(server: Server, entry: dict) -> torch.Tensor:
    from safetensors.torch import load

    saved = entry["outputs"]["save"]["latents"][0]
    r = server.get(f"/api/view?filename={saved['filename']}&subfolder={saved['subfolder']}&type={saved['type']}")
    assert r.status == 200
    return load(r.body)["latent_tensor"]


def test_http_boxes_reach_the_sampler(server):
    info = server.get("/api/object_info/GLIGENLoader").json()["GLIGENLoader"]
    assert "random.safetensors" in info["input"]["required"]["gligen_name"][0]
    results = {}
    for name in (None, "zero_gates.safetensors", "random.safetensors"):
        entry = _run(server, _graph(name))
        assert entry["status"]["status_str"] == "success", entry["status"]
        results[name] = _latent_of(server, entry)
    assert torch.allclose(results["zero_gates.safetensors"], results[None], rtol=1e-5, atol=1e-4)
    assert not torch.allclose(results["random.safetensors"], results[None], atol=1e-4)


def test_http_a_file_that_is_not_gligen_is_a_node_error(server):
    entry = _run(server, _graph("not_gligen.safetensors"))
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "g" and "not a GLIGEN text-box model" in error["exception_message"]
