"""ComfyUI's ``comfy.cli_args``: the ``args`` namespace packs read, with ComfyUI's defaults.

``build_registry`` copies the server's configuration into it (``apply_config``).
"""

from __future__ import annotations

import argparse
import enum


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"

    @classmethod
    def from_string(cls, value: str):
        """The member whose value is ``value``, or None."""
        return next((member for member in cls if member.value == value), None)


class PerformanceFeature(enum.Enum):
    Fp16Accumulation = "fp16_accumulation"
    Fp8MatrixMultiplication = "fp8_matrix_mult"
    CublasOps = "cublas_ops"
    AutoTune = "autotune"


LOG_LEVELS = ("DEBUG", "DETAIL", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_VERSION_STRING = "comfyanonymous/ComfyUI@latest"


def get_console_log_level(outputs) -> str:
    """The most verbose console level among ``(level, path)`` outputs (INFO without any)."""
    levels = [level for level, path in outputs if path is None]
    return min(levels, key=LOG_LEVELS.index, default="INFO")


def get_file_log_outputs(outputs) -> list:
    return [(level, path) for level, path in outputs if path is not None]


def _defaults() -> dict:
    return {
        "listen": "127.0.0.1", "port": 8188, "tls_keyfile": None, "tls_certfile": None,
        "enable_cors_header": None, "max_upload_size": 100, "base_directory": None,
        "extra_model_paths_config": None, "output_directory": None, "temp_directory": None,
        "input_directory": None, "user_directory": None, "auto_launch": False,
        "disable_auto_launch": False, "cuda_device": None, "default_device": None,
        "cuda_malloc": False, "disable_cuda_malloc": True,
        "force_fp32": False, "force_fp16": False, "fp32_unet": False, "fp64_unet": False,
        "bf16_unet": False, "fp16_unet": False, "fp8_e4m3fn_unet": False, "fp8_e5m2_unet": False,
        "fp16_vae": False, "fp32_vae": False, "bf16_vae": False, "cpu_vae": False,
        "fp8_e4m3fn_text_enc": False, "fp8_e5m2_text_enc": False, "fp16_text_enc": False,
        "fp32_text_enc": False, "bf16_text_enc": False, "force_channels_last": False,
        "directml": None, "oneapi_device_selector": None, "disable_ipex_optimize": False,
        "supports_fp8_compute": False, "preview_method": LatentPreviewMethod.NoPreviews,
        "preview_size": 512, "cache_classic": False, "cache_lru": 0, "cache_none": False,
        "use_split_cross_attention": False, "use_quad_cross_attention": False,
        "use_pytorch_cross_attention": False, "use_sage_attention": False,
        "use_flash_attention": False, "disable_xformers": False,
        "force_upcast_attention": False, "dont_upcast_attention": False,
        "gpu_only": False, "highvram": False, "normalvram": False, "lowvram": False,
        "novram": False, "cpu": False, "reserve_vram": None, "async_offload": False,
        "default_hashing_function": "sha256", "disable_smart_memory": False,
        "deterministic": False, "fast": set(), "mmap_torch_files": False, "disable_mmap": False,
        "dont_print_server": False, "quick_test_for_ci": False, "windows_standalone_build": False,
        "disable_metadata": False, "disable_all_custom_nodes": False,
        "whitelist_custom_nodes": [], "disable_api_nodes": False, "multi_user": False,
        "verbose": "INFO", "log_stdout": False, "front_end_version": "comfyanonymous/ComfyUI@latest",
        "front_end_root": None, "enable_compress_response_body": False,
        "comfy_api_base": "https://api.comfy.org", "database_url": None,
        # Flags of recent ComfyUI versions (memory management, manager, assets, features).
        "date_based_output": False, "date_output_format": "%Y-%m-%d", "fp8_e8m0fnu_unet": False,
        "fp16_intermediates": False, "enable_triton_backend": False, "disable_triton_backend": False,
        "cache_ram": [], "high_ram": False, "use_ck_attention": False, "enable_manager": False,
        "disable_manager_ui": False, "enable_manager_legacy_ui": False, "vram_headroom": 0,
        "disable_nvml_pressure": False, "disable_async_offload": False,
        "disable_dynamic_vram": False, "enable_dynamic_vram": False, "fast_disk": False,
        "disable_fast_disk": False, "disable_cuda_graphs": False, "disable_comfy_compiler": False,
        "assert_graph_breaks": False, "force_non_blocking": False, "debug_hang": False,
        "disable_pinned_memory": False, "disabled_nodes_config": None,
        "disable_partner_nodes": False, "offline": False, "models_directory": None,
        "disable_assets": False, "enable_assets": False, "enable_asset_hashing": False,
        "feature_flag": [], "list_feature_flags": False,
    }


args = argparse.Namespace(**_defaults())


def apply_config(config) -> None:
    """Reflect the server's Config in ``args`` so packs reading flags see the real values."""
    args.listen = ",".join(config.listen)
    args.port = config.port
    args.base_directory = str(config.base_directory)
    args.output_directory = str(config.output_directory) if config.output_directory else None
    args.input_directory = str(config.input_directory) if config.input_directory else None
    args.temp_directory = str(config.temp_directory) if config.temp_directory else None
    args.user_directory = str(config.user_directory) if config.user_directory else None
    args.extra_model_paths_config = [[str(p) for p in config.extra_model_paths_config]] or None
    args.cpu = config.cpu
    args.cache_classic = config.cache_mode == "classic"
    args.cache_lru = config.cache_lru_size if config.cache_mode == "lru" else 0
    args.cache_none = config.cache_mode == "none"
    args.multi_user = config.multi_user
    args.enable_cors_header = config.enable_cors_header
    args.max_upload_size = config.max_upload_size_mb
    args.front_end_root = str(config.front_end_root) if config.front_end_root else None
    args.verbose = config.verbose
    args.disable_all_custom_nodes = config.disable_all_custom_nodes
    args.disable_metadata = config.disable_metadata
    args.preview_size = config.preview_size
    flags = set(getattr(config, "precision_flags", ()))
    for name in list(vars(args)):
        if name.startswith(("fp8_", "fp16_", "fp32_", "fp64_", "bf16_", "force_fp")):
            setattr(args, name, name in flags)
    args.database_url = config.database_url


def enables_dynamic_vram() -> bool:
    """opencomfy moves whole models between devices; it has no dynamic VRAM mode."""
    return False
