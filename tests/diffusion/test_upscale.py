"""Upscale models: UpscaleModelLoader and ImageUpscaleWithModel over spandrel.

Tiny random ESRGAN (RRDBNet) and Real-ESRGAN compact (SRVGGNetCompact) models are built with
spandrel's own architecture classes and saved as safetensors; the nodes' output is compared with
spandrel's model called directly. One server serves the HTTP tests of this module.
"""

from __future__ import annotations

import io
import os

import numpy
import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from tests.harness import Server

spandrel = pytest.importorskip("spandrel")

from opencomfy.diffusion.upscale import (get_tiled_scale_steps, load_upscale_model,  # noqa: E402
                                         tiled_scale, upscale_image)
from opencomfy.nodes.upscale_model import ImageUpscaleWithModel, UpscaleModelLoader  # noqa: E402
from opencomfy.weights import PickleRefused  # noqa: E402


def _esrgan():
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    return ESRGAN(num_filters=8, num_blocks=1, scale=4)


def _compact():
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(1)
    return Compact(num_feat=8, num_conv=2, upscale=2)


def _write_models(folder) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    for name, module in (("esrgan_x4", _esrgan()), ("compact_x2", _compact())):
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(folder / f"{name}.safetensors"))
    torch.save(_compact().state_dict(), str(folder / "compact_x2.pth"))
    (folder / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    save_file({"some.weight": torch.zeros(3, 3)}, str(folder / "not_an_upscaler.safetensors"))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upscale") / "models" / "upscale_models"
    _write_models(folder)
    return folder


@pytest.fixture
def upscale_folder(models_dir, monkeypatch):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "upscale_models",
                        ([str(models_dir)], folder_paths.supported_pt_extensions))
    folder_paths.filename_list_cache.pop("upscale_models", None)
    yield models_dir
    folder_paths.filename_list_cache.pop("upscale_models", None)


def _direct(name: str, image: torch.Tensor, folder) -> torch.Tensor:
    """spandrel's own loader and model call, one image at a time."""
    from safetensors.torch import load_file

    descriptor = spandrel.ModelLoader().load_from_state_dict(load_file(str(folder / name))).eval()
    return torch.cat([descriptor(img[None].movedim(-1, 1)) for img in image]).movedim(1, -1)


def test_loader_lists_the_files_and_detects_the_architectures(upscale_folder):
    options = UpscaleModelLoader.INPUT_TYPES()["required"]["model_name"][1]["options"]
    assert {"esrgan_x4.safetensors", "compact_x2.safetensors"} <= set(options)
    (esrgan,) = UpscaleModelLoader().execute("esrgan_x4.safetensors")
    (compact,) = UpscaleModelLoader().execute("compact_x2.safetensors")
    assert isinstance(esrgan, spandrel.ImageModelDescriptor) and esrgan.scale == 4
    assert esrgan.architecture.name == "ESRGAN"
    assert compact.scale == 2 and "Compact" in compact.architecture.name


@pytest.mark.parametrize("name,scale", [("esrgan_x4.safetensors", 4), ("compact_x2.safetensors", 2)])
def test_upscaled_image_matches_spandrel_called_directly(upscale_folder, name, scale):
    image = torch.rand(2, 20, 28, 3)
    (model,) = UpscaleModelLoader().execute(name)
    (out,) = ImageUpscaleWithModel().execute(model, image)
    assert out.shape == (2, 20 * scale, 28 * scale, 3)
    assert torch.allclose(out, _direct(name, image, upscale_folder), atol=1e-5)


def test_alpha_channel_is_dropped(upscale_folder):
    (model,) = UpscaleModelLoader().execute("compact_x2.safetensors")
    rgba = torch.rand(1, 10, 12, 4)
    (out,) = ImageUpscaleWithModel().upscale(model, rgba)
    assert torch.allclose(out, _direct("compact_x2.safetensors", rgba[..., :3], upscale_folder), atol=1e-5)


def test_tiled_result_is_close_to_the_untiled_one(upscale_folder):
    (model,) = UpscaleModelLoader().execute("compact_x2.safetensors")
    image = torch.rand(1, 48, 40, 3)
    whole = upscale_image(model, image)                       # fits in one 512 tile
    tiled = upscale_image(model, image, tile=24, overlap=8)   # 3 x 2 overlapping tiles
    assert tiled.shape == whole.shape == (1, 96, 80, 3)
    assert (tiled - whole).abs().mean() < 2e-3
    assert (tiled - whole).abs().max() < 0.1


