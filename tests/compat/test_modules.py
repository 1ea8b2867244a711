"""The compat modules as custom nodes see them: names, identities and behaviour."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from opencomfy import compat

ALIASES = ["nodes", "folder_paths", "server", "node_helpers", "latent_preview", "comfy",
           "comfy.utils", "comfy.model_management", "comfy.cli_args", "comfy.comfy_types",
           "comfy.comfy_types.node_typing", "comfy_execution.graph",
           "comfy_execution.graph_utils", "comfy_execution.utils", "comfy_execution.progress",
           "comfy_api.latest", "comfy_api.latest.io", "comfy_api.latest.ui", "comfy_api.v0_0_2",
           "comfy_api.latest._io", "comfy_api.latest._ui", "comfy_api.input", "comfy_api.util",
           "comfy.samplers", "comfy_execution"]


@pytest.fixture(autouse=True, scope="module")
def _installed():
    compat.install()
    compat.install()  # idempotent


@pytest.mark.parametrize("name", ALIASES)
def test_alias_and_real_module_are_one_object(name):
    alias = importlib.import_module(name)
    real = importlib.import_module("opencomfy.compat." + name)
    assert alias is real
    assert sys.modules[name] is real


def test_from_imports_and_attribute_access_agree():
    import comfy
    import comfy.utils
    from comfy.utils import ProgressBar

    assert comfy.utils.ProgressBar is ProgressBar
    assert comfy.utils is sys.modules["opencomfy.compat.comfy.utils"]
    from comfy.utils import common_upscale
    from opencomfy.nodes.image_scaling import common_upscale as ours

    assert common_upscale is ours


def test_modules_we_do_not_provide_fail_like_missing_modules():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("comfy.not_a_comfy_module")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("comfy_api.not_a_version")


def test_engine_pieces_are_reexported_not_reimplemented():
    from comfy_execution.graph import DynamicPrompt, ExecutionBlocker
    from comfy_execution.graph_utils import GraphBuilder, is_link

    import opencomfy.engine.dynamic_prompt as dp
    import opencomfy.engine.graph_utils as gu

    assert ExecutionBlocker is gu.ExecutionBlocker and GraphBuilder is gu.GraphBuilder
    assert is_link is gu.is_link and DynamicPrompt is dp.DynamicPrompt
    from comfy.model_management import InterruptProcessingException

    from opencomfy.engine.progress import Interrupted

    assert InterruptProcessingException is Interrupted


def test_io_any_and_type_sets_match_like_comfyui():
    from comfy.comfy_types import IO

    assert not ("IMAGE" != IO.ANY) and not (IO.ANY != "LATENT")
    assert not ("INT" != IO.NUMBER) and not ("FLOAT" != IO.NUMBER)
    assert "IMAGE" != IO.NUMBER
    assert not ("STRING" != IO.PRIMITIVE)
    assert IO.IMAGE == "IMAGE" and {IO.IMAGE: 1}["IMAGE"] == 1
    assert IO.NUMBER != 5


def test_check_lazy_mixin_requests_unevaluated_inputs():
    from comfy.comfy_types.node_typing import CheckLazyMixin

    assert CheckLazyMixin().check_lazy_status(a=None, b=1, c=None) == ["a", "c"]


def test_cli_args_have_comfyuis_defaults_and_follow_the_config(tmp_path):
    from comfy.cli_args import LatentPreviewMethod, args

    from opencomfy.compat.comfy.cli_args import apply_config
    from opencomfy.config import Config

    assert args.preview_method == LatentPreviewMethod.NoPreviews
    assert args.default_hashing_function == "sha256"
    snapshot = vars(args).copy()
    try:
        apply_config(Config(base_directory=tmp_path, port=9999, cpu=True, preview_size=256,
                            disable_metadata=True))
        assert args.port == 9999 and args.cpu is True and args.preview_size == 256
        assert args.disable_metadata is True and args.base_directory == str(tmp_path)
    finally:
        vars(args).clear()
        vars(args).update(snapshot)


def test_model_management_outside_a_run():
    import comfy.model_management as mm

    assert mm.get_torch_device().type in ("cpu", "cuda")
    assert mm.intermediate_device() == torch.device("cpu")
    assert mm.processing_interrupted() is False
    mm.throw_exception_if_processing_interrupted()  # no run: nothing to raise
    assert mm.get_free_memory(torch.device("cpu")) > 0
    free, torch_free = mm.get_free_memory(torch.device("cpu"), torch_free_too=True)
    assert free > 0 and torch_free >= 0
    mm.soft_empty_cache()
    mm.unload_all_models()
    assert issubclass(mm.OOM_EXCEPTION, Exception)


def test_cpu_flag_forces_the_cpu(monkeypatch):
    import comfy.model_management as mm
    from comfy.cli_args import args

    monkeypatch.setattr(args, "cpu", True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert mm.get_torch_device() == torch.device("cpu")


def test_interrupt_from_outside_a_run_goes_to_the_host():
    import comfy.model_management as mm
    import nodes

    calls = []
    mm.attach_interrupt(calls.append)
    try:
        nodes.interrupt_processing()
        mm.interrupt_current_processing(False)
    finally:
        mm.attach_interrupt(None)
    assert calls == [True, False]


def test_progress_bar_hooks():
    import comfy.utils

    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: seen.append((v, t, node_id)))
    try:
        bar = comfy.utils.ProgressBar(4, node_id="7")
        bar.update(1)
        bar.update(10)  # clamped to the total
        bar.update_absolute(2, total=8)
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
    assert seen == [(1, 4, "7"), (4, 4, "7"), (2, 8, "7")]
    comfy.utils.ProgressBar(3).update(1)  # default hook outside a run: no error


def test_safetensors_round_trip_and_header(tmp_path):
    import comfy.utils

    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "b": torch.tensor([1, 2, 3], dtype=torch.int64),
               "c": torch.tensor(2.5, dtype=torch.bfloat16),
               "empty": torch.zeros(0, 4)}
    path = tmp_path / "w.safetensors"
    comfy.utils.save_torch_file(tensors, path, metadata={"format": "pt"})
    loaded, metadata = comfy.utils.load_torch_file(str(path), return_metadata=True)
    assert metadata == {"format": "pt"}
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
    header = comfy.utils.safetensors_header(str(path))
    assert b'"a"' in header and b'"data_offsets"' in header
    assert comfy.utils.safetensors_header(str(path), max_size=4) is None


def test_pickled_checkpoints_need_an_opt_in(tmp_path, monkeypatch):
    import comfy.utils

    path = tmp_path / "w.ckpt"
    torch.save({"state_dict": {"x": torch.ones(2)}}, path)
    monkeypatch.delenv(comfy.utils.ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(ValueError, match="safetensors"):
        comfy.utils.load_torch_file(str(path))
    monkeypatch.setenv(comfy.utils.ALLOW_PICKLE_ENV, "1")
    assert torch.equal(comfy.utils.load_torch_file(str(path))["x"], torch.ones(2))


def test_corrupt_safetensors_is_a_clean_error(tmp_path):
    import comfy.utils

    from opencomfy.compat.safetensors_file import SafetensorsError

    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(SafetensorsError):
        comfy.utils.load_torch_file(str(path))


def test_batch_helpers():
    import comfy.utils

    t = torch.arange(3).reshape(3, 1)
    assert comfy.utils.repeat_to_batch_size(t, 5).flatten().tolist() == [0, 1, 2, 0, 1]
    assert comfy.utils.repeat_to_batch_size(t, 2).flatten().tolist() == [0, 1]
    assert comfy.utils.resize_to_batch_size(t, 5).flatten().tolist() == [0, 0, 1, 2, 2]


def test_node_helpers():
    import node_helpers

    cond = [[torch.zeros(1), {"strength": 1.0}]]
    out = node_helpers.conditioning_set_values(cond, {"strength": 0.5}, append=True)
    assert out[0][1]["strength"] == 1.5 and cond[0][1]["strength"] == 1.0
    out = node_helpers.conditioning_set_values(cond, {"mask": "m"})
    assert out[0][1] == {"strength": 1.0, "mask": "m"}
    assert node_helpers.hasher()().name == "sha256"
    assert node_helpers.pillow(lambda x: x + 1, 1) == 2


def test_latent_preview_callback_reports_steps():
    import comfy.utils
    import latent_preview

    seen = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: seen.append((v, t)))
    try:
        x0_out = {}
        callback = latent_preview.prepare_callback(None, 3, x0_out)
        for step in range(3):
            callback(step, "x0", "x", 3)
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
    assert seen == [(1, 3), (2, 3), (3, 3)] and x0_out["x0"] == "x0"
    assert latent_preview.get_previewer() is None


def test_prompt_server_outside_a_run_uses_the_host_callback():
    from server import BinaryEventTypes, PromptServer

    srv = PromptServer()
    sent, binary = [], []
    srv.attach(send=lambda e, d, sid: sent.append((e, d, sid)),
               send_binary=lambda e, d, sid: binary.append((e, d, sid)))
    srv.send_sync("my.event", {"x": 1})
    srv.send_sync("my.event", {"x": 2}, "client-1")
    srv.send_progress_text("working", "5")
    assert sent == [("my.event", {"x": 1}, None), ("my.event", {"x": 2}, "client-1")]
    assert binary == [(BinaryEventTypes.TEXT, ("5", "working"), None)]
    assert PromptServer.instance is srv
    assert srv.client_id is None and srv.last_node_id is None
    srv.client_id = "abc"
    assert srv.client_id == "abc"
    assert "custom_nodes_from_web" in srv.supports


def test_on_prompt_handlers_rewrite_the_body():
    from server import PromptServer

    srv = PromptServer()
    srv.add_on_prompt_handler(lambda body: {**body, "seen": True})
    srv.add_on_prompt_handler(lambda body: 1 / 0)  # a failing handler is skipped
    assert srv.trigger_on_prompt({"prompt": {}}) == {"prompt": {}, "seen": True}


def test_comfy_api_versions_share_the_v3_api():
    import comfy_api.latest as latest
    import comfy_api.v0_0_2 as v2

    assert v2.io is latest.io and v2.ComfyExtension is latest.ComfyExtension
    assert latest.IO is latest.io and latest.UI is latest.ui


def test_sampler_names_are_there_for_combo_lists():
    import comfy.samplers

    assert "euler" in comfy.samplers.KSampler.SAMPLERS and "ddim" in comfy.samplers.SAMPLER_NAMES
    assert "karras" in comfy.samplers.KSampler.SCHEDULERS
    with pytest.raises(TypeError):  # a real KSampler: it needs a model and steps
        comfy.samplers.KSampler()


def test_comfy_extras_modules_hold_the_core_classes_comfyui_keeps_there():
    from comfy_extras.nodes_mask import ImageCompositeMasked, SolidMask

    assert SolidMask.__module__.startswith("opencomfy.nodes.")
    assert "ImageCompositeMasked" in sys.modules["comfy_extras.nodes_mask"].NODE_CLASS_MAPPINGS
    assert ImageCompositeMasked.FUNCTION
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("comfy_extras.nodes_that_do_not_exist")


def test_model_modules_are_placeholders_that_fail_only_when_used():
    import comfy
    import comfy.ldm.modules.attention as attention
    import comfy.sd
    from comfy.model_patcher import ModelPatcher

    from opencomfy.compat.model_placeholders import ModelBackendUnavailable

    class MyPatcher(ModelPatcher):  # subclassing at import time works
        pass

    assert not isinstance(object(), comfy.sd.VAE)
    assert comfy.model_base is sys.modules["comfy.model_base"]  # `import comfy` then attribute
    with pytest.raises(ValueError, match="comfy.sd.VAE needs sd="):  # real: built from weights
        comfy.sd.VAE()
    # comfy.model_patcher is real (our MODEL class): a subclass needs a model to wrap.
    with pytest.raises(TypeError):
        MyPatcher()
    with pytest.raises(ModelBackendUnavailable, match="optimized_attention"):
        attention.optimized_attention(1, 2, 3)
    assert comfy.utils.ProgressBar is sys.modules["comfy.utils"].ProgressBar
    with pytest.raises(AttributeError):
        comfy.not_a_module


def test_model_nodes_of_nodes_py_are_placeholders_unless_the_core_has_them():
    import nodes
    from nodes import common_ksampler

    from opencomfy.compat.model_placeholders import ModelBackendUnavailable
    from opencomfy.compat.nodes import _MODEL_NAMES, _core_class

    assert common_ksampler is nodes.common_ksampler  # real: what KSampler runs
    for name in sorted(_MODEL_NAMES - {"common_ksampler"}):
        cls = getattr(nodes, name)
        core = _core_class(name)
        if core is not None:  # the diffusion extra provides it: the real class wins
            assert cls is core
            continue

        class Mine(cls):  # subclassing a placeholder at import time works
            pass

        with pytest.raises(ModelBackendUnavailable):
            Mine()
    assert nodes.EmptyImage.FUNCTION  # a core class we have is the real one
    with pytest.raises(AttributeError):
        nodes.NotAComfyNode
