"""Latent previews: latent2rgb and TAESD previewers, the method choice (flag, per-prompt
override, set_preview_method, auto), the step callback's throttle and the JPEG it hands to the
progress hook."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args
from opencomfy.diffusion import latent_formats, previews
from opencomfy.diffusion.previews import LatentPreviewMethod


@pytest.fixture
def vae_approx(tmp_path, monkeypatch):
    folder = tmp_path / "vae_approx"
    folder.mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "vae_approx",
                        ([str(folder)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("vae_approx", None)
    yield folder
    folder_paths.filename_list_cache.pop("vae_approx", None)


@pytest.fixture
def server_method(monkeypatch):
    """Set ``--preview-method`` (ComfyUI's ``args.preview_method``) for one test."""
    def set_method(name: str) -> None:
        monkeypatch.setattr(cli_args.args, "preview_method", LatentPreviewMethod(name))
    return set_method


def tiny_autoencoder(latent_channels: int = 4, seed: int = 0):
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(latent_channels=latent_channels).eval()


def write_taesd_decoder(path, autoencoder) -> None:
    """The decoder of diffusers' AutoencoderTiny in TAESD's file layout (index 0 is the clamp)."""
    from safetensors.torch import save_file

    decoder = {}
    for key, value in autoencoder.state_dict().items():
        if key.startswith("decoder.layers."):
            index, _, rest = key[len("decoder.layers."):].partition(".")
            decoder[f"{int(index) + 1}.{rest}"] = value.contiguous()
    save_file(decoder, str(path))


def as_pixels(image_minus1_1: torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` in -1..1 -> uint8, the conversion every preview uses."""
    return ((image_minus1_1.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def pixels_of(image) -> torch.Tensor:
    import numpy

    return torch.from_numpy(numpy.array(image.convert("RGB")))


@pytest.mark.parametrize("fmt", [latent_formats.SD15(), latent_formats.SDXL(), latent_formats.Flux()])
def test_latent2rgb_is_the_factor_matrix_plus_bias(fmt):
    torch.manual_seed(1)
    x0 = torch.randn(2, fmt.latent_channels, 5, 7) * 2
    previewer = previews.get_previewer("cpu", fmt, method="latent2rgb")
    assert isinstance(previewer, previews.Latent2RGBPreviewer)
    image_format, image, size = previewer.decode_latent_to_preview_image("JPEG", x0)
    assert (image_format, image.size, size) == ("JPEG", (7, 5), 512)
    by_hand = x0[0].permute(1, 2, 0) @ torch.tensor(fmt.latent_rgb_factors)
    if fmt.latent_rgb_factors_bias is not None:
        by_hand = by_hand + torch.tensor(fmt.latent_rgb_factors_bias)
    assert torch.equal(pixels_of(image), as_pixels(by_hand))


def test_taesd_preview_is_autoencoder_tiny_decode(vae_approx):
    reference = tiny_autoencoder(4)
    write_taesd_decoder(vae_approx / "taesd_decoder.safetensors", reference)
    previewer = previews.get_previewer("cpu", latent_formats.SD15(), method="taesd")
    assert isinstance(previewer, previews.TAESDPreviewerImpl)
    torch.manual_seed(2)
    x0 = torch.randn(2, 4, 6, 5)
    _, image, _ = previewer.decode_latent_to_preview_image("JPEG", x0)
    with torch.no_grad():
        expected = reference.decode(x0[:1]).sample[0].permute(1, 2, 0)
    assert image.size == (40, 48)
    assert torch.equal(pixels_of(image), as_pixels(expected))


def test_taef1_decoder_takes_sixteen_channels(vae_approx):
    reference = tiny_autoencoder(16, seed=3)
    write_taesd_decoder(vae_approx / "taef1_decoder.safetensors", reference)
    previewer = previews.get_previewer("cpu", latent_formats.Flux(), method="taesd")
    x0 = torch.randn(1, 16, 4, 4)
    _, image, _ = previewer.decode_latent_to_preview_image("JPEG", x0)
    with torch.no_grad():
        expected = reference.decode(x0).sample[0].permute(1, 2, 0)
    assert torch.equal(pixels_of(image), as_pixels(expected))


def test_auto_is_latent2rgb_even_with_the_decoder_file(vae_approx):
    # taesd without its file falls back to latent2rgb (with a warning), as ComfyUI.
    assert isinstance(previews.get_previewer("cpu", latent_formats.SDXL(), method="taesd"),
                      previews.Latent2RGBPreviewer)
    write_taesd_decoder(vae_approx / "taesdxl_decoder.safetensors", tiny_autoencoder(4))
    folder_paths.filename_list_cache.pop("vae_approx", None)
    # Current ComfyUI maps auto to latent2rgb: TAESD only when asked for by name.
    assert isinstance(previews.get_previewer("cpu", latent_formats.SDXL(), method="auto"),
                      previews.Latent2RGBPreviewer)
    assert isinstance(previews.get_previewer("cpu", latent_formats.SDXL(), method="taesd"),
                      previews.TAESDPreviewerImpl)
    assert previews.get_previewer("cpu", latent_formats.SDXL(), method="none") is None
    assert previews.get_previewer("cpu", None, method="latent2rgb") is None


def test_the_decoder_file_is_read_once(vae_approx, monkeypatch):
    from opencomfy.diffusion import taesd

    write_taesd_decoder(vae_approx / "taesd_decoder.safetensors", tiny_autoencoder(4))
    first = previews.get_previewer("cpu", latent_formats.SD15(), method="taesd")
    monkeypatch.setattr(taesd, "read_part", lambda *a: pytest.fail("decoder file read again"))
    second = previews.get_previewer("cpu", latent_formats.SD15(), method="taesd")
    assert first.taesd is second.taesd


def test_unreadable_or_mismatched_decoder_falls_back_to_latent2rgb(vae_approx):
    (vae_approx / "taesd_decoder.safetensors").write_bytes(b"not a safetensors file")
    assert isinstance(previews.get_previewer("cpu", latent_formats.SD15(), method="taesd"),
                      previews.Latent2RGBPreviewer)
    write_taesd_decoder(vae_approx / "taesd3_decoder.safetensors", tiny_autoencoder(4))
    assert isinstance(previews.get_previewer("cpu", latent_formats.SD3(), method="taesd"),
                      previews.Latent2RGBPreviewer)


def test_latent_format_of_models(tiny_models):
    class Family:
        family = "sdxl"

    flux = latent_formats.Flux()

    class Patched:     # ComfyUI's shape: MODEL.model.latent_format, or an object patch
        model = type("Inner", (), {"latent_format": flux})()

        def get_model_object(self, name):
            return getattr(self.model, name)

    assert type(latent_formats.latent_format_of(Family())) is latent_formats.SDXL
    assert latent_formats.latent_format_of(Patched()) is flux
    assert type(latent_formats.latent_format_of(object())) is latent_formats.SD15
    # A loaded SD 1.x checkpoint previews with SD 1.x's factors and TAESD decoder.
    found = latent_formats.latent_format_of(tiny_models[0])
    assert found.taesd_decoder_name == "taesd_decoder"
    assert found.latent_rgb_factors == latent_formats.SD15().latent_rgb_factors
    patched = tiny_models[0].clone()
    patched.add_object_patch("latent_format", flux)
    assert latent_formats.latent_format_of(patched) is flux


# --- the method of a prompt and the step callback ------------------------------------------

class _Model:
    family = "sd1"


def _in_prompt(extra_data: dict):
    """Run the rest of a test as node "5" of a prompt; returns (sink, token)."""
    from opencomfy.engine.events import RecordingSink
    from opencomfy.engine.progress import NodeContext, RunState, enter_node

    sink = RecordingSink()
    run = RunState(prompt_id="p1", sink=sink, interrupt=None, extra_data=extra_data)
    return sink, enter_node(NodeContext(run, "5"))


@pytest.mark.parametrize("flag,extra,expected", [
    ("none", {}, "none"), ("latent2rgb", {}, "latent2rgb"),
    ("latent2rgb", {"preview_method": "default"}, "latent2rgb"),
    ("latent2rgb", {"preview_method": "none"}, "none"),
    ("none", {"preview_method": "taesd"}, "taesd"),
    ("auto", {"preview_method": "no such method"}, "auto"),
])
def test_prompt_override_beats_the_flag(server_method, flag, extra, expected):
    from opencomfy.engine.progress import leave_node

    server_method(flag)
    _, token = _in_prompt(extra)
    try:
        assert previews.preview_method() is LatentPreviewMethod(expected)
    finally:
        leave_node(token)


def test_set_preview_method_beats_the_flag_but_not_the_prompt(server_method):
    from opencomfy.engine.progress import leave_node

    server_method("none")
    previews.set_preview_method("latent2rgb")
    try:
        assert previews.preview_method() is LatentPreviewMethod.Latent2RGB
        _, token = _in_prompt({"preview_method": "none"})
        try:
            assert previews.preview_method() is LatentPreviewMethod.NoPreviews
        finally:
            leave_node(token)
        previews.set_preview_method("no such method")       # unknown: back to the flag
        assert previews.preview_method() is LatentPreviewMethod.NoPreviews
    finally:
        previews.set_preview_method(None)


def test_callback_sends_jpeg_previews_scaled_to_preview_size(server_method, monkeypatch):
    from opencomfy.engine.progress import leave_node

    server_method("latent2rgb")
    monkeypatch.setattr(cli_args.args, "preview_size", 16)
    sink, token = _in_prompt({})
    try:
        out: dict = {}
        callback = previews.prepare_callback(_Model(), 3, out)
        x0 = torch.randn(1, 4, 20, 40)
        for step in range(3):
            callback(step, x0, x0, 3)
    finally:
        leave_node(token)
    assert out["x0"] is x0
    assert [(p["value"], p["max"]) for p in sink.of_type("progress")] == [(1, 3), (2, 3), (3, 3)]
    assert sink.previews, "no preview sent"
    image_format, data, metadata = sink.previews[-1]
    assert image_format == "JPEG" and metadata["node_id"] == "5"
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("JPEG", (16, 8))


def test_no_previews_with_none_or_outside_a_prompt(server_method):
    from opencomfy.engine.progress import leave_node

    server_method("latent2rgb")
    callback = previews.prepare_callback(_Model(), 2)       # no prompt running: nothing to send
    callback(0, torch.randn(1, 4, 4, 4), None, 2)
    sink, token = _in_prompt({"preview_method": "none"})
    try:
        callback = previews.prepare_callback(_Model(), 2)
        for step in range(2):
            callback(step, torch.randn(1, 4, 4, 4), None, 2)
    finally:
        leave_node(token)
    assert len(sink.of_type("progress")) == 2 and sink.previews == []


def test_slow_previews_are_throttled_but_the_last_step_has_one(server_method, monkeypatch):
    import time

    from opencomfy.engine.progress import leave_node

    class Slow(previews.LatentPreviewer):
        def decode_latent_to_preview(self, x0):
            time.sleep(0.02)
            return Image.new("RGB", (4, 4))

    monkeypatch.setattr(previews, "get_previewer", lambda device, fmt: Slow())
    sink, token = _in_prompt({})
    try:
        callback = previews.prepare_callback(_Model(), 10)
        for step in range(10):
            callback(step, torch.zeros(1, 4, 2, 2), None, 10)
    finally:
        leave_node(token)
    # 10 fast steps: the first preview, then none for 3x its cost, then the last step's.
    assert 2 <= len(sink.previews) <= 3
    assert len(sink.of_type("progress")) == 10


def test_a_failing_previewer_never_fails_sampling(monkeypatch):
    from opencomfy.engine.progress import leave_node

    class Broken(previews.LatentPreviewer):
        calls = 0

        def decode_latent_to_preview(self, x0):
            Broken.calls += 1
            raise RuntimeError("boom")

    monkeypatch.setattr(previews, "get_previewer", lambda device, fmt: Broken())
    sink, token = _in_prompt({})
    try:
        callback = previews.prepare_callback(_Model(), 3)
        for step in range(3):
            callback(step, torch.zeros(1, 4, 2, 2), None, 3)
    finally:
        leave_node(token)
    assert Broken.calls == 1 and sink.previews == [] and len(sink.of_type("progress")) == 3


def test_preview_flags_reach_the_config():
    from opencomfy.cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve", "--preview-method", "taesd", "--preview-size", "256"])
    assert (config_from_args(args).preview_method, config_from_args(args).preview_size) == ("taesd", 256)
    assert config_from_args(build_parser().parse_args(["serve"])).preview_method == "none"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--preview-method", "fancy"])
