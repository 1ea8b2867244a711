"""The audio nodes: loading from files (audio and video), saving in every format, the maths
of volume/trim/concat/merge/split, bad input, and one graph over HTTP."""

from __future__ import annotations

import io
import json
import math

import av
import pytest
import torch

from opencomfy.compat.comfy_api.latest._audio import AudioDecodeError, load_audio, resample
from opencomfy.nodes.audio import (
    LoadAudio, PreviewAudio, RecordAudio, SaveAudio, SaveAudioAdvanced, SaveAudioMP3, SaveAudioOpus,
)
from opencomfy.nodes.audio_ops import (
    AudioAdjustVolume, AudioConcat, AudioMerge, ConditioningStableAudio, EmptyAudio,
    EmptyLatentAudio, SplitAudioChannels, TrimAudioDuration,
)
from tests.harness import Server, multipart
from tests.nodes import media
from tests.nodes.conftest import run_node

PROMPT = {"1": {"class_type": "SaveAudio"}}


def _probe(path) -> tuple[str, int, int, float, dict]:
    """(codec, sample rate, channels, seconds decoded, metadata) of an audio file."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        # Ogg keeps the tags on the stream (Vorbis comments), other formats on the file.
        tags = {k.lower(): v for k, v in [*container.metadata.items(), *stream.metadata.items()]}
        return (stream.codec_context.name, stream.codec_context.sample_rate,
                stream.codec_context.channels, samples / stream.codec_context.sample_rate, tags)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_load_audio_files(comfy_dirs, fmt):
    tone = media.sine(seconds=0.5, rate=22050)
    media.write_audio(comfy_dirs / "input" / f"tone.{fmt}", tone, container_format=fmt)
    assert f"tone.{fmt}" in LoadAudio.INPUT_TYPES()["required"]["audio"][0]
    (audio,) = run_node(LoadAudio, audio=f"tone.{fmt}")
    assert audio["sample_rate"] == 22050 and audio["waveform"].shape == (1, 2, 11025)
    assert audio["waveform"].dtype == torch.float32
    assert (audio["waveform"] - tone["waveform"]).abs().max() < 1e-3  # 16-bit quantisation


def test_load_audio_takes_the_sound_of_a_video(comfy_dirs):
    media.write_video(comfy_dirs / "input" / "clip.mp4", media.frames(8), audio=media.sine(1.0))
    assert "clip.mp4" in LoadAudio.INPUT_TYPES()["required"]["audio"][0]
    (audio,) = run_node(LoadAudio, audio="clip.mp4")
    assert audio["sample_rate"] == 44100 and audio["waveform"].shape[1] == 2
    assert abs(audio["waveform"].shape[-1] / 44100 - 1.0) < 0.06


def test_save_flac_round_trip_with_metadata(comfy_dirs):
    tone = media.sine(seconds=0.25, rate=44100)
    batch = {"waveform": torch.cat([tone["waveform"], -tone["waveform"]]), "sample_rate": 44100}
    out = run_node(SaveAudio, audio=batch, filename_prefix="audio/tone_%batch_num%", prompt=PROMPT,
                   extra_pnginfo={"workflow": {"id": 9}})
    assert out == {"ui": {"audio": [
        {"filename": "tone_0_00001_.flac", "subfolder": "audio", "type": "output"},
        {"filename": "tone_1_00002_.flac", "subfolder": "audio", "type": "output"}]}}
    path = comfy_dirs / "output" / "audio" / "tone_1_00002_.flac"
    codec, rate, channels, seconds, tags = _probe(path)
    assert (codec, rate, channels, seconds) == ("flac", 44100, 2, 0.25)
    assert json.loads(tags["prompt"]) == PROMPT and json.loads(tags["workflow"]) == {"id": 9}
    back = load_audio(str(path))
    assert (back["waveform"][0] + tone["waveform"][0]).abs().max() < 1e-3


@pytest.mark.parametrize("node,quality,codec,rate", [
    (SaveAudioMP3, "V0", "mp3", 44100), (SaveAudioMP3, "128k", "mp3", 44100),
    (SaveAudioOpus, "64k", "opus", 48000),  # 44.1 kHz in: Opus takes 48 kHz
])
def test_lossy_savers(comfy_dirs, node, quality, codec, rate):
    out = run_node(node, audio=media.sine(seconds=1.0, channels=1), filename_prefix="lossy",
                   quality=quality, prompt=PROMPT)
    (entry,) = out["ui"]["audio"]
    found_codec, found_rate, channels, seconds, tags = _probe(comfy_dirs / "output" / entry["filename"])
    assert found_codec.startswith(codec) and (found_rate, channels) == (rate, 1)
    assert abs(seconds - 1.0) < 0.1 and json.loads(tags["prompt"]) == PROMPT


def test_save_audio_advanced_passes_the_audio_on(comfy_dirs):
    tone = media.sine(seconds=0.5)
    out = SaveAudioAdvanced.PREPARE_CLASS_CLONE({"prompt": PROMPT}).execute(
        audio=tone, filename_prefix="adv", format={"format": "opus", "quality": "96k"})
    assert out.args[0] is tone
    (entry,) = out.ui["audio"]
    assert entry["filename"] == "adv_00001_.opus" and entry["type"] == "output"
    assert _probe(comfy_dirs / "output" / "adv_00001_.opus")[:3] == ("opus", 48000, 2)


def test_preview_audio_goes_to_temp(comfy_dirs):
    out = run_node(PreviewAudio, audio=media.sine(seconds=0.1))
    (entry,) = out["ui"]["audio"]
    assert entry["type"] == "temp" and "_temp_" in entry["filename"]
    assert (comfy_dirs / "temp" / entry["filename"]).exists()


def test_record_audio_reads_the_uploaded_recording(comfy_dirs):
    media.write_audio(comfy_dirs / "input" / "rec.wav", media.sine(0.2, channels=1))
    (audio,) = run_node(RecordAudio, audio="rec.wav")
    assert audio["waveform"].shape == (1, 1, 8820)
    with pytest.raises(ValueError, match="nothing was recorded"):
        run_node(RecordAudio, audio="")


def test_bad_audio_input_is_a_clear_error(comfy_dirs):
    inp = comfy_dirs / "input"
    (inp / "noise.wav").write_bytes(b"RIFF garbage, not a wave file")
    media.write_video(inp / "silent.mp4", media.frames(4))
    flac = media.audio_bytes(media.sine(1.0), container_format="flac")
    (inp / "cut.flac").write_bytes(flac[:200])
    for name, message in [("noise.wav", "not a readable audio file"),
                          ("silent.mp4", "has no audio stream"),
                          ("cut.flac", "(no audio samples|not a readable audio file)")]:
        with pytest.raises(AudioDecodeError, match=message):
            run_node(LoadAudio, audio=name)
    assert LoadAudio.VALIDATE_INPUTS("nope.wav") == "Invalid audio file: nope.wav"
    with pytest.raises(ValueError, match="no audio to save"):
        run_node(SaveAudio, audio=None, filename_prefix="x")


# --- maths ---------------------------------------------------------------------------------

def test_empty_audio_and_volume():
    (silence,) = run_node(EmptyAudio, duration=0.5, sample_rate=8000, channels=1)
    assert silence["waveform"].shape == (1, 1, 4000) and silence["waveform"].abs().max() == 0
    tone = media.sine(0.1)
    (louder,) = run_node(AudioAdjustVolume, audio=tone, volume=6)
    assert torch.allclose(louder["waveform"], tone["waveform"] * 10 ** (6 / 20))
    (quieter,) = run_node(AudioAdjustVolume, audio=tone, volume=-20)
    assert torch.allclose(quieter["waveform"], tone["waveform"] * 0.1)
    assert run_node(AudioAdjustVolume, audio=tone, volume=0)[0] is tone


def test_trim_audio_duration():
    clip = {"waveform": torch.arange(1000.0).reshape(1, 1, 1000), "sample_rate": 100}  # 10 s
    (part,) = run_node(TrimAudioDuration, audio=clip, start_index=2.0, duration=3.0)
    assert part["waveform"][0, 0].tolist() == list(range(200, 500))
    (tail,) = run_node(TrimAudioDuration, audio=clip, start_index=-1.5, duration=60.0)
    assert tail["waveform"][0, 0].tolist() == list(range(850, 1000))
    with pytest.raises(ValueError, match="range is empty"):
        run_node(TrimAudioDuration, audio=clip, start_index=3.0, duration=0.0)


def test_concat_duplicates_mono_and_matches_rates():
    stereo = media.sine(0.5, rate=44100)
    mono = media.sine(0.25, rate=22050, channels=1)
    (after,) = run_node(AudioConcat, audio1=stereo, audio2=mono, direction="after")
    assert after["sample_rate"] == 44100
    assert after["waveform"].shape[:2] == (1, 2)
    assert abs(after["waveform"].shape[-1] - (22050 + 11025)) <= 64
    assert torch.equal(after["waveform"][..., :22050], stereo["waveform"])
    (before,) = run_node(AudioConcat, audio1=stereo, audio2=mono, direction="before")
    assert torch.equal(before["waveform"][..., -22050:], stereo["waveform"])
    second = after["waveform"][0, :, 22050:]
    assert torch.allclose(second[0], second[1])  # the mono clip copied into both channels


def test_resample_keeps_the_tone():
    low = media.sine(0.5, rate=22050, channels=1, freq=440)
    up = resample(low["waveform"], 22050, 44100)
    expected = media.sine(0.5, rate=44100, channels=1, freq=440)["waveform"]
    n = min(up.shape[-1], expected.shape[-1])
    assert abs(up.shape[-1] - 22050) <= 64
    # away from the filter's edges the resampled tone follows the true one closely
    assert (up[..., 200:n - 200] - expected[..., 200:n - 200]).abs().max() < 0.02


def test_merge_methods():
    a = {"waveform": torch.full((1, 1, 4), 0.25), "sample_rate": 10}
    b = {"waveform": torch.tensor([[[0.5, 0.5]]]), "sample_rate": 10}  # padded with zeros
    expected = {"add": [0.75, 0.75, 0.25, 0.25], "mean": [0.375, 0.375, 0.125, 0.125],
                "subtract": [-0.25, -0.25, 0.25, 0.25], "multiply": [0.125, 0.125, 0.0, 0.0]}
    for method, values in expected.items():
        (out,) = run_node(AudioMerge, audio1=a, audio2=b, merge_method=method)
        assert out["waveform"][0, 0].tolist() == values, method
    loud = {"waveform": torch.tensor([[[0.8, -0.9, 0.1, 0.0, 0.3]]]), "sample_rate": 10}
    (out,) = run_node(AudioMerge, audio1=loud, audio2=loud, merge_method="add")
    assert out["waveform"].abs().max() == 1.0  # peak-normalised instead of clipping
    assert out["waveform"].shape[-1] == 5


def test_split_channels():
    (left, right) = run_node(SplitAudioChannels, audio=media.sine(0.1))
    assert left["waveform"].shape[1] == right["waveform"].shape[1] == 1
    assert torch.allclose(right["waveform"] * 2, left["waveform"])
    with pytest.raises(ValueError, match="needs 2 channels"):
        run_node(SplitAudioChannels, audio=media.sine(0.1, channels=1))


def test_stable_audio_helpers():
    (latent,) = run_node(EmptyLatentAudio, seconds=47.6, batch_size=2)
    assert latent["type"] == "audio" and latent["samples"].shape == (2, 64, 1024)
    assert math.isclose(latent["samples"].abs().sum(), 0)
    cond = [[torch.zeros(1, 2, 4), {"pooled_output": None}]]
    positive, negative = run_node(ConditioningStableAudio, positive=cond, negative=cond,
                                  seconds_start=1.5, seconds_total=30.0)
    assert positive[0][1]["seconds_start"] == 1.5 and negative[0][1]["seconds_total"] == 30.0
    assert "seconds_start" not in cond[0][1]  # the input is left as it was


# --- over HTTP -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(base_dir=tmp_path_factory.mktemp("audio-server")).start()
    yield server
    server.stop()


def _upload(srv, name: str, data: bytes) -> str:
    body, content_type = multipart({}, {"image": (name, data)})
    r = srv.request("POST", "/api/upload/image", data=body, headers={"Content-Type": content_type})
    assert r.status == 200, r.body
    return r.json()["name"]


def _graph(name: str) -> dict:
    return {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": name}},
        "2": {"class_type": "AudioAdjustVolume", "inputs": {"audio": ["1", 0], "volume": -6}},
        "3": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["2", 0], "start_index": 0.25,
                                                            "duration": 0.5}},
        "4": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "http/a"}},
        "5": {"class_type": "SaveAudioAdvanced", "inputs": {
            "audio": ["3", 0], "filename_prefix": "http/adv", "format": "mp3",
            "format.quality": "128k"}},
    }


def test_audio_graph_over_http_and_a_bad_file_fails_only_its_job(srv):
    tone = media.sine(seconds=1.0, rate=16000)
    name = _upload(srv, "tone.wav", media.audio_bytes(tone))
    entry = srv.wait_for_job(srv.post("/api/prompt", {"prompt": _graph(name)}).json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry
    assert entry["outputs"]["4"] == {"audio": [{"filename": "a_00001_.flac", "subfolder": "http",
                                                "type": "output"}]}
    assert entry["outputs"]["5"]["audio"][0]["filename"] == "adv_00001_.mp3"
    r = srv.get("/api/view?filename=a_00001_.flac&subfolder=http&type=output")
    assert r.status == 200
    saved = load_audio(io.BytesIO(r.body))
    assert saved["sample_rate"] == 16000 and saved["waveform"].shape == (1, 2, 8000)
    expected = tone["waveform"][..., 4000:12000] * 10 ** (-6 / 20)
    assert (saved["waveform"] - expected).abs().max() < 1e-3
    r = srv.get("/api/view?filename=adv_00001_.mp3&subfolder=http&type=output")
    assert r.status == 200 and len(r.body) > 1000

    bad = _upload(srv, "bad.wav", b"definitely not audio")
    entry = srv.wait_for_job(srv.post("/api/prompt", {"prompt": _graph(bad)}).json()["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    error = next(d for e, d in entry["status"]["messages"] if e == "execution_error")
    assert error["node_type"] == "LoadAudio"
    assert "not a readable audio file" in error["exception_message"]
    entry = srv.wait_for_job(srv.post("/api/prompt", {"prompt": _graph(name)}).json()["prompt_id"])
    assert entry["status"]["status_str"] == "success"
