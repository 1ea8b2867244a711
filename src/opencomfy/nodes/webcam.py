"""ComfyUI's WebcamCapture: a still the browser took with the webcam, loaded like LoadImage.

The frontend's webcam widget captures a frame at the node's width/height when the prompt is
queued (or when asked, with ``capture_on_queue`` off), uploads it and sends its annotated
name as ``image``; the server only loads that file. A subclass of LoadImage, as in ComfyUI,
so packs that check ``isinstance(node, LoadImage)`` see it as one.
"""

from __future__ import annotations

from opencomfy.compat import folder_paths
from opencomfy.nodes.image_io import LoadImage, load_image_file
from opencomfy.nodes.mask import MAX_RESOLUTION


class WebcamCapture(LoadImage):
    """Loads the webcam still the browser uploaded for this node."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("WEBCAM", {}),
            "width": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            "height": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            "capture_on_queue": ("BOOLEAN", {"default": True}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load_capture"
    CATEGORY = "image"

    def load_capture(self, image, **kwargs):
        if not isinstance(image, str) or not image:
            raise ValueError("No webcam capture was sent: allow the camera in the browser and "
                             "capture a frame before queueing.")
        try:
            path = folder_paths.get_annotated_filepath(image)
        except ValueError:
            raise ValueError(f"Invalid webcam capture path: {image}") from None
        try:
            picture, _mask = load_image_file(path)
        except FileNotFoundError:
            raise ValueError(f"Webcam capture not found: {image}") from None
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a broken file
            raise ValueError(f"The webcam capture is not a readable image: {exc}") from None
        return (picture,)

    @classmethod
    def IS_CHANGED(cls, image, width=0, height=0, capture_on_queue=True):
        # A fresh frame is taken at every queue: never reuse the cached result then.
        if capture_on_queue:
            return float("NaN")
        return super().IS_CHANGED(image)


NODES = [
    ("WebcamCapture", WebcamCapture, "Webcam Capture", "comfy_extras.nodes_webcam"),
]
