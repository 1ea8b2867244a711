"""The CLIP object: tokenize a prompt with ComfyUI's weights and chunking, encode it.

ComfyUI's rules, reproduced here:
- the prompt is split into weighted runs (:mod:`prompt_weights`), each run into words;
- tokens go into chunks of 75 between a start and an end token, padded to 77 with the end
  token; a word of up to 8 tokens that does not fit moves whole to the next chunk;
- chunks are encoded separately and concatenated along the token axis (long prompts);
- a token with weight w != 1 becomes ``empty + (z - empty) * w`` where ``empty`` is the
  encoding of the empty prompt at the same position;
- ``CLIPSetLastLayer(-n)`` takes the output of the n-th layer from the end, then the final
  layer norm (SD 1.x).
"""

from __future__ import annotations

import copy
import math

import torch

from opencomfy.diffusion.prompt_weights import parse_weighted_prompt
from opencomfy.diffusion.tokenizer import END_ID, START_ID

CHUNK_TOKENS = 75
MAX_WORD_TOKENS = 8

Token = tuple[int, float]


def chunk_tokens(words: list[list[Token]], *, chunk: int = CHUNK_TOKENS) -> list[list[Token]]:
    """Pack the words' tokens into chunks of ``chunk + 2`` tokens (start, tokens, end, padding)."""
    chunks: list[list[Token]] = []
    current: list[Token] = []
    for word in words:
        word = list(word)
        while word:
            room = chunk - len(current)
            if len(word) <= room:
                current.extend(word)
                word = []
            elif len(word) > MAX_WORD_TOKENS:   # a long word is split where the chunk ends
                current.extend(word[:room])
                word = word[room:]
                chunks.append(current)
                current = []
            else:                               # a short word moves whole to the next chunk
                chunks.append(current)
                current = []
    if current or not chunks:
        chunks.append(current)
    padded = []
    for c in chunks:
        row = [(START_ID, 1.0), *c, (END_ID, 1.0)]
        row += [(END_ID, 1.0)] * (chunk + 2 - len(row))
        padded.append(row)
    return padded


class TextEncoder:
    """ComfyUI's CLIP: a tokenizer, a CLIP text model, the layer to stop at, LoRA patches."""

    def __init__(self, *, model, tokenizer, device_manager=None, layer_idx: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.layer_idx = layer_idx      # None = last layer; -2 = the one before it, ...
        self.patches: list = []         # (LoRA weights, strength) applied while encoding
        self.device_manager = device_manager

    def clone(self) -> "TextEncoder":
        other = copy.copy(self)
        other.patches = list(self.patches)
        return other

    def module(self):
        return self.model

    def clip_layer(self, layer_idx: int) -> None:
        self.layer_idx = None if layer_idx == -1 else layer_idx

    # -- tokens -------------------------------------------------------------------------------
    def tokenize(self, text: str, return_word_ids: bool = False) -> dict[str, list[list[Token]]]:
        """``{"l": chunks}``, each chunk a list of 77 ``(token id, weight)`` pairs."""
        words: list[list[Token]] = []
        for run, weight in parse_weighted_prompt(text):
            for word in run.split(" "):
                if not word:
                    continue
                ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
                if ids:
                    words.append([(i, weight) for i in ids])
        return {"l": chunk_tokens(words)}

    # -- encoding -----------------------------------------------------------------------------
    def _hidden(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        out = model(input_ids=ids, output_hidden_states=self.layer_idx is not None)
        if self.layer_idx is None:
            hidden = out.last_hidden_state
        else:
            body = getattr(model, "text_model", model)
            hidden = body.final_layer_norm(out.hidden_states[self.layer_idx])
        return hidden, out.pooler_output

    def encode_from_tokens(self, tokens: dict, return_pooled: bool = False, return_dict: bool = False):
        """Encode chunks; ``(cond [1, 77*n, dim], pooled [1, dim])`` or a dict."""
        from opencomfy.diffusion.memory import models_in_use

        chunks = tokens["l"]
        weighted = any(w != 1.0 for chunk in chunks for _, w in chunk)
        rows = [[t for t, _ in chunk] for chunk in chunks]
        if weighted:
            rows.append([t for t, _ in chunk_tokens([])[0]])
        with models_in_use(self) as device:
            ids = torch.tensor(rows, dtype=torch.long, device=device)
            hidden, pooled = self._hidden(ids)
        hidden = hidden.float().cpu()
        pooled = pooled.float().cpu()
        if weighted:
            empty = hidden[-1]
            hidden = hidden[:-1].clone()
            for c, chunk in enumerate(chunks):
                for i, (_, w) in enumerate(chunk):
                    if w != 1.0:
                        hidden[c, i] = (hidden[c, i] - empty[i]) * w + empty[i]
        cond = hidden.reshape(1, -1, hidden.shape[-1])
        first_pooled = pooled[:1]
        if return_dict:
            return {"cond": cond, "pooled_output": first_pooled}
        if return_pooled:
            return cond, first_pooled
        return cond

    def encode(self, text: str) -> torch.Tensor:
        return self.encode_from_tokens(self.tokenize(text))

    def __repr__(self) -> str:
        return f"<CLIP layer={self.layer_idx or -1}>"


def lcm_length(lengths) -> int:
    """The least common multiple of token lengths (conds are repeated up to it to batch)."""
    out = 1
    for n in lengths:
        out = out * n // math.gcd(out, n)
    return out
