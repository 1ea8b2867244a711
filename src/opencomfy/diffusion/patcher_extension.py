"""Wrappers and callbacks around the sampling calls (ComfyUI's ``comfy.patcher_extension``).

A *wrapper* is ``fn(executor, *args, **kwargs)``: it runs code around one of the calls named in
:class:`WrappersMP` and calls ``executor(*args, **kwargs)`` to go on to the next wrapper (or, for
the last one, the wrapped function itself). ``executor.class_obj`` is the object whose method is
wrapped (the guider, the sampler, the model view). A *callback* is called at one of the moments
named in :class:`CallbacksMP` (a clone is made, sampling starts, ...).

Both live in nested dicts ``{kind: {key: [fn, ...]}}``, either on a MODEL (``model.wrappers``,
``model.callbacks``) or in ``model_options["transformer_options"]`` while a run samples: the guider
copies the MODEL's into its options, so every call below finds them in one place.
Pure Python: importable without torch (custom nodes import this module at load time).
"""

from __future__ import annotations

from typing import Any, Callable


class WrappersMP:
    """The calls that wrappers can surround (outermost first)."""

    OUTER_SAMPLE = "outer_sample"         # CFGGuider.outer_sample: the whole run
    PREPARE_SAMPLING = "prepare_sampling"
    SAMPLER_SAMPLE = "sampler_sample"     # SAMPLER.sample over the sigmas
    PREDICT_NOISE = "predict_noise"       # the guider's denoised prediction at one step
    CALC_COND_BATCH = "calc_cond_batch"   # the model evaluations of one step
    APPLY_MODEL = "apply_model"           # one batched model call (sigma in, denoised out)
    DIFFUSION_MODEL = "diffusion_model"   # the UNet forward itself (model space in and out)


class CallbacksMP:
    """The moments at which callbacks run."""

    ON_CLONE = "on_clone"                 # fn(original, clone)
    ON_LOAD = "on_load_after"             # fn(model, device_to, lowvram_memory, force_patch, full_load)
    ON_DETACH = "on_detach_after"         # fn(model, unpatch_all)
    ON_CLEANUP = "on_cleanup"             # fn(model)
    ON_PRE_RUN = "on_pre_run"             # fn(model)
    ON_PREPARE_STATE = "on_prepare_state"
    ON_APPLY_HOOKS = "on_apply_hooks"
    ON_REGISTER_ALL_HOOK_PATCHES = "on_register_all_hook_patches"
    ON_INJECT_MODEL = "on_inject_model"
    ON_EJECT_MODEL = "on_eject_model"


def _store(options: dict, section: str, is_model_options: bool) -> dict:
    if is_model_options:
        options = options.setdefault("transformer_options", {})
    return options.setdefault(section, {})


def add_wrapper_with_key(wrapper_type: str, key: str | None, wrapper: Callable,
                         transformer_options: dict, is_model_options: bool = False) -> None:
    """Register ``wrapper`` for ``wrapper_type`` under ``key`` in an options dict."""
    _store(transformer_options, "wrappers", is_model_options).setdefault(wrapper_type, {}) \
        .setdefault(key, []).append(wrapper)


def add_wrapper(wrapper_type: str, wrapper: Callable, transformer_options: dict,
                is_model_options: bool = False) -> None:
    add_wrapper_with_key(wrapper_type, None, wrapper, transformer_options, is_model_options)


def get_all_wrappers(wrapper_type: str, transformer_options: dict | None,
                     is_model_options: bool = False) -> list[Callable]:
    """Every wrapper of ``wrapper_type`` in an options dict, in registration order per key."""
    options = transformer_options or {}
    if is_model_options:
        options = options.get("transformer_options", {})
    by_key = options.get("wrappers", {}).get(wrapper_type, {})
    return [w for wrappers in by_key.values() for w in wrappers]


def add_callback_with_key(call_type: str, key: str | None, callback: Callable,
                          transformer_options: dict, is_model_options: bool = False) -> None:
    _store(transformer_options, "callbacks", is_model_options).setdefault(call_type, {}) \
        .setdefault(key, []).append(callback)


def add_callback(call_type: str, callback: Callable, transformer_options: dict,
                 is_model_options: bool = False) -> None:
    add_callback_with_key(call_type, None, callback, transformer_options, is_model_options)


def get_all_callbacks(call_type: str, transformer_options: dict | None,
                      is_model_options: bool = False) -> list[Callable]:
    options = transformer_options or {}
    if is_model_options:
        options = options.get("transformer_options", {})
    by_key = options.get("callbacks", {}).get(call_type, {})
    return [c for callbacks in by_key.values() for c in callbacks]


def copy_nested_dicts(value: Any) -> Any:
    """A copy of nested dicts and lists whose leaves (functions, tensors, objects) are shared."""
    if isinstance(value, dict):
        return {k: copy_nested_dicts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_nested_dicts(v) for v in value]
    return value


def merge_nested_dicts(dict1: dict, dict2: dict, copy_dict1: bool = True) -> dict:
    """``dict2`` merged into (a copy of) ``dict1``: dicts merge, lists concatenate, others replace."""
    merged = copy_nested_dicts(dict1) if copy_dict1 else dict1
    for key, value in dict2.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_nested_dicts(merged[key], value, copy_dict1=False)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = merged[key] + value
        else:
            merged[key] = value
    return merged


class WrapperExecutor:
    """Calls a chain of wrappers around ``original``; a wrapper receives the executor of the rest
    of the chain as its first argument and calls it to continue."""

    def __init__(self, original: Callable, class_obj: object, wrappers: list[Callable], idx: int):
        self.original = original
        self.class_obj = class_obj
        self.wrappers = list(wrappers)
        self.idx = idx
        self.is_last = idx == len(self.wrappers)

    def __call__(self, *args, **kwargs):
        """Continue with the next wrapper (or the wrapped function after the last one)."""
        return self._next().execute(*args, **kwargs)

    def execute(self, *args, **kwargs):
        """Start the chain here (what the caller of the wrapped function uses)."""
        if self.is_last:
            return self.original(*args, **kwargs)
        return self.wrappers[self.idx](self, *args, **kwargs)

    def _next(self) -> "WrapperExecutor":
        if self.idx + 1 > len(self.wrappers):
            raise RuntimeError("a wrapper called its executor after the wrapped function had run")
        return type(self)(self.original, self.class_obj, self.wrappers, self.idx + 1)

    @classmethod
    def new_executor(cls, original: Callable, wrappers: list[Callable], idx: int = 0) -> "WrapperExecutor":
        return cls(original, None, wrappers, idx)

    @classmethod
    def new_class_executor(cls, original: Callable, class_obj: object, wrappers: list[Callable],
                           idx: int = 0) -> "WrapperExecutor":
        return cls(original, class_obj, wrappers, idx)


def run_wrapped(wrapper_type: str, options: dict | None, original: Callable, class_obj: object,
                *args, is_model_options: bool = False, **kwargs):
    """``original(*args, **kwargs)`` inside the wrappers of ``wrapper_type`` found in ``options``."""
    wrappers = get_all_wrappers(wrapper_type, options, is_model_options)
    if not wrappers:
        return original(*args, **kwargs)
    return WrapperExecutor.new_class_executor(original, class_obj, wrappers).execute(*args, **kwargs)
