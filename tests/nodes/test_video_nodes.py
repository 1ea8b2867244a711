"""The video nodes: round trips through real files, lazy loading, slicing, WebM, bad input,
and one graph over HTTP (upload -> LoadVideo -> Video Slice -> SaveVideo -> /api/view)."""

from __future__ import annotations

import json

import av
import pytest
import torch

from opencomfy.compat.comfy_api.latest._video import (
    VideoComponents, VideoDecodeError, VideoFromComponents, VideoFromFile,
)
from opencomfy.nodes.video import (
    CreateVideo, GetVideoComponents, LoadVideo, SaveVideo, SaveWEBM, VideoSlice,
)
from tests.harness import Server, multipart
from tests.nodes import media

HIDDEN = {"prompt": {"1": {"class_type": "SaveVideo"}}, "extra_pnginfo": {"workflow": {"id": 3}}}


def run(cls, hidden=None, **inputs):
    """Run a V3 node's execute as the engine does (hidden inputs on a class clone)."""
    return cls.PREPARE_CLASS_CLONE(hidden or {}).execute(**inputs)


def _load(name: str):
    return run(LoadVideo, file=name).args[0]


@pytest.fixture
def clip(comfy_dirs):
    """input/clip.mp4: 16 frames of 64x64 at 8 fps (2 s) with half a second of stereo tone."""
    images = media.frames()
    media.write_video(comfy_dirs / "input" / "clip.mp4", images, fps=8, audio=media.sine())
    return images


def test_create_save_load_round_trip(comfy_dirs):
    images, audio = media.frames(), media.sine(seconds=2.0)
    video = run(CreateVideo, images=images, fps=8.0, audio=audio).args[0]
    out = run(SaveVideo, HIDDEN, video=video, filename_prefix="vid/clip", format="auto", codec="auto")
    assert out.ui.as_dict() == {"images": [{"filename": "clip_00001_.mp4", "subfolder": "vid",
                                            "type": "output"}], "animated": (True,)}
    path = comfy_dirs / "output" / "vid" / "clip_00001_.mp4"
    decoded, rate, metadata = media.decode(path)
    assert decoded.shape == images.shape and rate == 8.0
    assert (decoded - images).abs().mean() < 0.03
    assert json.loads(metadata["prompt"]) == HIDDEN["prompt"]
    assert json.loads(metadata["workflow"]) == {"id": 3}

    loaded = _load("vid/clip_00001_.mp4 [output]")
    frames_out, audio_out, fps = run(GetVideoComponents, video=loaded).args
    assert fps == 8.0 and frames_out.shape == (16, 64, 64, 3)
    assert (frames_out - images).abs().mean() < 0.03
    assert audio_out["sample_rate"] == 44100 and audio_out["waveform"].shape[:2] == (1, 2)
    assert abs(audio_out["waveform"].shape[-1] / 44100 - 2.0) < 0.1  # AAC pads a frame or two
    # the second save of the same prefix takes the next counter
    out = run(SaveVideo, HIDDEN, video=video, filename_prefix="vid/clip", format="mp4", codec="h264")
    assert out.ui.as_dict()["images"][0]["filename"] == "clip_00002_.mp4"


