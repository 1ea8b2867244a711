"""The CLIP tokenizer, built offline.

Real SD checkpoints do not carry their tokenizer. We look for CLIP's BPE files (``vocab.json``
and ``merges.txt``) in, in order: ``$OPENCOMFY_CLIP_TOKENIZER``, a ``clip_tokenizer`` folder in
any ``text_encoders`` model folder, and ``configs/clip_tokenizer`` inside this package. Without
them we fall back to CLIP's byte-level alphabet with no merges: the token ids of single
characters and the special tokens are CLIP's own, so the tiny test models work, but real
models then see every word spelled out letter by letter (a warning says so).
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
START_ID = 49406
END_ID = 49407


def byte_alphabet() -> list[str]:
    """The 256 printable characters CLIP's byte-level BPE uses for the bytes 0..255, in
    vocabulary order (printable Latin-1 first, the rest shifted above 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return [chr(c) for c in codes]


def byte_level_vocab() -> dict[str, int]:
    """The merge-free vocabulary: CLIP's first 512 entries and its two special tokens."""
    alphabet = byte_alphabet()
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(alphabet)})
    vocab[START_TOKEN] = START_ID
    vocab[END_TOKEN] = END_ID
    return vocab


def _tokenizer_dirs() -> list[str]:
    dirs = []
    if os.environ.get("OPENCOMFY_CLIP_TOKENIZER"):
        dirs.append(os.environ["OPENCOMFY_CLIP_TOKENIZER"])
    try:
        from opencomfy.compat import folder_paths
        dirs += [os.path.join(d, "clip_tokenizer") for d in folder_paths.get_folder_paths("text_encoders")]
    except KeyError:
        pass
    dirs.append(str(resources.files("opencomfy.diffusion").joinpath("configs", "clip_tokenizer")))
    return dirs


def find_bpe_files() -> tuple[str, str] | None:
    """(vocab.json, merges.txt) of the first folder that has both, or None."""
    for d in _tokenizer_dirs():
        vocab, merges = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
        if os.path.isfile(vocab) and os.path.isfile(merges):
            return vocab, merges
    return None


@lru_cache(maxsize=4)
def _load(files: tuple[str, str] | None):
    from transformers import CLIPTokenizer

    if files is None:
        log.warning("CLIP's BPE files (vocab.json, merges.txt) not found; prompts are tokenized "
                     "byte by byte, which only tiny test models expect. Put them in "
                     "models/text_encoders/clip_tokenizer/.")
        return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=77)
    with open(files[0], encoding="utf-8") as f:
        vocab = json.load(f)
    with open(files[1], encoding="utf-8") as f:
        merges = [line for line in f.read().split("\n")
                  if line.strip() and not line.startswith("#version")]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def clip_tokenizer():
    """A transformers ``CLIPTokenizer`` (padding with the end token, as SD 1.x expects)."""
    return _load(find_bpe_files())
