"""The mask editor's four layers of one edited mask.

The frontend saves one edit as four PNGs in the input folder that share a timestamp:
`clipspace-mask-<t>.png` (the image with the mask as alpha), `clipspace-paint-<t>.png` (the
paint strokes), `clipspace-painted-<t>.png` (image + paint) and
`clipspace-painted-masked-<t>.png` (image + paint, mask as alpha). Older frontends put them in
the `clipspace` subfolder. Given any one of them, we find the others.
"""

from __future__ import annotations

import re
from pathlib import Path

from opencomfy.files.paths import check_relative, split_annotation

# Longest prefix first: "painted-masked" must win over "painted".
LAYER_PREFIXES = {
    "painted_masked": "clipspace-painted-masked-",
    "painted": "clipspace-painted-",
    "paint": "clipspace-paint-",
    "mask": "clipspace-mask-",
}
_STAMP = re.compile(r"^(\d+)(?: \(\d+\))?\.png$")
_SEARCH_SUBFOLDERS = ("", "clipspace")


class NotAMaskLayer(LookupError):
    """The name is not one of the mask editor's layer files, or no layer exists on disk."""


def layer_stamp(filename: str) -> str:
    """The timestamp shared by the four layers, from any layer's file name."""
    name, _ = split_annotation(filename)
    check_relative(name)
    base = name.rsplit("/", 1)[-1]
    for prefix in LAYER_PREFIXES.values():
        if base.startswith(prefix):
            match = _STAMP.match(base[len(prefix):])
            if match:
                return match.group(1)
    raise NotAMaskLayer(f"{filename!r} is not a mask editor layer")


def find_mask_layers(*, input_dir: Path, filename: str) -> dict[str, str | None]:
    """{mask, paint, painted, painted_masked} file names for the edit `filename` belongs to;
    a layer not on disk is None. Raises NotAMaskLayer when none exists."""
    stamp = layer_stamp(filename)
    layers: dict[str, str | None] = {}
    for layer, prefix in LAYER_PREFIXES.items():
        name = f"{prefix}{stamp}.png"
        found = any((input_dir / sub / name).is_file() for sub in _SEARCH_SUBFOLDERS)
        layers[layer] = name if found else None
    if not any(layers.values()):
        raise NotAMaskLayer(f"no mask layers for {filename!r}")
    return {k: layers[k] for k in ("mask", "paint", "painted", "painted_masked")}
