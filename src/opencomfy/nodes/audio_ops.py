"""ComfyUI's model-free audio maths (``comfy_extras/nodes_audio.py``): EmptyAudio, AudioConcat,
AudioMerge, AudioAdjustVolume, TrimAudioDuration, SplitAudioChannels, and the two Stable
Audio helpers that need no model (EmptyLatentAudio, ConditioningStableAudio).

Waveforms are ``[batch, channels, samples]`` float tensors; two clips of different sample
rates are brought to the higher rate first (libswresample, through compat's ``_audio``).
"""

from __future__ import annotations

import logging

import torch

from opencomfy.compat import node_helpers
from opencomfy.compat.comfy import model_management
from opencomfy.compat.comfy_api.latest._audio import resample

log = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_audio"
_U64 = 0xFFFFFFFFFFFFFFFF


def _audio(waveform: torch.Tensor, sample_rate: int) -> dict:
    return {"waveform": waveform, "sample_rate": sample_rate}


def _same_rate(audio1: dict, audio2: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Both waveforms at the higher of the two sample rates."""
    w1, r1 = audio1["waveform"], int(audio1["sample_rate"])
    w2, r2 = audio2["waveform"], int(audio2["sample_rate"])
    if r1 > r2:
        log.info("resampling audio2 from %d Hz to %d Hz", r2, r1)
        return w1, resample(w2, r2, r1), r1
    if r2 > r1:
        log.info("resampling audio1 from %d Hz to %d Hz", r1, r2)
        return resample(w1, r1, r2), w2, r2
    return w1, w2, r1


class EmptyAudio:
    """Silence of a given length, rate and channel count."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "duration": ("FLOAT", {"default": 60.0, "min": 0.0, "max": _U64, "step": 0.01,
                                   "tooltip": "Length in seconds."}),
            "sample_rate": ("INT", {"default": 44100, "tooltip": "Samples per second."}),
            "channels": ("INT", {"default": 2, "min": 1, "max": 2,
                                 "tooltip": "1 for mono, 2 for stereo."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "create_empty_audio"
    CATEGORY = "audio"

    def create_empty_audio(self, duration, sample_rate, channels):
        if sample_rate <= 0:
            raise ValueError("EmptyAudio: the sample rate must be positive")
        samples = int(round(duration * sample_rate))
        return (_audio(torch.zeros((1, channels, samples), dtype=torch.float32), sample_rate),)


class AudioConcat:
    """One clip after (or before) the other; mono clips become stereo first."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio1": ("AUDIO",),
            "audio2": ("AUDIO",),
            "direction": (["after", "before"], {"default": "after",
                                                "tooltip": "Where audio2 goes relative to audio1."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "concat"
    CATEGORY = "audio"
    DESCRIPTION = "Joins two clips end to end."

    def concat(self, audio1, audio2, direction):
        w1, w2, rate = _same_rate(audio1, audio2)
        # Mono is duplicated to stereo, as ComfyUI does, so the two always stack.
        if w1.shape[1] == 1:
            w1 = w1.repeat(1, 2, 1)
        if w2.shape[1] == 1:
            w2 = w2.repeat(1, 2, 1)
        parts = (w1, w2) if direction == "after" else (w2, w1)
        return (_audio(torch.cat(parts, dim=2), rate),)


class AudioMerge:
    """Two clips laid over each other (audio2 is cut or padded to audio1's length)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio1": ("AUDIO",),
            "audio2": ("AUDIO",),
            "merge_method": (["add", "mean", "subtract", "multiply"],
                             {"tooltip": "How the two waveforms combine, sample by sample."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "merge"
    CATEGORY = "audio"
    DESCRIPTION = "Overlays two clips; the result is scaled down if it would clip."

    def merge(self, audio1, audio2, merge_method):
        w1, w2, rate = _same_rate(audio1, audio2)
        length = w1.shape[-1]
        if w2.shape[-1] > length:
            w2 = w2[..., :length]
        elif w2.shape[-1] < length:
            pad = torch.zeros((*w2.shape[:-1], length - w2.shape[-1]), dtype=w2.dtype, device=w2.device)
            w2 = torch.cat((w2, pad), dim=-1)
        if merge_method == "add":
            merged = w1 + w2
        elif merge_method == "subtract":
            merged = w1 - w2
        elif merge_method == "multiply":
            merged = w1 * w2
        elif merge_method == "mean":
            merged = (w1 + w2) / 2
        else:
            raise ValueError(f"AudioMerge: unknown merge method {merge_method!r}")
        peak = merged.abs().max() if merged.numel() else torch.tensor(0.0)
        if peak > 1.0:
            merged = merged / peak
        return (_audio(merged, rate),)


class AudioAdjustVolume:
    """Louder or quieter by a number of decibels (+6 dB roughly doubles the amplitude)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio": ("AUDIO",),
            "volume": ("INT", {"default": 1.0, "min": -100, "max": 100,
                               "tooltip": "Gain in decibels; 0 leaves the clip as it is."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "adjust_volume"
    CATEGORY = "audio"

    def adjust_volume(self, audio, volume):
        if volume == 0:
            return (audio,)
        gain = 10 ** (volume / 20)
        return (_audio(audio["waveform"] * gain, audio["sample_rate"]),)


class TrimAudioDuration:
    """A time range of a clip; a negative start counts back from the end."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "audio": ("AUDIO",),
            "start_index": ("FLOAT", {"default": 0.0, "min": -_U64, "max": _U64, "step": 0.01,
                                      "tooltip": "Start in seconds (negative: from the end)."}),
            "duration": ("FLOAT", {"default": 60.0, "min": 0.0, "step": 0.01,
                                   "tooltip": "Length in seconds."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "trim"
    CATEGORY = "audio"
    DESCRIPTION = "Cuts a clip down to a time range."

    def trim(self, audio, start_index, duration):
        waveform, rate = audio["waveform"], audio["sample_rate"]
        length = waveform.shape[-1]
        start = int(round(start_index * rate))
        if start_index < 0:
            start += length
        start = max(0, min(start, length - 1))
        end = max(0, min(start + int(round(duration * rate)), length))
        if start >= end:
            raise ValueError("TrimAudioDuration: the range is empty; the start must lie inside "
                             f"the {length / rate:.3f}s clip and the duration be above 0")
        return (_audio(waveform[..., start:end], rate),)


class SplitAudioChannels:
    """A stereo clip as two mono clips."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("AUDIO",)}}

    RETURN_TYPES = ("AUDIO", "AUDIO")
    RETURN_NAMES = ("left", "right")
    FUNCTION = "separate"
    CATEGORY = "audio"
    DESCRIPTION = "Splits a stereo clip into its left and right channels."

    def separate(self, audio):
        waveform, rate = audio["waveform"], audio["sample_rate"]
        if waveform.shape[1] != 2:
            raise ValueError(f"SplitAudioChannels: needs 2 channels, the clip has {waveform.shape[1]}")
        return (_audio(waveform[:, 0:1], rate), _audio(waveform[:, 1:2], rate))


class EmptyLatentAudio:
    """A zero latent for Stable Audio (64 channels, about 21.5 latent frames a second)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seconds": ("FLOAT", {"default": 47.6, "min": 1.0, "max": 1000.0, "step": 0.1}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096,
                                   "tooltip": "How many latents in the batch."}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "generate"
    CATEGORY = "latent/audio"

    def generate(self, seconds, batch_size):
        # 44.1 kHz audio, 2048 samples per latent frame, rounded to an even count.
        length = round((seconds * 44100 / 2048) / 2) * 2
        latent = torch.zeros([batch_size, 64, length], device=model_management.intermediate_device())
        return ({"samples": latent, "type": "audio"},)


class ConditioningStableAudio:
    """Stable Audio's timing conditioning: where the clip starts and how long it is."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "seconds_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.1}),
            "seconds_total": ("FLOAT", {"default": 47.0, "min": 0.0, "max": 1000.0, "step": 0.1}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, positive, negative, seconds_start, seconds_total):
        values = {"seconds_start": seconds_start, "seconds_total": seconds_total}
        return (node_helpers.conditioning_set_values(positive, values),
                node_helpers.conditioning_set_values(negative, values))


NODES = [
    ("EmptyAudio", EmptyAudio, "Empty Audio", PYTHON_MODULE),
    ("AudioConcat", AudioConcat, "Audio Concat", PYTHON_MODULE),
    ("AudioMerge", AudioMerge, "Audio Merge", PYTHON_MODULE),
    ("AudioAdjustVolume", AudioAdjustVolume, "Audio Adjust Volume", PYTHON_MODULE),
    ("TrimAudioDuration", TrimAudioDuration, "Trim Audio Duration", PYTHON_MODULE),
    ("SplitAudioChannels", SplitAudioChannels, "Split Audio Channels", PYTHON_MODULE),
    ("EmptyLatentAudio", EmptyLatentAudio, "Empty Latent Audio", PYTHON_MODULE),
    ("ConditioningStableAudio", ConditioningStableAudio, "ConditioningStableAudio", PYTHON_MODULE),
]
