"""The CLIP object: tokenize a prompt with ComfyUI's weights and chunking, encode it.

ComfyUI's rules, reproduced here:
- the prompt is split into weighted runs (:mod:`prompt_weights`), each run into words;
- tokens go into chunks of 75 between a start and an end token, padded to 77 (with the end
  token for CLIP-L, with token 0 for SDXL's OpenCLIP-G); a word of up to 8 tokens that does not
  fit moves whole to the next chunk;
- chunks are encoded separately and concatenated along the token axis (long prompts);
- a token with weight w != 1 becomes ``empty + (z - empty) * w`` where ``empty`` is the
  encoding of the empty prompt at the same position;
- ``CLIPSetLastLayer(-n)`` takes the output of the n-th layer from the end; SD 1.x then applies
  the final layer norm, SDXL does not (and uses -2 by default);
- SDXL concatenates CLIP-L and OpenCLIP-G features; its pooled output is OpenCLIP-G's
  projected end-token embedding.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from opencomfy.diffusion.prompt_weights import parse_weighted_prompt
from opencomfy.diffusion.tokenizer import END_ID, START_ID

CHUNK_TOKENS = 75
MAX_WORD_TOKENS = 8

Token = tuple[object, float]   # (token id or EmbeddingToken, weight)


def chunk_tokens(words: list[list[Token]], *, chunk: int = CHUNK_TOKENS, pad_id: int = END_ID
                 ) -> list[list[Token]]:
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
        row += [(pad_id, 1.0)] * (chunk + 2 - len(row))
        padded.append(row)
    return padded


@dataclass
class ClipPart:
    """One text tower: its key in token dicts ("l", "g"), model and conventions."""

    key: str
    model: torch.nn.Module   # a transformers CLIPTextModel or CLIPTextModelWithProjection
    pad_id: int = END_ID
    norm_hidden: bool = True          # apply the final layer norm to a chosen hidden layer
    lora_prefixes: tuple[str, ...] = ("lora_te_",)


class TextEncoder:
    """ComfyUI's CLIP: tokenizer, one or two CLIP text towers, the layer to stop at, LoRAs."""

    def __init__(self, *, parts: list[ClipPart], tokenizer, layer_idx: int = -1,
                 pooled_from: str = "l"):
        self.parts = parts
        self.tokenizer = tokenizer
        self.layer_idx = layer_idx      # -1 = last layer; -2 = the one before it, ...
        self.pooled_from = pooled_from
        self.patches: list = []         # (LoraPatch, strength), applied while encoding

    @property
    def model(self):
        """The first (CLIP-L) tower."""
        return self.parts[0].model

    def modules(self):
        return [p.model for p in self.parts]

    def clone(self) -> "TextEncoder":
        other = copy.copy(self)
        other.patches = list(self.patches)
        return other

    def clip_layer(self, layer_idx: int) -> None:
        self.layer_idx = layer_idx

    # -- tokens -------------------------------------------------------------------------------
    def tokenize(self, text: str, return_word_ids: bool = False) -> dict[str, list[list[Token]]]:
        """``{"l": chunks[, "g": chunks]}``, each chunk 77 ``(token id, weight)`` pairs."""
        from opencomfy.diffusion.embeddings import PREFIX, EmbeddingToken, load_embedding

        words: list[list[Token]] = []
        for run, weight in parse_weighted_prompt(text):
            for word in run.split(" "):
                if not word:
                    continue
                if word.startswith(PREFIX):
                    name = word[len(PREFIX):].strip("\n")
                    vectors = load_embedding(name)
                    if vectors is not None:
                        words.append([(EmbeddingToken(name, i, vectors), weight) for i in range(vectors.count)])
                    continue
                ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
                if ids:
                    words.append([(i, weight) for i in ids])
        return {p.key: chunk_tokens(words, pad_id=p.pad_id) for p in self.parts}

    # -- encoding -----------------------------------------------------------------------------
    def _encode_part(self, part: ClipPart, rows: list[list], device):
        model = part.model
        # The CLIP text transformer; nn.Module types its submodules loosely, hence Any.
        transformer: Any = getattr(model, "text_model", model)
        token_embedding = transformer.embeddings.token_embedding
        width = token_embedding.weight.shape[1]
        injected = []          # (row, position, vector) for embedding tokens
        for r, row in enumerate(rows):
            for i, token in enumerate(row):
                if not isinstance(token, int):
                    vector = token.vector(part.key, width)
                    if vector is not None:
                        injected.append((r, i, vector))
                    row[i] = 0 if vector is not None else part.pad_id
        ids = torch.tensor(rows, dtype=torch.long, device=device)
        hook = None
        if injected:
            def inject(_module, _inputs, output):
                output = output.clone()
                for r, i, vector in injected:
                    output[r, i] = vector.to(output.device, output.dtype)
                return output
            hook = token_embedding.register_forward_hook(inject)
        last = self.layer_idx == -1 and part.norm_hidden
        try:
            out = model(input_ids=ids, output_hidden_states=not last)
        finally:
            if hook is not None:
                hook.remove()
        if last:
            hidden = out.last_hidden_state
        else:
            hidden = out.hidden_states[self.layer_idx]
            if part.norm_hidden:
                hidden = transformer.final_layer_norm(hidden)
        pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        return hidden.float().cpu(), pooled.float().cpu()

    def encode_from_tokens(self, tokens: dict, return_pooled: bool = False, return_dict: bool = False):
        """Encode chunks; ``cond [1, 77*n, dim]``, ``(cond, pooled [1, dim])`` or a dict."""
        cond, pooled_out = self._encode_tokens(tokens)
        if return_dict:
            return {"cond": cond, "pooled_output": pooled_out}
        if return_pooled:
            return cond, pooled_out
        return cond

    def _encode_tokens(self, tokens: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(cond, pooled)``; pooled is None unless the part it comes from is present."""
        from opencomfy.diffusion.memory import models_in_use

        features, pooled_out = [], None
        with models_in_use(self) as device:
            for part in self.parts:
                chunks = tokens[part.key]
                weighted = any(w != 1.0 for chunk in chunks for _, w in chunk)
                rows = [[t for t, _ in chunk] for chunk in chunks]
                if weighted:
                    rows.append([t for t, _ in chunk_tokens([], pad_id=part.pad_id)[0]])
                hidden, pooled = self._encode_part(part, rows, device)
                if weighted:
                    empty = hidden[-1]
                    hidden = hidden[:-1].clone()
                    for c, chunk in enumerate(chunks):
                        for i, (_, w) in enumerate(chunk):
                            if w != 1.0:
                                hidden[c, i] = (hidden[c, i] - empty[i]) * w + empty[i]
                features.append(hidden.reshape(1, -1, hidden.shape[-1]))
                if part.key == self.pooled_from:
                    pooled_out = pooled[:1]
        cond = torch.cat(features, dim=-1) if len(features) > 1 else features[0]
        return cond, pooled_out

    def encode(self, text: str) -> torch.Tensor:
        return self._encode_tokens(self.tokenize(text))[0]

    def __repr__(self) -> str:
        return f"<CLIP {'+'.join(p.key for p in self.parts)} layer={self.layer_idx}>"


def lcm_length(lengths) -> int:
    """The least common multiple of token lengths (conds are repeated up to it to batch)."""
    out = 1
    for n in lengths:
        out = out * n // math.gcd(out, n)
    return out