def test_load_video_is_lazy_and_saving_it_streams_packets(clip, comfy_dirs, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded frames")

    monkeypatch.setattr(VideoFromFile, "_frames", no_decoding)
    monkeypatch.setattr(VideoFromFile, "_transcode", no_decoding)
    video = _load("clip.mp4")
    assert isinstance(video, VideoFromFile)
    assert video.get_dimensions() == (64, 64)
    assert video.get_frame_count() == 16 and video.get_frame_rate() == 8
    assert abs(video.get_duration() - 2.0) < 1e-6
    # with the prompt: a remux that adds the metadata; without: a byte copy
    run(SaveVideo, HIDDEN, video=video, filename_prefix="re", format="auto", codec="auto")
    decoded_meta = media.decode(comfy_dirs / "output" / "re_00001_.mp4")[2]
    assert json.loads(decoded_meta["prompt"]) == HIDDEN["prompt"]
    run(SaveVideo, video=video, filename_prefix="copy", format="auto", codec="auto")
    copied = (comfy_dirs / "output" / "copy_00001_.mp4").read_bytes()
    assert copied == (comfy_dirs / "input" / "clip.mp4").read_bytes()


def test_a_webm_file_is_remuxed_or_transcoded_frame_by_frame_with_its_audio(comfy_dirs):
    images = media.frames(8)
    media.write_video(comfy_dirs / "input" / "in.webm", images, fps=8, audio=media.sine(1.0),
                      container_format="webm")
    # codec "auto" keeps VP9/Opus (an MP4 carries them as they are); "h264" re-encodes
    run(SaveVideo, HIDDEN, video=_load("in.webm"), filename_prefix="k", format="auto", codec="auto")
    with av.open(str(comfy_dirs / "output" / "k_00001_.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
        assert container.streams.video[0].frames == 8
    run(SaveVideo, HIDDEN, video=_load("in.webm"), filename_prefix="t", format="auto", codec="h264")
    path = comfy_dirs / "output" / "t_00001_.mp4"
    decoded, rate, metadata = media.decode(path)
    assert decoded.shape == images.shape and rate == 8.0 and "prompt" in metadata
    assert (decoded - images).abs().mean() < 0.04
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"


@pytest.mark.parametrize("source", ["file", "components"])
def test_video_slice(clip, source):
    video = _load("clip.mp4") if source == "file" else VideoFromComponents(
        VideoComponents(images=clip, audio=media.sine(2.0), frame_rate=8))
    middle = run(VideoSlice, video=video, start_time=0.5, duration=1.0, strict_duration=True).args[0]
    assert middle.get_frame_count() == 8 and abs(middle.get_duration() - 1.0) < 1e-6
    parts = middle.get_components()
    assert parts.images.shape[0] == 8 and (parts.images - clip[4:12]).abs().mean() < 0.03
    tail = run(VideoSlice, video=video, start_time=-0.5, duration=0.0, strict_duration=False).args[0]
    assert (tail.get_components().images - clip[12:]).abs().mean() < 0.03
    shorter = run(VideoSlice, video=video, start_time=1.5, duration=5.0, strict_duration=False).args[0]
    assert shorter.get_frame_count() == 4
    with pytest.raises(ValueError, match="cannot take 5s from 1.5s"):
        run(VideoSlice, video=video, start_time=1.5, duration=5.0, strict_duration=True)
    with pytest.raises(ValueError, match="Video Slice"):
        run(VideoSlice, video=video, start_time=3.0, duration=0.0, strict_duration=False)


def test_a_sliced_file_saves_only_its_window(clip, comfy_dirs):
    middle = run(VideoSlice, video=_load("clip.mp4"), start_time=0.5, duration=1.0,
                 strict_duration=False).args[0]
    run(SaveVideo, video=middle, filename_prefix="cut", format="auto", codec="auto")
    decoded = media.decode(comfy_dirs / "output" / "cut_00001_.mp4")[0]
    assert decoded.shape[0] == 8 and (decoded - clip[4:12]).abs().mean() < 0.04


@pytest.mark.parametrize("codec", ["vp9", "av1"])
def test_save_webm(comfy_dirs, codec):
    images = torch.cat([media.frames(6), torch.ones(6, 64, 64, 1)], dim=-1)  # RGBA
    out = run(SaveWEBM, HIDDEN, images=images, filename_prefix="web/w", codec=codec, fps=6.0,
              crf=30.0)
    ui = out.ui.as_dict()
    assert ui["animated"] == (True,) and ui["images"][0]["subfolder"] == "web"
    path = comfy_dirs / "output" / "web" / ui["images"][0]["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("matroska") or "webm" in container.format.name
        assert stream.codec_context.name in ({"vp9"} if codec == "vp9" else {"av1", "libdav1d"})
        tags = {k.lower(): v for k, v in container.metadata.items()}  # Matroska reads keys upper-case
        assert json.loads(tags["prompt"]) == HIDDEN["prompt"]
        if codec == "vp9":
            assert stream.metadata.get("alpha_mode") == "1"  # the alpha plane is kept
        assert sum(1 for p in container.demux(stream) if p.size) == 6
    if codec == "vp9":  # FFmpeg here has no AV1 decoder; VP9 we can check frame by frame
        decoded = media.decode(path)[0]
        assert (decoded - images[..., :3]).abs().mean() < 0.04


def test_bad_files_give_clear_errors(comfy_dirs):
    inp = comfy_dirs / "input"
    (inp / "text.mp4").write_text("this is not a video")
    data = media.video_bytes(media.frames(8))
    (inp / "cut.mp4").write_bytes(data[: len(data) // 2])
    media.write_video(inp / "empty.mp4", None)
    media.write_video(inp / "empty.avi", None, container_format="avi")  # AVI keeps an empty stream
    for name, message in [("text.mp4", "not a readable video"), ("cut.mp4", "not a readable video"),
                          ("empty.mp4", "has no video"), ("empty.avi", "has no video frames")]:
        with pytest.raises(VideoDecodeError, match=message):
            run(LoadVideo, file=name)
    assert LoadVideo.validate_inputs(file="missing.mp4") == "Invalid video file: missing.mp4"
    with pytest.raises(ValueError, match="no frames"):
        VideoFromComponents(VideoComponents(images=torch.zeros(0, 8, 8, 3))).save_to(
            str(comfy_dirs / "x.mp4"))


def test_a_truncated_webm_decodes_what_is_there_or_fails_clearly(comfy_dirs):
    data = media.video_bytes(media.frames(16), container_format="webm")
    (comfy_dirs / "input" / "cut.webm").write_bytes(data[: int(len(data) * 0.6)])
    try:
        images = run(GetVideoComponents, video=_load("cut.webm")).args[0]
    except VideoDecodeError:
        return
    assert 0 < images.shape[0] < 16


# --- over HTTP -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(base_dir=tmp_path_factory.mktemp("video-server")).start()
    yield server
    server.stop()


def _upload(srv, name: str, data: bytes) -> str:
    body, content_type = multipart({}, {"image": (name, data)})
    r = srv.request("POST", "/api/upload/image", data=body, headers={"Content-Type": content_type})
    assert r.status == 200, r.body
    return r.json()["name"]


def _graph(name: str) -> dict:
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": name}},
        "2": {"class_type": "Video Slice", "inputs": {"video": ["1", 0], "start_time": 1.0,
                                                      "duration": 0.5, "strict_duration": True}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "http/v",
                                                    "format": "auto", "codec": "auto"}},
    }


def _error_of(entry: dict) -> dict:
    return next(data for event, data in entry["status"]["messages"] if event == "execution_error")


def test_load_slice_save_over_http_and_bad_files_fail_the_job_only(srv):
    images = media.frames()
    name = _upload(srv, "up.mp4", media.video_bytes(images, audio=media.sine()))
    r = srv.post("/api/prompt", {"prompt": _graph(name)})
    assert r.status == 200, r.body
    entry = srv.wait_for_job(r.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry
    assert entry["outputs"]["3"] == {"images": [{"filename": "v_00001_.mp4", "subfolder": "http",
                                                 "type": "output"}], "animated": [True]}
    r = srv.get("/api/view?filename=v_00001_.mp4&subfolder=http&type=output")
    assert r.status == 200
    decoded, rate, metadata = media.decode(r.body)
    assert decoded.shape[0] == 4 and rate == 8.0  # 0.5 s at 8 fps, from 1.0 s on
    assert (decoded - images[8:12]).abs().mean() < 0.04
    assert json.loads(metadata["prompt"])["2"]["class_type"] == "Video Slice"

    data = media.video_bytes(images)
    for bad, message in [(b"not a video at all", "not a readable video"),
                         (data[: len(data) // 3], "not a readable video")]:
        bad_name = _upload(srv, "bad.mp4", bad)
        entry = srv.wait_for_job(srv.post("/api/prompt", {"prompt": _graph(bad_name)}).json()["prompt_id"])
        assert entry["status"]["status_str"] == "error"
        error = _error_of(entry)
        assert error["node_type"] == "LoadVideo" and message in error["exception_message"]
    # the worker goes on
    r = srv.post("/api/prompt", {"prompt": _graph(name)})
    entry = srv.wait_for_job(r.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"]["3"]["images"][0]["filename"] == "v_00002_.mp4"


def test_an_interrupted_save_stops_and_leaves_no_partial_file(comfy_dirs, monkeypatch):
    from opencomfy.compat.comfy import model_management
    from opencomfy.engine.progress import Interrupted

    calls = []

    def interrupt_on_second_check():
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted("Processing interrupted")

    monkeypatch.setattr(model_management, "throw_exception_if_processing_interrupted",
                        interrupt_on_second_check)
    video = run(CreateVideo, images=media.frames(40), fps=8.0).args[0]
    with pytest.raises(Interrupted):
        run(SaveVideo, video=video, filename_prefix="stop", format="auto", codec="auto")
    assert len(calls) == 2  # checked every 16 frames, not after the whole video
    assert list((comfy_dirs / "output").iterdir()) == []
