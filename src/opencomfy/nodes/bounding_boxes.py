"""CreateBoundingBoxes: boxes drawn on the node's canvas, as pixel boxes, layout elements and a
preview picture (newer than the reference catalogue; its shape follows ComfyUI's templates).

The canvas widget (``editor_state``) sends its boxes in pixels, each with ``metadata``
(``type`` "obj" or "text", ``text``, ``desc``, ``palette``). An upstream ``bboxes`` value
(pixel boxes, a frame of them, layout elements or their JSON) re-initialises the canvas when
it changes: ``last_incoming`` is the upstream value the canvas last took. Elements carry
``bbox = [ymin, xmin, ymax, xmax]`` on a 0..1000 grid, the layout prompts' convention.
"""

from __future__ import annotations

import json
import re

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

PYTHON_MODULE = "comfy_extras.nodes_bounding_boxes"
_PREVIEW_LONG_EDGE = 1024
_BACKGROUND_DIM = 0.25
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def normalise_colour(value) -> str | None:
    """``"#abc"`` / ``"AABBCC"`` -> ``"#aabbcc"``; None for anything else."""
    match = _HEX.match(value.strip()) if isinstance(value, str) else None
    if not match:
        return None
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "#" + digits


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _number(box: dict, key: str) -> float:
    value = box.get(key, 0)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"bounding box '{key}' must be a number, got {value!r}")
    return float(value)


def _pixel_box(box: dict) -> dict:
    out = {key: _number(box, key) for key in ("x", "y", "width", "height")}
    if isinstance(box.get("metadata"), dict):
        out["metadata"] = box["metadata"]
    return out


def _element_box(element: dict, width: int, height: int) -> dict:
    grid = element.get("bbox")
    if not isinstance(grid, (list, tuple)) or len(grid) != 4:
        raise ValueError("a layout element needs 'bbox': [ymin, xmin, ymax, xmax] (0..1000)")
    try:
        ymin, xmin, ymax, xmax = (float(v) / 1000 for v in grid)
    except (TypeError, ValueError):
        raise ValueError("a layout element's 'bbox' must hold four numbers") from None
    kind = "text" if element.get("type") == "text" else "obj"
    return {"x": round(min(xmin, xmax) * width), "y": round(min(ymin, ymax) * height),
            "width": round(abs(xmax - xmin) * width), "height": round(abs(ymax - ymin) * height),
            "metadata": {"type": kind, "text": element.get("text", "") if kind == "text" else "",
                         "desc": element.get("desc", ""),
                         "palette": element.get("color_palette") or []}}


def incoming_boxes(value, width: int, height: int) -> list[dict]:
    """Pixel boxes from an upstream value: boxes, a frame ``[[boxes]]``, elements or JSON."""
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"bboxes text is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"bboxes must be boxes, layout elements or JSON, not {type(value).__name__}")
    if value and isinstance(value[0], list):  # a batch of frames: the first frame's boxes
        value = value[0]
    boxes = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError(f"bboxes items must be objects, got {type(item).__name__}")
        if "bbox" in item:
            boxes.append(_element_box(item, width, height))
        elif all(key in item for key in ("x", "y", "width", "height")):
            boxes.append(_pixel_box(item))
        else:
            raise ValueError("bboxes items need x, y, width, height (or a layout 'bbox')")
    return boxes


def _region(box: dict, width: int, height: int) -> dict:
    """A box as fractions of the canvas (negative sizes flipped) with its metadata."""
    x, y, w, h = (_number(box, k) for k in ("x", "y", "width", "height"))
    if w < 0:
        x, w = x + w, -w
    if h < 0:
        y, h = y + h, -h
    found = box.get("metadata")
    meta: dict = found if isinstance(found, dict) else {}
    palette = [c for c in (normalise_colour(v) for v in meta.get("palette") or []) if c]
    return {"x": x / width, "y": y / height, "w": w / width, "h": h / height,
            "type": "text" if meta.get("type") == "text" else "obj",
            "text": str(meta.get("text") or ""), "desc": str(meta.get("desc") or ""),
            "palette": palette[:5]}


def _element(region: dict) -> dict:
    def grid(v: float) -> int:
        return max(0, min(1000, round(v * 1000)))

    element: dict = {"type": region["type"],
                     "bbox": [grid(region["y"]), grid(region["x"]),
                              grid(region["y"] + region["h"]), grid(region["x"] + region["w"])]}
    if region["type"] == "text":
        element["text"] = region["text"]
    element["desc"] = region["desc"]
    if region["palette"]:
        element["color_palette"] = region["palette"]
    return element


