"""ComfyUI's audio file nodes (``comfy_extras/nodes_audio.py``): LoadAudio, RecordAudio,
SaveAudio (FLAC), SaveAudioMP3, SaveAudioOpus, SaveAudioAdvanced and PreviewAudio.

AUDIO is ``{"waveform": float [batch, channels, samples], "sample_rate": int}``. Decoding and
encoding go through PyAV (compat's ``_audio`` module, shared with the video values), so any
format FFmpeg reads loads, the sound track of a video included. Saved files are named and
confined by ``folder_paths``; the savers' ``ui`` is ``{"audio": [{filename, subfolder, type}]}``.
"""

from __future__ import annotations

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy_api.latest import io
from opencomfy.compat.comfy_api.latest._audio import (
    hidden_metadata, load_audio, prompt_metadata, save_audio_batch,
)
from opencomfy.compat.v3_facade import make_v1_facade
from opencomfy.nodes.image_saving import random_temp_suffix
from opencomfy.nodes.video import AUDIO, file_fingerprint, input_files

PYTHON_MODULE = "comfy_extras.nodes_audio"
_MP3_QUALITIES = ["V0", "128k", "320k"]
_OPUS_QUALITIES = ["64k", "96k", "128k", "192k", "320k"]
_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def _load(name: str) -> dict:
    """An annotated input-folder name (``"clip.wav [temp]"``) decoded as AUDIO ``[1, C, N]``."""
    path = folder_paths.get_annotated_filepath(name)
    if not folder_paths.exists_annotated_filepath(name):
        raise FileNotFoundError(f"audio file not found: {name}")
    audio = load_audio(path)
    return {"waveform": audio["waveform"], "sample_rate": audio["sample_rate"]}


class _AudioSaver:
    """Shared by the save/preview nodes: where to write and under which ``type``."""

    FORMAT = "flac"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    CATEGORY = "audio"

    def __init__(self):
        self.output_dir = folder_paths.get_output_directory()
        self.type = "output"
        self.prefix_append = ""

    def _save(self, audio, filename_prefix, prompt, extra_pnginfo, quality="128k") -> dict:
        subfolder, names = save_audio_batch(
            audio, filename_prefix=filename_prefix + self.prefix_append,
            directory=self.output_dir, metadata=prompt_metadata(prompt, extra_pnginfo),
            format=self.FORMAT, quality=quality)
        return {"ui": {"audio": [{"filename": n, "subfolder": subfolder, "type": self.type}
                                 for n in names]}}


class SaveAudio(_AudioSaver):
    """AUDIO as FLAC files (one per batch item) in the output folder."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",),
                             "filename_prefix": ("STRING", {"default": "audio/ComfyUI"})},
                "hidden": dict(_HIDDEN)}

    FUNCTION = "save_flac"

    def save_flac(self, audio, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        return self._save(audio, filename_prefix, prompt, extra_pnginfo)


class SaveAudioMP3(_AudioSaver):
    """AUDIO as MP3 files; V0 is LAME's best variable bit rate."""

    FORMAT = "mp3"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",),
                             "filename_prefix": ("STRING", {"default": "audio/ComfyUI"}),
                             "quality": (list(_MP3_QUALITIES), {"default": "V0"})},
                "hidden": dict(_HIDDEN)}

    FUNCTION = "save_mp3"

    def save_mp3(self, audio, filename_prefix="ComfyUI", quality="V0", prompt=None,
                 extra_pnginfo=None):
        return self._save(audio, filename_prefix, prompt, extra_pnginfo, quality)


class SaveAudioOpus(_AudioSaver):
    """AUDIO as Opus files (resampled to a rate Opus takes when needed)."""

    FORMAT = "opus"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",),
                             "filename_prefix": ("STRING", {"default": "audio/ComfyUI"}),
                             "quality": (list(_OPUS_QUALITIES), {"default": "128k"})},
                "hidden": dict(_HIDDEN)}

    FUNCTION = "save_opus"

    def save_opus(self, audio, filename_prefix="ComfyUI", quality="128k", prompt=None,
                  extra_pnginfo=None):
        return self._save(audio, filename_prefix, prompt, extra_pnginfo, quality)


