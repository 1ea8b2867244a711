"""V3 UI outputs (``ui.PreviewImage(images, cls=cls)``, ``ui.PreviewText(text)``, ...).

Each helper saves what it shows (previews to the temp folder) and turns into the node's
``ui`` dict through ``as_dict()``, in ComfyUI's shapes.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from opencomfy.compat.comfy_api.latest._io_node import _UIOutput
from opencomfy.compat.comfy_api.latest._io_types import FolderType


def _folder_paths():
    from opencomfy.compat import folder_paths

    return folder_paths


class SavedResult(dict):
    """``{"filename", "subfolder", "type"}`` of one saved file."""

    def __init__(self, filename: str, subfolder: str, type: FolderType) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=FolderType(type).value)

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def subfolder(self) -> str:
        return self["subfolder"]

    @property
    def type(self) -> FolderType:
        return FolderType(self["type"])


class SavedImages(_UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False) -> None:
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict:
        data: dict = {"images": self.results}
        if self.is_animated:
            data["animated"] = (True,)
        return data


class SavedAudios(_UIOutput):
    def __init__(self, results: list[SavedResult]) -> None:
        self.results = results

    def as_dict(self) -> dict:
        return {"audio": self.results}


def _directory(folder_type: FolderType) -> str:
    fp = _folder_paths()
    if folder_type == FolderType.input:
        return fp.get_input_directory()
    if folder_type == FolderType.output:
        return fp.get_output_directory()
    return fp.get_temp_directory()


class ImageSaveHelper:
    """Save IMAGE batches as PNG files with the prompt/workflow metadata, as SaveImage does."""

    @staticmethod
    def _convert_tensor_to_pil(image_tensor) -> PILImage.Image:
        array = np.clip(255.0 * image_tensor.cpu().numpy(), 0, 255).astype(np.uint8)
        return PILImage.fromarray(array)

    @staticmethod
    def _create_png_metadata(cls) -> PngInfo | None:
        from opencomfy.compat.comfy.cli_args import args

        if args.disable_metadata or cls is None or not cls.hidden:
            return None
        metadata = PngInfo()
        if cls.hidden.prompt:
            metadata.add_text("prompt", json.dumps(cls.hidden.prompt))
        if cls.hidden.extra_pnginfo:
            for key, value in cls.hidden.extra_pnginfo.items():
                metadata.add_text(key, json.dumps(value))
        return metadata

    @staticmethod
    def save_images(images, filename_prefix: str, folder_type: FolderType, cls, compress_level: int = 4
                    ) -> list[SavedResult]:
        full_folder, filename, counter, subfolder, _ = _folder_paths().get_save_image_path(
            filename_prefix, _directory(folder_type), images[0].shape[1], images[0].shape[0])
        metadata = ImageSaveHelper._create_png_metadata(cls)
        results = []
        for batch_number, image in enumerate(images):
            name = filename.replace("%batch_num%", str(batch_number))
            file = f"{name}_{counter:05}_.png"
            ImageSaveHelper._convert_tensor_to_pil(image).save(
                os.path.join(full_folder, file), pnginfo=metadata, compress_level=compress_level)
            results.append(SavedResult(file, subfolder, folder_type))
            counter += 1
        return results

    @staticmethod
    def get_save_images_ui(images, filename_prefix: str, cls, compress_level: int = 4) -> SavedImages:
        return SavedImages(ImageSaveHelper.save_images(
            images, filename_prefix=filename_prefix, folder_type=FolderType.output, cls=cls,
            compress_level=compress_level))


class AudioSaveHelper:
    """Save AUDIO batches (FLAC by default) with the prompt in their metadata."""

    @staticmethod
    def save_audio(audio: dict, filename_prefix: str, folder_type: FolderType, cls,
                   format: str = "flac", quality: str = "128k") -> list[SavedResult]:
        from opencomfy.compat.comfy_api.latest._audio import save_audio

        subfolder, names = save_audio(audio, filename_prefix, _directory(folder_type), cls,
                                      format=format, quality=quality)
        return [SavedResult(name, subfolder, folder_type) for name in names]

    @staticmethod
    def get_save_audio_ui(audio: dict, filename_prefix: str, cls, format: str = "flac",
                          quality: str = "128k") -> SavedAudios:
        return SavedAudios(AudioSaveHelper.save_audio(
            audio, filename_prefix=filename_prefix, folder_type=FolderType.output, cls=cls,
            format=format, quality=quality))


def _temp_prefix() -> str:
    return "ComfyUI_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))


class PreviewImage(_UIOutput):
    """Show an IMAGE batch (saved to the temp folder)."""

    def __init__(self, image, animated: bool = False, cls=None, **kwargs) -> None:
        self.values = ImageSaveHelper.save_images(image, filename_prefix=_temp_prefix(),
                                                  folder_type=FolderType.temp, cls=cls,
                                                  compress_level=1)
        self.animated = animated

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    """Show a MASK batch as grey images."""

    def __init__(self, mask, animated: bool = False, cls=None, **kwargs) -> None:
        preview = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(preview, animated, cls, **kwargs)


class PreviewAudio(_UIOutput):
    """Play an AUDIO value (saved as FLAC to the temp folder)."""

    def __init__(self, audio: dict, cls=None, **kwargs) -> None:
        self.values = AudioSaveHelper.save_audio(audio, filename_prefix=_temp_prefix(),
                                                 folder_type=FolderType.temp, cls=cls)

    def as_dict(self) -> dict:
        return {"audio": self.values}


class PreviewVideo(_UIOutput):
    def __init__(self, values: list, **kwargs) -> None:
        self.values = values

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (True,)}


class PreviewUI3D(_UIOutput):
    def __init__(self, model_file, camera_info, **kwargs) -> None:
        self.model_file = model_file
        self.camera_info = camera_info

    def as_dict(self) -> dict:
        return {"result": [self.model_file, self.camera_info, None]}


class PreviewText(_UIOutput):
    """Show a text under the node."""

    def __init__(self, value: str, **kwargs) -> None:
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


__all__ = ["SavedResult", "SavedImages", "SavedAudios", "ImageSaveHelper", "AudioSaveHelper",
           "PreviewImage", "PreviewMask", "PreviewAudio", "PreviewVideo", "PreviewUI3D",
           "PreviewText"]
