"""The MODEL patch nodes of the optional ``diffusion`` extra: guidance functions
(:mod:`model_patches_guidance`), noise schedules and compute dtype (:mod:`model_patches_sampling`)
and UNet block and attention patches (:mod:`model_patches_unet`). All build on the MODEL's
:class:`~opencomfy.diffusion.model_patcher.ModelPatcher` interface. Empty without the extra."""

from __future__ import annotations

from opencomfy.diffusion import available

NODES: list = []

if available():
    from opencomfy.nodes import model_patches_guidance, model_patches_sampling, model_patches_unet

    NODES = [*model_patches_guidance.NODES, *model_patches_sampling.NODES, *model_patches_unet.NODES]
