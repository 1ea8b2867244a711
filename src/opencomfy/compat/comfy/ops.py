"""ComfyUI's ``comfy.ops``: torch layers for model code that packs define themselves.

``disable_weight_init.Linear`` (and Conv1d/2d/3d, GroupNorm, LayerNorm, RMSNorm,
ConvTranspose1d/2d, Embedding) are the torch layers without the random initialisation (the
weights are loaded right after), and with optional casting: when ``comfy_cast_weights`` is set
(``manual_cast``) or weight functions are attached, the weight and bias are cast to the input's
device and dtype on every call, so weights can be stored in one dtype and run in another.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opencomfy.compat.comfy import model_management


def run_every_op() -> None:
    """Called by every layer: a long model call notices an interrupted prompt."""
    model_management.throw_exception_if_processing_interrupted()


def cast_to_input(weight: torch.Tensor, input: torch.Tensor, non_blocking: bool = False,
                  copy: bool = True) -> torch.Tensor:
    return model_management.cast_to(weight, input.dtype, input.device, non_blocking=non_blocking, copy=copy)


def cast_bias_weight(s, input=None, dtype=None, device=None, bias_dtype=None, offloadable: bool = False):
    """``s``'s weight and bias on ``device`` in ``dtype`` (both default to ``input``'s), with
    its weight/bias functions applied."""
    if input is not None:
        dtype = dtype if dtype is not None else input.dtype
        device = device if device is not None else input.device
        bias_dtype = bias_dtype if bias_dtype is not None else dtype
    bias = None
    if getattr(s, "bias", None) is not None:
        bias = model_management.cast_to(s.bias, bias_dtype, device, copy=bool(s.bias_function))
        for function in s.bias_function:
            bias = function(bias)
    weight = model_management.cast_to(s.weight, dtype, device, copy=bool(s.weight_function))
    for function in s.weight_function:
        weight = function(weight)
    return weight, bias


class CastWeightBiasOp:
    comfy_cast_weights = False
    weight_function: list = []
    bias_function: list = []


def _castable(base: type, functional):
    """A subclass of torch layer ``base`` without weight init, casting when asked to."""

    def reset_parameters(self):
        return None  # the weights are loaded right after construction

    def forward_comfy_cast_weights(self, input, *args, **kwargs):
        weight, bias = cast_bias_weight(self, input)
        return functional(self, input, weight, bias, *args, **kwargs)

    def forward(self, *args, **kwargs):
        run_every_op()
        if self.comfy_cast_weights or len(self.weight_function) > 0 or len(self.bias_function) > 0:
            return self.forward_comfy_cast_weights(*args, **kwargs)
        return base.forward(self, *args, **kwargs)

    return type(base.__name__, (base, CastWeightBiasOp), {
        "reset_parameters": reset_parameters, "forward_comfy_cast_weights": forward_comfy_cast_weights,
        "forward": forward, "__doc__": f"torch.nn.{base.__name__} without weight init (comfy.ops)."})


def _conv(self, input, weight, bias):
    return self._conv_forward(input, weight, bias)


def _transposed(dims: int):
    conv = F.conv_transpose1d if dims == 1 else F.conv_transpose2d

    def run(self, input, weight, bias, output_size=None):
        padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                       dims, self.dilation)
        return conv(input, weight, bias, self.stride, self.padding, padding, self.groups, self.dilation)

    return run


class disable_weight_init:
    """Torch layers that skip the random initialisation of their weights."""

    Linear = _castable(torch.nn.Linear, lambda self, x, w, b: F.linear(x, w, b))
    Conv1d = _castable(torch.nn.Conv1d, _conv)
    Conv2d = _castable(torch.nn.Conv2d, _conv)
    Conv3d = _castable(torch.nn.Conv3d, _conv)
    GroupNorm = _castable(torch.nn.GroupNorm,
                          lambda self, x, w, b: F.group_norm(x, self.num_groups, w, b, self.eps))
    LayerNorm = _castable(torch.nn.LayerNorm,
                          lambda self, x, w, b: F.layer_norm(x, self.normalized_shape, w, b, self.eps))
    RMSNorm = _castable(torch.nn.RMSNorm, lambda self, x, w, b: F.rms_norm(x, self.normalized_shape, w, self.eps))
    ConvTranspose1d = _castable(torch.nn.ConvTranspose1d, _transposed(1))
    ConvTranspose2d = _castable(torch.nn.ConvTranspose2d, _transposed(2))
    Embedding = _castable(torch.nn.Embedding, lambda self, x, w, b, out_dtype=None: F.embedding(
        x, w, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse))

    @classmethod
    def conv_nd(cls, dims: int, *args, **kwargs):
        layers = {1: cls.Conv1d, 2: cls.Conv2d, 3: cls.Conv3d}
        if dims not in layers:
            raise ValueError(f"unsupported dimensions: {dims}")
        return layers[dims](*args, **kwargs)


class manual_cast(disable_weight_init):
    """The same layers, always casting weights to the input's dtype and device."""

    Linear = type("Linear", (disable_weight_init.Linear,), {"comfy_cast_weights": True})
    Conv1d = type("Conv1d", (disable_weight_init.Conv1d,), {"comfy_cast_weights": True})
    Conv2d = type("Conv2d", (disable_weight_init.Conv2d,), {"comfy_cast_weights": True})
    Conv3d = type("Conv3d", (disable_weight_init.Conv3d,), {"comfy_cast_weights": True})
    GroupNorm = type("GroupNorm", (disable_weight_init.GroupNorm,), {"comfy_cast_weights": True})
    LayerNorm = type("LayerNorm", (disable_weight_init.LayerNorm,), {"comfy_cast_weights": True})
    RMSNorm = type("RMSNorm", (disable_weight_init.RMSNorm,), {"comfy_cast_weights": True})
    ConvTranspose1d = type("ConvTranspose1d", (disable_weight_init.ConvTranspose1d,), {"comfy_cast_weights": True})
    ConvTranspose2d = type("ConvTranspose2d", (disable_weight_init.ConvTranspose2d,), {"comfy_cast_weights": True})
    Embedding = type("Embedding", (disable_weight_init.Embedding,), {"comfy_cast_weights": True})


def pick_operations(weight_dtype, compute_dtype, load_device=None, disable_fast_fp8: bool = False,
                    fp8_optimizations: bool = False, scaled_fp8=None, model_config=None):
    """The layer set for weights stored as ``weight_dtype`` and run in ``compute_dtype``."""
    if compute_dtype is None or weight_dtype == compute_dtype:
        return disable_weight_init
    return manual_cast
