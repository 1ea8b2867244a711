"""The CLIP tokenizer, built offline from the BPE merges shipped in this package.

Real SD checkpoints do not carry their tokenizer. CLIP's vocabulary is fully determined by its
BPE merge list: the 256 byte characters, the same with ``</w>``, one token per merge, then
``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407). We ship the first 48,894 merges of
CLIP's ``bpe_simple_vocab_16e6`` (MIT licence, see ``configs/clip_tokenizer/LICENSE``) as
``configs/clip_tokenizer/merges.txt.gz`` (200 KB) and build the vocabulary from it.

A folder with a Hugging Face style ``vocab.json`` and ``merges.txt`` can replace it:
``$OPENCOMFY_CLIP_TOKENIZER`` or a ``clip_tokenizer`` folder in a ``text_encoders`` model folder.
"""

from __future__ import annotations

import gzip
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
MAX_LENGTH = 77


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


def vocab_from_merges(merges: list[str]) -> dict[str, int]:
    """CLIP's vocabulary: bytes, bytes + ``</w>``, one token per merge, the two specials."""
    alphabet = byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in merges]
    vocab = {t: i for i, t in enumerate(tokens)}
    vocab[START_TOKEN] = START_ID
    vocab[END_TOKEN] = END_ID
    return vocab


def _override_dirs() -> list[str]:
    dirs = []
    if os.environ.get("OPENCOMFY_CLIP_TOKENIZER"):
        dirs.append(os.environ["OPENCOMFY_CLIP_TOKENIZER"])
    try:
        from opencomfy.compat import folder_paths
        dirs += [os.path.join(d, "clip_tokenizer") for d in folder_paths.get_folder_paths("text_encoders")]
    except KeyError:
        pass
    return dirs


def find_override_files() -> tuple[str, str] | None:
    """(vocab.json, merges.txt) of the first override folder that has both, or None."""
    for d in _override_dirs():
        vocab, merges = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
        if os.path.isfile(vocab) and os.path.isfile(merges):
            return vocab, merges
    return None


def _merge_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip() and not line.startswith("#version")]


def bundled_merges() -> list[str]:
    data = resources.files("opencomfy.diffusion").joinpath("configs", "clip_tokenizer",
                                                          "merges.txt.gz").read_bytes()
    return _merge_lines(gzip.decompress(data).decode("utf-8"))


@lru_cache(maxsize=4)
def _load(files: tuple[str, str] | None):
    from transformers import CLIPTokenizer

    if files is None:
        merges = bundled_merges()
        vocab = vocab_from_merges(merges)
    else:
        with open(files[0], encoding="utf-8") as f:
            vocab = json.load(f)
        with open(files[1], encoding="utf-8") as f:
            merges = _merge_lines(f.read())
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    # transformers annotates merges as list[str], but hands them to tokenizers' BPE, which takes
    # (left, right) pairs.
    return CLIPTokenizer(vocab=vocab, merges=pairs,  # type: ignore[arg-type]  (annotation is wrong)
                         model_max_length=MAX_LENGTH)


def clip_tokenizer():
    """A transformers ``CLIPTokenizer`` (padding with the end token, as SD 1.x expects)."""
    return _load(find_override_files())
