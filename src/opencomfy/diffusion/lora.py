"""LoRA files: kohya-style (``lora_unet_input_blocks_1_1_..._to_q.lora_down.weight`` with LDM or
diffusers module paths, ``.alpha``) and PEFT/diffusers-style (``unet.<path>.lora_A.weight``).

A LoRA is matched against one loaded module once (:meth:`LoraFile.for_unet`,
:meth:`LoraFile.for_text_encoder`); the resulting :class:`LoraPatch` adds
``strength * alpha / rank * up @ down`` to each weight while the model runs and puts the
original weights back afterwards.
"""

from __future__ import annotations

import logging

import torch

from opencomfy.diffusion.ldm_keys import unet_key_to_ldm

log = logging.getLogger(__name__)

_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight")
_UP = (".lora_up.weight", ".lora_B.weight", ".lora.up.weight")


class LoraPatch:
    """LoRA deltas for named parameters of one module."""

    def __init__(self, module: torch.nn.Module, deltas: dict[str, tuple[torch.Tensor, torch.Tensor, float]]):
        self.module = module
        self.deltas = deltas   # param name -> (up, down, alpha / rank)

    def delta(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        up, down, scale = self.deltas[name]
        if up is None:      # a full difference (``.diff`` / ``.diff_b``): the delta itself
            return down.float().reshape(weight.shape) * scale
        product = up.flatten(1).float() @ down.flatten(1).float()
        return (product * scale).reshape(weight.shape)

    def apply(self, strength: float):
        """Add the deltas in place; return a function that restores the original weights."""
        params = dict(self.module.named_parameters())
        saved = {}
        with torch.no_grad():
            for name in self.deltas:
                weight = params[name]
                saved[name] = weight.detach().clone()
                weight.add_((self.delta(name, weight) * strength).to(weight.device, weight.dtype))

        def restore():
            with torch.no_grad():
                for name, original in saved.items():
                    params[name].copy_(original)
        return restore

    def __len__(self) -> int:
        return len(self.deltas)


class LoraFile:
    """The pairs (down, up, alpha) of a LoRA file, by module name as written in the file."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        self.pairs: dict[str, tuple[torch.Tensor | None, torch.Tensor, float]] = {}
        # Full differences (LoraSave's ``full_diff`` and bias diffs): module -> delta, by kind.
        self.diffs: dict[str, dict[str, torch.Tensor]] = {"weight": {}, "bias": {}}
        for key, value in state_dict.items():
            for suffix, kind in ((".diff", "weight"), (".diff_b", "bias")):
                if key.endswith(suffix):
                    self.diffs[kind][key[:-len(suffix)]] = value
        for key, down in state_dict.items():
            suffix = next((s for s in _DOWN if key.endswith(s)), None)
            if suffix is None:
                continue
            base = key[:-len(suffix)]
            up_suffix = _UP[_DOWN.index(suffix)]
            up = state_dict.get(base + up_suffix)
            if up is None:
                continue
            rank = down.shape[0]
            alpha = state_dict.get(base + ".alpha")
            scale = float(alpha) / rank if alpha is not None else 1.0
            self.pairs[base] = (up, down, scale)
        self.matched: set[str] = set()

    def _match(self, module, names_for) -> LoraPatch:
        deltas = {}
        for param, _ in module.named_parameters():
            base, _, kind = param.rpartition(".")
            if kind not in ("weight", "bias"):
                continue
            for candidate in names_for(base):
                if kind == "weight" and candidate in self.pairs:
                    deltas[param] = self.pairs[candidate]
                elif candidate in self.diffs[kind]:
                    deltas[param] = (None, self.diffs[kind][candidate], 1.0)
                else:
                    continue
                self.matched.add(candidate)
                break
        return LoraPatch(module, deltas)

    def for_unet(self, unet) -> LoraPatch:
        config = unet.config
        with_attention = {i for i, t in enumerate(config.up_block_types) if "CrossAttn" in t}

        def names(module_path):
            out = ["lora_unet_" + module_path.replace(".", "_"), "unet." + module_path,
                   "diffusion_model." + module_path]
            try:
                ldm = unet_key_to_ldm(module_path + ".weight", layers_per_block=config.layers_per_block,
                                      up_blocks_with_attention=with_attention)[:-len(".weight")]
                # kohya's flattened name, and ComfyUI's own (what LoraSave writes)
                out[:0] = ["lora_unet_" + ldm.replace(".", "_"), "diffusion_model." + ldm]
            except KeyError:
                pass
            return out

        patch = self._match(unet, names)
        log.info("LoRA: %d UNet weights patched", len(patch))
        return patch

    def for_text_encoder(self, clip) -> list[LoraPatch]:
        """One patch per text tower of a CLIP (``lora_te_`` for SD 1.x, ``lora_te1_``/``lora_te2_``
        for SDXL's two towers)."""
        patches = []
        for part in clip.parts:
            def names(module_path, part=part):
                path = module_path[len("text_model."):] if module_path.startswith("text_model.") else module_path
                flat = "text_model_" + path.replace(".", "_")
                peft = "text_encoder." if part.key == "l" else "text_encoder_2."
                return ([prefix + flat for prefix in part.lora_prefixes] + [peft + "text_model." + path]
                        + [f"text_encoders.clip_{part.key}.transformer.text_model.{path}",
                           f"text_encoders.clip_{part.key}.transformer.{module_path}"])

            patch = self._match(part.model, names)
            log.info("LoRA: %d weights patched in text encoder %s", len(patch), part.key)
            if len(patch):
                patches.append(patch)
        return patches


    def warn_unmatched(self, name: str) -> None:
        """Log the LoRA weights that matched no module (other formats, other model families)."""
        missing = sorted((set(self.pairs) | set(self.diffs["weight"]) | set(self.diffs["bias"])) - self.matched)
        if missing:
            log.warning("LoRA %s: %d of %d weights matched no module (e.g. %s)", name, len(missing),
                        len(self.pairs), missing[0])


def load_lora_file(path: str) -> LoraFile:
    from opencomfy.weights import read_state_dict

    return LoraFile(read_state_dict(path))
