"""ComfyUI's video nodes (``comfy_extras/nodes_video.py``): LoadVideo, SaveVideo, SaveWEBM,
CreateVideo, GetVideoComponents and Video Slice.

ComfyUI declares them with its V3 schema, so they are written as ``io.ComfyNode`` classes and
registered through compat's V1 facade, which reports them exactly as ComfyUI does. A VIDEO
value is a ``VideoInput`` (``comfy_api``): LoadVideo hands on a file that is decoded only if
a node asks for its frames, and the savers encode frame by frame, so a long video is never
held decoded twice. Files are named and confined by ``folder_paths``.
"""

from __future__ import annotations

import os
from fractions import Fraction

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy_api.latest import io, ui
from opencomfy.compat.comfy_api.latest._audio import hidden_metadata
from opencomfy.compat.comfy_api.latest._video import (
    VideoCodec, VideoComponents, VideoContainer, VideoFromComponents, VideoFromFile,
)
from opencomfy.compat.comfy_api.latest._video_writer import VideoWriter
from opencomfy.compat.v3_facade import make_v1_facade
from opencomfy.nodes.image_saving import write_numbered_file

PYTHON_MODULE = "comfy_extras.nodes_video"
# io.Image/io.Audio/io.Video are made at import time, out of a type checker's sight; these are
# the same socket types under names it can follow.
IMAGE, AUDIO, VIDEO = io.Custom("IMAGE"), io.Custom("AUDIO"), io.Custom("VIDEO")
_WEBM_CODECS = {"vp9": "libvpx-vp9", "av1": "libsvtav1"}


def _saved_to_output(filename_prefix: str, width: int, height: int, extension: str,
                     write) -> ui.SavedResult:
    """Write one numbered file into the output folder; its ``ui`` entry."""
    target = folder_paths.resolve_save_target(
        filename_prefix, folder_paths.get_output_directory(), width, height)
    name = write_numbered_file(target, stem=target.filename, extension=extension, write=write)
    return ui.SavedResult(name, target.subfolder, io.FolderType.output)