def test_tiling_is_exact_for_a_pointwise_upscale():
    """Tile positions and the feathered blend reproduce the untiled result exactly."""
    x = torch.rand(2, 3, 37, 50)

    def nearest(t):
        return torch.nn.functional.interpolate(t, scale_factor=3, mode="nearest")

    ticks = []

    class Bar:
        def update(self, n):
            ticks.append(n)

    out = tiled_scale(x, nearest, tile_x=16, tile_y=16, overlap=4, upscale_amount=3, pbar=Bar())
    assert torch.allclose(out, nearest(x), atol=1e-6)
    assert len(ticks) == 2 * get_tiled_scale_steps(50, 37, 16, 16, 4)


def test_out_of_memory_halves_the_tile(upscale_folder, monkeypatch):
    from opencomfy.diffusion import upscale

    (model,) = UpscaleModelLoader().execute("compact_x2.safetensors")
    tiles = []
    real = upscale.tiled_scale

    def flaky(x, fn, tile_x, **kw):
        tiles.append(tile_x)
        if tile_x > 256:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real(x, fn, tile_x=tile_x, **kw)

    monkeypatch.setattr(upscale, "tiled_scale", flaky)
    out = upscale_image(model, torch.rand(1, 8, 8, 3))
    assert tiles == [512, 256] and out.shape == (1, 16, 16, 3)


def test_pickle_files_need_the_opt_in(upscale_folder, monkeypatch):
    path = str(upscale_folder / "compact_x2.pth")
    monkeypatch.delenv("OPENCOMFY_ALLOW_PICKLE", raising=False)
    with pytest.raises(PickleRefused, match="allow-pickle-models"):
        load_upscale_model(path)
    monkeypatch.setenv("OPENCOMFY_ALLOW_PICKLE", "1")
    assert load_upscale_model(path).scale == 2


@pytest.mark.parametrize("name,message", [("broken.safetensors", "not a readable safetensors"),
                                          ("not_an_upscaler.safetensors", "not an upscale model")])
def test_unusable_files_give_a_clear_error(upscale_folder, name, message):
    with pytest.raises(ValueError, match=message):
        load_upscale_model(os.path.join(upscale_folder, name))


def test_compat_modules_expose_the_nodes_and_the_loader(upscale_folder):
    from opencomfy.compat import aliases

    aliases.install()
    import comfy_extras.nodes_upscale_model as nodes_upscale_model
    from comfy_extras.chainner_models.model_loading import load_state_dict
    from safetensors.torch import load_file

    assert nodes_upscale_model.ImageUpscaleWithModel is ImageUpscaleWithModel
    assert nodes_upscale_model.NODE_CLASS_MAPPINGS["UpscaleModelLoader"] is UpscaleModelLoader
    descriptor = load_state_dict(load_file(str(upscale_folder / "esrgan_x4.safetensors")))
    assert descriptor.scale == 4


# --- over HTTP ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("upscale-server")
    _write_models(base / "models" / "upscale_models")
    srv = Server(base_dir=base).start()
    yield srv
    srv.stop()


def _graph(model_name: str) -> dict:
    return {
        "image": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 1,
                                                         "color": 0x3366CC}},
        "loader": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model_name}},
        "up": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["loader", 0],
                                                                 "image": ["image", 0]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["up", 0], "filename_prefix": "up"}},
    }


def _run(server: Server, graph: dict) -> dict:
    r = server.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    return server.wait_for_job(r.json()["prompt_id"], timeout=120)


def test_http_graph_upscales_an_image(server, tmp_path):
    entry = _run(server, _graph("esrgan_x4.safetensors"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = entry["outputs"]["save"]["images"][0]
    r = server.get(f"/api/view?filename={saved['filename']}&subfolder={saved['subfolder']}&type=output")
    png = Image.open(io.BytesIO(r.body)).convert("RGB")
    assert png.size == (96, 64)
    from opencomfy.nodes.image_batch import EmptyImage

    (image,) = EmptyImage().generate(24, 16, 1, 0x3366CC)
    folder = tmp_path / "m"
    _write_models(folder)
    expected = (_direct("esrgan_x4.safetensors", image, folder)[0] * 255).round()
    got = torch.from_numpy(numpy.asarray(png)).float()
    assert (got - expected).abs().max() <= 1


def test_http_broken_file_is_a_node_error(server):
    info = server.get("/api/object_info/UpscaleModelLoader").json()["UpscaleModelLoader"]
    assert "broken.safetensors" in info["input"]["required"]["model_name"][1]["options"]
    entry = _run(server, _graph("broken.safetensors"))
    assert entry["status"]["status_str"] == "error"
    error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
    assert error["node_id"] == "loader" and "broken.safetensors" in error["exception_message"]
