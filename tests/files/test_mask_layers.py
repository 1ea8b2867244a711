"""The mask editor's four layers found from any one of them."""

from __future__ import annotations

import pytest

from opencomfy.files.mask_layers import NotAMaskLayer, find_mask_layers, layer_stamp
from opencomfy.files.paths import UnsafePath

NAMES = {"mask": "clipspace-mask-{t}.png", "paint": "clipspace-paint-{t}.png",
         "painted": "clipspace-painted-{t}.png", "painted_masked": "clipspace-painted-masked-{t}.png"}


def test_stamp_from_every_layer():
    for template in NAMES.values():
        assert layer_stamp(template.format(t=1712345)) == "1712345"
    assert layer_stamp("clipspace/clipspace-painted-masked-42.png [input]") == "42"
    assert layer_stamp("clipspace-mask-42 (1).png") == "42"
    for bad in ["photo.png", "clipspace-mask-abc.png", "clipspace-mask-1.jpg"]:
        with pytest.raises(NotAMaskLayer):
            layer_stamp(bad)
    with pytest.raises(UnsafePath):
        layer_stamp("../clipspace-mask-1.png")


@pytest.mark.parametrize("sub", ["", "clipspace"])
def test_find_all_four(tmp_path, sub):
    folder = tmp_path / sub
    folder.mkdir(exist_ok=True)
    for template in NAMES.values():
        (folder / template.format(t=7)).write_bytes(b"png")
    for template in NAMES.values():
        layers = find_mask_layers(input_dir=tmp_path, filename=template.format(t=7))
        assert layers == {k: v.format(t=7) for k, v in NAMES.items()}


def test_missing_layers_are_null(tmp_path):
    (tmp_path / "clipspace-painted-masked-9.png").write_bytes(b"png")
    layers = find_mask_layers(input_dir=tmp_path, filename="clipspace-mask-9.png")
    assert layers == {"mask": None, "paint": None, "painted": None,
                      "painted_masked": "clipspace-painted-masked-9.png"}
    with pytest.raises(NotAMaskLayer):
        find_mask_layers(input_dir=tmp_path, filename="clipspace-mask-10.png")