def input_files(content_types: list[str]) -> list[str]:
    """Files at the top of the input folder whose MIME family is listed, sorted."""
    root = folder_paths.get_input_directory()
    try:
        with os.scandir(root) as entries:
            names = [e.name for e in entries if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(folder_paths.filter_files_content_types(names, content_types))


def file_fingerprint(name: str) -> str:
    """Changes when the file is replaced or rewritten, without reading (hashing) a long video."""
    stat = os.stat(folder_paths.get_annotated_filepath(name))
    return f"{stat.st_mtime_ns}:{stat.st_size}"


class SaveWEBM(io.ComfyNode):
    """An IMAGE batch as a WebM file (VP9 or AV1) in the output folder."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveWEBM", category="image/video", is_experimental=True,
            inputs=[
                IMAGE.Input("images", tooltip="Frames; with an alpha channel and VP9 the "
                                                 "video keeps transparency."),
                io.String.Input("filename_prefix", default="ComfyUI"),
                io.Combo.Input("codec", options=list(_WEBM_CODECS)),
                io.Float.Input("fps", default=24.0, min=0.01, max=1000.0, step=0.01),
                io.Float.Input("crf", default=32.0, min=0, max=63.0, step=1,
                               tooltip="Constant quality: lower is better looking and larger."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, filename_prefix, codec, fps, crf) -> io.NodeOutput:
        if images.shape[0] == 0:
            raise ValueError("SaveWEBM: no frames to save")
        alpha = codec == "vp9" and images.shape[-1] == 4
        pix_fmt = "yuva420p" if alpha else ("yuv420p10le" if codec == "av1" else "yuv420p")
        options = {"crf": int(round(crf))}
        if codec == "av1":
            options["preset"] = 6
        metadata = hidden_metadata(cls)
        height, width = images.shape[1], images.shape[2]

        def write(handle) -> None:
            # bit_rate 0 with a crf: constant-quality mode.
            with VideoWriter(handle, frame_rate=Fraction(round(fps * 1000), 1000), width=width,
                             height=height, container_format="webm", codec=_WEBM_CODECS[codec],
                             pix_fmt=pix_fmt, bit_rate=0, options=options,
                             metadata=metadata) as writer:
                for image in images:
                    writer.write_image(image)

        saved = _saved_to_output(filename_prefix, width, height, "webm", write)
        return io.NodeOutput(ui=ui.PreviewVideo([saved]))


class SaveVideo(io.ComfyNode):
    """A VIDEO into the output folder (MP4, H.264), with the prompt in its metadata."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveVideo", display_name="Save Video", category="image/video",
            description="Saves a video to the output folder.",
            inputs=[
                VIDEO.Input("video", tooltip="Video to write to disk."),
                io.String.Input("filename_prefix", default="video/ComfyUI",
                                tooltip="Name prefix of the saved file; a/b/name saves into "
                                        "the subfolder a/b."),
                io.Combo.Input("format", options=VideoContainer.as_input(), default="auto",
                               tooltip="The container format."),
                io.Combo.Input("codec", options=VideoCodec.as_input(), default="auto",
                               tooltip="The video codec."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, filename_prefix, format, codec) -> io.NodeOutput:
        width, height = video.get_dimensions()
        metadata = hidden_metadata(cls) or None
        saved = _saved_to_output(
            filename_prefix, width, height, VideoContainer.get_extension(format),
            lambda handle: video.save_to(handle, format=VideoContainer(format),
                                         codec=VideoCodec(codec), metadata=metadata))
        return io.NodeOutput(ui=ui.PreviewVideo([saved]))


class CreateVideo(io.ComfyNode):
    """Frames (and optional audio) as a VIDEO; nothing is encoded until it is saved."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CreateVideo", display_name="Create Video", category="image/video",
            description="Makes a video from an image batch and an optional sound track.",
            inputs=[
                IMAGE.Input("images", tooltip="The frames of the video."),
                io.Float.Input("fps", default=30.0, min=1.0, max=120.0, step=1.0),
                AUDIO.Input("audio", optional=True, tooltip="A sound track for the video."),
            ],
            outputs=[VIDEO.Output()],
        )

    @classmethod
    def execute(cls, images, fps, audio=None) -> io.NodeOutput:
        components = VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps))
        return io.NodeOutput(VideoFromComponents(components))


class GetVideoComponents(io.ComfyNode):
    """A VIDEO's frames, audio and frame rate (this is where a loaded file gets decoded)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="GetVideoComponents", display_name="Get Video Components",
            category="image/video",
            description="Splits a video into its frames, its audio and its frame rate.",
            inputs=[VIDEO.Input("video", tooltip="The video to split.")],
            outputs=[IMAGE.Output(display_name="images"), AUDIO.Output(display_name="audio"),
                     io.Float.Output(display_name="fps")],
        )

    @classmethod
    def execute(cls, video) -> io.NodeOutput:
        components = video.get_components()
        return io.NodeOutput(components.images, components.audio, float(components.frame_rate))


class LoadVideo(io.ComfyNode):
    """A video file of the input folder as a VIDEO (read lazily)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadVideo", display_name="Load Video", category="image/video",
            inputs=[io.Combo.Input("file", options=input_files(["video"]),
                                   upload=io.UploadType.video)],
            outputs=[VIDEO.Output()],
        )

    @classmethod
    def execute(cls, file) -> io.NodeOutput:
        video = VideoFromFile(folder_paths.get_annotated_filepath(file))
        video.check()  # headers only: a file that is no video fails here, clearly
        return io.NodeOutput(video)

    @classmethod
    def fingerprint_inputs(cls, file):
        return file_fingerprint(file)

    @classmethod
    def validate_inputs(cls, file):
        if not folder_paths.exists_annotated_filepath(file):
            return "Invalid video file: {}".format(file)
        return True


class VideoSlice(io.ComfyNode):
    """A time window of a VIDEO (files are cut when decoded or saved, not copied now)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="Video Slice", display_name="Trim Video", category="image/video",
            description="Keeps a part of a video: from a start time, for a duration.",
            inputs=[
                VIDEO.Input("video"),
                io.Float.Input("start_time", default=0.0, min=-1e5, max=1e5, step=0.001,
                               tooltip="Start in seconds; negative counts back from the end."),
                io.Float.Input("duration", default=0.0, min=0.0, step=0.001,
                               tooltip="Length in seconds; 0 keeps everything after the start."),
                io.Boolean.Input("strict_duration", default=False,
                                 tooltip="Fail instead of returning a shorter slice when the "
                                         "video ends before the duration is reached."),
            ],
            outputs=[VIDEO.Output()],
        )

    @classmethod
    def execute(cls, video, start_time, duration, strict_duration) -> io.NodeOutput:
        trimmed = video.as_trimmed(start_time, duration, strict_duration)
        if trimmed is None:
            raise ValueError(
                f"Video Slice: cannot take {duration:g}s from {start_time:g}s of a "
                f"{video.get_duration():.3f}s video")
        return io.NodeOutput(trimmed)


_CLASSES = (SaveWEBM, SaveVideo, CreateVideo, GetVideoComponents, LoadVideo, VideoSlice)


def _entry(cls) -> tuple:
    schema = cls.GET_SCHEMA()
    return (schema.node_id, make_v1_facade(cls, python_module=PYTHON_MODULE), schema.display_name,
            PYTHON_MODULE)


NODES = [_entry(cls) for cls in _CLASSES]
