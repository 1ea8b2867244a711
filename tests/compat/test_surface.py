"""Every ComfyUI name that popular custom node packs import resolves (tests/data/custom-node-surface.tsv).

Each row is ``module:attribute`` (``:None`` for the module itself; ``a.B:c`` for an attribute of
a class). A name resolves the way a pack's import does: import the longest importable module
prefix, then ``getattr`` down, importing a submodule when ``from package import sub`` would.
The test prints how many resolve to real objects and how many to placeholders.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SURFACE = Path(__file__).resolve().parents[1] / "data" / "custom-node-surface.tsv"

# Names of the real modules below that stay placeholders on purpose: ComfyUI's internal cond
# dicts (ours resolve conditioning differently), T2I adapters, and the model-detection module.
LATER = ("comfy.samplers.can_concat_cond", "comfy.samplers.cond_cat", "comfy.samplers.get_area_and_mult",
         "comfy.controlnet.T2IAdapter", "comfy.sd.model_detection")
# Modules made real: none of their names may be a placeholder (except those in LATER).
REAL = ("comfy.utils", "comfy.model_management", "comfy.latent_formats", "comfy.model_sampling",
        "comfy.cli_args", "comfy.lora", "comfy.ops", "comfy.diffusers_convert", "latent_preview",
        "execution", "comfy_api.feature_flags", "comfy_api.torch_helpers", "comfy_extras.nodes_mask",
        "comfy_extras.nodes_lt.get_noise_mask", "comfy_extras.nodes_custom_sampler",
        # the sampling and model-loading surface
        "comfy.samplers", "comfy.sample", "comfy.sampler_helpers", "comfy.k_diffusion", "comfy.sd",
        "comfy.model_patcher", "comfy.patcher_extension", "comfy.controlnet", "comfy.clip_vision",
        "nodes.common_ksampler")


def _rows() -> list[tuple[str, int, str]]:
    rows = []
    for line in SURFACE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, packs, status = line.split("\t")
        rows.append((name, int(packs), status))
    return rows


ROWS = _rows()


def resolve(name: str):
    """The object a pack gets for ``module:attribute``."""
    module_path, attribute = name.split(":")
    parts = module_path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
            break
        except ModuleNotFoundError:
            if cut == 1:
                raise
    path = parts[:cut]
    for part in parts[cut:] + ([] if attribute == "None" else [attribute]):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(path + [part]))  # `from package import sub`
        path.append(part)
    return obj


@pytest.fixture(scope="module", autouse=True)
def compat_installed():
    from opencomfy.compat import install

    install()


def _dotted(name: str) -> str:
    module_path, attribute = name.split(":")
    return module_path if attribute == "None" else f"{module_path}.{attribute}"


@pytest.mark.parametrize("name", [row[0] for row in ROWS])
def test_name_resolves(name):
    from opencomfy.compat.model_placeholders import is_placeholder

    obj = resolve(name)
    dotted = _dotted(name)
    later = any(dotted == m or dotted.startswith(m + ".") for m in LATER)
    if not later and any(dotted == r or dotted.startswith(r + ".") for r in REAL):
        assert not is_placeholder(obj), f"{name} must be real, not a placeholder"


def test_surface_counts_real_and_placeholder(capsys):
    from opencomfy.compat.model_placeholders import is_placeholder

    real, placeholders = [], []
    for name, packs, _status in ROWS:
        (placeholders if is_placeholder(resolve(name)) else real).append((name, packs))
    later = [n for n, _ in placeholders if any(_dotted(n).startswith(m) for m in LATER)]
    with capsys.disabled():
        print(f"\ncustom-node surface: {len(ROWS)} names, {len(real)} real, {len(placeholders)} "
              f"placeholders ({len(later)} kept on purpose in real modules, "
              f"{sum(p for _, p in real)} of {sum(p for _, p, _ in ROWS)} pack uses real)")
    assert len(real) + len(placeholders) == len(ROWS)
    assert len(real) >= 127  # what the passes so far made real; a drop means something regressed


def test_placeholders_are_recognisable_and_name_themselves():
    import comfy.ldm.flux.math as flux_math

    from opencomfy.compat.model_placeholders import ModelBackendUnavailable, is_placeholder

    assert is_placeholder(flux_math) and is_placeholder(flux_math.apply_rope)
    assert flux_math.apply_rope is flux_math.apply_rope  # kept once made
    with pytest.raises(ModelBackendUnavailable, match=r"comfy\.ldm\.flux\.math\.apply_rope"):
        flux_math.apply_rope(None, None)