class PreviewAudio(SaveAudio):
    """FLAC into the temp folder, for the UI's player."""

    def __init__(self):
        self.output_dir = folder_paths.get_temp_directory()
        self.type = "temp"
        self.prefix_append = random_temp_suffix()

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",)}, "hidden": dict(_HIDDEN)}


class LoadAudio:
    """An audio (or video) file of the input folder, decoded as AUDIO."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": (input_files(["audio", "video"]), {"audio_upload": True})}}

    CATEGORY = "audio"
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "load"

    def load(self, audio):
        return (_load(audio),)

    @classmethod
    def IS_CHANGED(cls, audio):
        return file_fingerprint(audio)

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        if not folder_paths.exists_annotated_filepath(audio):
            return "Invalid audio file: {}".format(audio)
        return True


class RecordAudio:
    """A clip recorded in the browser (the frontend uploads it and passes its name)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO_RECORD", {})}}

    CATEGORY = "audio"
    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "load"

    def load(self, audio):
        if not isinstance(audio, str) or not audio:
            raise ValueError("RecordAudio: nothing was recorded")
        return (_load(audio),)


class SaveAudioAdvanced(io.ComfyNode):
    """AUDIO as FLAC, MP3 or Opus (the quality choice depends on the format); passes it on."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveAudioAdvanced", display_name="Save Audio (Advanced)", category="audio",
            description="Saves audio to the output folder as FLAC, MP3 or Opus.",
            inputs=[
                AUDIO.Input("audio", tooltip="Clip to write to disk."),
                io.String.Input("filename_prefix", default="audio/ComfyUI",
                                tooltip="Name prefix of the saved files; a/b/name saves into "
                                        "the subfolder a/b."),
                io.DynamicCombo.Input("format", tooltip="The file format.", options=[
                    io.DynamicCombo.Option("flac", []),
                    io.DynamicCombo.Option("mp3", [io.Combo.Input(
                        "quality", options=list(_MP3_QUALITIES), default="V0",
                        tooltip="V0: best variable bit rate; or a constant bit rate.")]),
                    io.DynamicCombo.Option("opus", [io.Combo.Input(
                        "quality", options=list(_OPUS_QUALITIES), default="128k",
                        tooltip="The bit rate.")]),
                ]),
            ],
            outputs=[AUDIO.Output(display_name="audio")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, audio, filename_prefix, format) -> io.NodeOutput:
        chosen = format.get("format", "flac") if isinstance(format, dict) else str(format)
        default = "V0" if chosen == "mp3" else "128k"
        quality = format.get("quality", default) if isinstance(format, dict) else default
        subfolder, names = save_audio_batch(
            audio, filename_prefix=filename_prefix, directory=folder_paths.get_output_directory(),
            metadata=hidden_metadata(cls),
            format=chosen, quality=quality)
        results = [{"filename": n, "subfolder": subfolder, "type": "output"} for n in names]
        return io.NodeOutput(audio, ui={"audio": results})


NODES = [
    ("SaveAudio", SaveAudio, "Save Audio (FLAC)", PYTHON_MODULE),
    ("SaveAudioMP3", SaveAudioMP3, "Save Audio (MP3)", PYTHON_MODULE),
    ("SaveAudioOpus", SaveAudioOpus, "Save Audio (Opus)", PYTHON_MODULE),
    ("SaveAudioAdvanced", make_v1_facade(SaveAudioAdvanced, python_module=PYTHON_MODULE),
     "Save Audio (Advanced)", PYTHON_MODULE),
    ("PreviewAudio", PreviewAudio, "Preview Audio", PYTHON_MODULE),
    ("LoadAudio", LoadAudio, "Load Audio", PYTHON_MODULE),
    ("RecordAudio", RecordAudio, "Record Audio", PYTHON_MODULE),
]
