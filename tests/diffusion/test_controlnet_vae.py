"""ControlNetApplySD3 (Apply Controlnet with VAE): the same control as ControlNetApplyAdvanced,
its inputs in the older order with the VAE among them."""

from __future__ import annotations

import torch

from opencomfy.nodes.diffusion_controlnet import ControlNetApplyAdvanced
from opencomfy.nodes.family_sd3 import ControlNetApplySD3
from tests.diffusion.test_controlnet import _conds, _sample, controlnet, loaded  # noqa: F401  (fixtures)


def test_apply_with_vae_controls_like_the_advanced_node(tiny_models, loaded):  # noqa: F811
    model, clip, vae = tiny_models
    positive, negative = _conds(clip)
    assert list(ControlNetApplySD3.INPUT_TYPES()["required"]) == [
        "positive", "negative", "control_net", "vae", "image", "strength", "start_percent", "end_percent"]
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(6))
    pos, neg = ControlNetApplySD3().apply_controlnet(positive=positive, negative=negative, control_net=loaded,
                                                     vae=vae, image=hint, strength=0.8, start_percent=0.0,
                                                     end_percent=1.0)
    assert "control" in pos[0][1] and "control" in neg[0][1] and "control" not in positive[0][1]
    reference = ControlNetApplyAdvanced().apply_controlnet(positive, negative, loaded, hint, 0.8, 0.0, 1.0)
    controlled = _sample(model, pos, neg)["samples"]
    torch.testing.assert_close(controlled, _sample(model, *reference)["samples"])
    assert not torch.allclose(controlled, _sample(model, positive, negative)["samples"], atol=1e-3)
    assert ControlNetApplySD3().apply_controlnet(positive, negative, loaded, hint, 0.0, 0.0, 1.0,
                                                 vae=vae) == (positive, negative)