def _font(size: int):
    try:
        return ImageFont.load_default(size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_preview(regions: list[dict], width: int, height: int,
                   background: torch.Tensor | None) -> torch.Tensor:
    """The boxes drawn over the (dimmed) background: outline, palette strip, number, text."""
    scale = min(1.0, _PREVIEW_LONG_EDGE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if background is not None:
        pixels = (background[0, ..., :3].detach().cpu().float().clamp(0, 1) * 255).byte().numpy()
        base = Image.fromarray(pixels).convert("RGB").resize(size, Image.Resampling.LANCZOS)
        base = ImageEnhance.Brightness(base).enhance(_BACKGROUND_DIM)
    else:
        grey = round(_BACKGROUND_DIM * 128)
        base = Image.new("RGB", size, (grey, grey, grey))
    draw = ImageDraw.Draw(base)
    font_size = max(10, round(size[1] / 64))
    font = _font(font_size)
    for number, region in enumerate(regions, start=1):
        colour = _rgb(region["palette"][0]) if region["palette"] else (140, 140, 140)
        x1, x2 = (round(v * size[0]) for v in (region["x"], region["x"] + region["w"]))
        y1, y2 = (round(v * size[1]) for v in (region["y"], region["y"] + region["h"]))
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        for i, swatch in enumerate(region["palette"]):
            step = (x2 - x1) / len(region["palette"])
            draw.rectangle([x1 + round(i * step), y1, x1 + round((i + 1) * step), y1 + 5],
                           fill=_rgb(swatch))
        label = f"{number:02d}"
        draw.rectangle([x1, y1, x1 + draw.textlength(label, font=font) + 6, y1 + font_size + 2],
                       fill=colour)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        draw.text((x1 + 3, y1 + 1), label, fill=ink, font=font)
        body = f'"{region["text"]}" {region["desc"]}' if region["text"] else region["desc"]
        if body:
            draw.text((x1 + 4, y1 + font_size + 5), body[:200], fill=(230, 230, 230), font=font)
    return torch.from_numpy(np.asarray(base, dtype=np.float32) / 255.0).unsqueeze(0)


class CreateBoundingBoxes:
    """Boxes drawn on a canvas: pixel boxes, layout elements (0..1000 grid) and a preview."""

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 1024, "min": 64, "max": 16384, "step": 16}
        return {
            "required": {
                "width": ("INT", {**size, "tooltip": "Canvas width: the pixel grid of the boxes."}),
                "height": ("INT", {**size, "tooltip": "Canvas height: the pixel grid of the boxes."}),
                "editor_state": ("BOUNDING_BOXES", {
                    "tooltip": "The boxes drawn on the canvas, each with a type, text, "
                               "description and colours; background elements first."}),
            },
            "optional": {
                "background": ("IMAGE", {"tooltip": "An image shown under the canvas and preview."}),
                "bboxes": ("BOUNDING_BOX,ARRAY,STRING", {
                    "tooltip": "Boxes, layout elements or their JSON to start the canvas from; "
                               "canvas edits win until this value changes."}),
                "last_incoming": ("BOUNDING_BOXES", {
                    "tooltip": "Kept by the canvas: the upstream boxes it last took. Empty it to "
                               "take the bboxes input again."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "BOUNDING_BOX", "ARRAY")
    RETURN_NAMES = ("preview", "bboxes", "elements")
    FUNCTION = "execute"
    OUTPUT_NODE = True
    EXPERIMENTAL = True
    CATEGORY = "utilities"
    DESCRIPTION = "Draw boxes on a canvas; outputs layout elements, pixel boxes and a preview."

    def execute(self, width, height, editor_state=None, background=None, bboxes=None,
                last_incoming=None):
        incoming = incoming_boxes(bboxes, width, height)
        taken = last_incoming if isinstance(last_incoming, list) else []
        source = incoming if incoming and incoming != taken else (editor_state or [])
        if not isinstance(source, list):
            raise ValueError("editor_state must be a list of boxes")
        regions = [_region(box, width, height) for box in source if isinstance(box, dict)]
        frame = [{"x": round(r["x"] * width), "y": round(r["y"] * height),
                  "width": round(r["w"] * width), "height": round(r["h"] * height)}
                 for r in regions]
        ui: dict = {"dims": [width, height]}
        if incoming:
            ui["input_bboxes"] = incoming
        return {"ui": ui, "result": (render_preview(regions, width, height, background),
                                     [frame] if frame else [], [_element(r) for r in regions])}


NODES = [
    ("CreateBoundingBoxes", CreateBoundingBoxes, "Create Bounding Boxes", PYTHON_MODULE),
]
