"""CLIPTextEncode: ComfyUI's prompt weighting, chunking of long prompts, CLIPSetLastLayer."""

from __future__ import annotations

import pytest
import torch

from opencomfy.diffusion.prompt_weights import parse_weighted_prompt
from opencomfy.diffusion.text_encoder import chunk_tokens
from opencomfy.diffusion.tokenizer import END_ID, START_ID
from opencomfy.nodes.diffusion_conditioning import CLIPTextEncode
from opencomfy.nodes.diffusion_loaders import CLIPSetLastLayer


@pytest.mark.parametrize("text, expected", [
    ("a cat", [("a cat", 1.0)]),
    ("a (red) cat", [("a ", 1.0), ("red", 1.1), (" cat", 1.0)]),
    ("((red))", [("red", pytest.approx(1.21))]),
    ("(red:1.5) cat", [("red", 1.5), (" cat", 1.0)]),
    ("((red:0.5) big)", [("red", 0.5), (" big", pytest.approx(1.1))]),
    ("(a:b:2)", [("a:b", 2.0)]),
    ("(a:x)", [("a:x", pytest.approx(1.1))]),
    ("\\(not weighted\\)", [("(not weighted)", 1.0)]),
    ("open (end", [("open ", 1.0), ("(end", 1.0)]),
])
def test_weight_syntax(text, expected):
    assert parse_weighted_prompt(text) == expected


def test_chunks_are_77_tokens_with_start_end_and_end_padding():
    [chunk] = chunk_tokens([[(5, 1.0)], [(6, 1.2)]])
    assert len(chunk) == 77
    assert chunk[:4] == [(START_ID, 1.0), (5, 1.0), (6, 1.2), (END_ID, 1.0)]
    assert all(t == (END_ID, 1.0) for t in chunk[4:])


def test_a_short_word_that_does_not_fit_moves_to_the_next_chunk():
    words = [[(1, 1.0)]] * 73 + [[(2, 1.0)] * 3]
    first, second = chunk_tokens(words)
    assert [t for t, _ in first[1:74]] == [1] * 73 and first[74][0] == END_ID
    assert [t for t, _ in second[1:4]] == [2, 2, 2]


def test_long_prompt_encodes_to_two_chunks(tiny_models):
    _, clip, _ = tiny_models
    cond = CLIPTextEncode().encode(clip, "x " * 100)[0][0][0]
    assert cond.shape == (1, 154, 32)


def test_tokenizer_gives_clips_own_ids(tiny_models):
    _, clip, _ = tiny_models
    assert clip.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    [chunk] = clip.tokenize("a (photo:1.2) of a cat")["l"]
    assert chunk[:7] == [(49406, 1.0), (320, 1.0), (1125, 1.2), (539, 1.0), (320, 1.0), (2368, 1.0),
                         (49407, 1.0)]


def test_weight_scales_the_distance_from_the_empty_prompt(tiny_models):
    _, clip, _ = tiny_models
    plain = clip.encode_from_tokens(clip.tokenize("a cat"))
    empty = clip.encode_from_tokens(clip.tokenize(""))
    tokens = clip.tokenize("a (cat:1.5)")
    weighted = clip.encode_from_tokens(tokens)
    changed = [i for i, (_, w) in enumerate(tokens["l"][0]) if w != 1.0]
    assert changed == [2]
    same = [i for i in range(77) if i not in changed]
    assert torch.allclose(weighted[0, same], plain[0, same], atol=1e-6)
    expected = empty[0, 2] + (plain[0, 2] - empty[0, 2]) * 1.5
    assert torch.allclose(weighted[0, 2], expected, atol=1e-5)
    assert torch.equal(clip.encode_from_tokens(clip.tokenize("a (cat:1.0)")), plain)


def test_clip_set_last_layer_uses_an_earlier_hidden_state(tiny_models):
    _, clip, _ = tiny_models
    skipped = CLIPSetLastLayer().set_last_layer(clip, -2)[0]
    assert clip.layer_idx == -1             # the input CLIP is unchanged
    ids = torch.tensor([[t for t, _ in clip.tokenize("a cat")["l"][0]]])
    out = clip.model(input_ids=ids, output_hidden_states=True)
    body = getattr(clip.model, "text_model", clip.model)
    expected = body.final_layer_norm(out.hidden_states[-2])
    assert torch.allclose(skipped.encode("a cat"), expected, atol=1e-6)
    assert not torch.allclose(clip.encode("a cat"), expected, atol=1e-3)
    assert torch.equal(CLIPSetLastLayer().set_last_layer(clip, -1)[0].encode("a cat"), clip.encode("a cat"))


@pytest.fixture
def embeddings_folder(tmp_path, monkeypatch):
    from opencomfy.compat import folder_paths

    monkeypatch.setitem(folder_paths.folder_names_and_paths, "embeddings",
                        ([str(tmp_path)], folder_paths.supported_pt_extensions))
    return tmp_path


def test_textual_inversion_embedding_inserts_its_vectors(tiny_models, embeddings_folder):
    from safetensors.torch import save_file

    _, clip, _ = tiny_models
    table = clip.model.get_input_embeddings().weight
    # an embedding whose two vectors are the token vectors of "photo" and "cat"
    save_file({"emb_params": table[[1125, 2368]].clone()}, str(embeddings_folder / "photocat.safetensors"))
    tokens = clip.tokenize("a embedding:photocat")["l"][0]
    assert tokens[0] == (49406, 1.0) and tokens[1] == (320, 1.0) and tokens[4] == (49407, 1.0)
    assert torch.allclose(clip.encode("a embedding:photocat"), clip.encode("a photo cat"), atol=1e-6)
    weighted = clip.encode("a (embedding:photocat:1.3)")
    assert torch.allclose(weighted, clip.encode("a (photo cat:1.3)"), atol=1e-5)
    # an unknown embedding is dropped with a warning, as ComfyUI does
    assert torch.equal(clip.encode("a embedding:missing cat"), clip.encode("a cat"))


def test_pickled_embedding_loads_only_when_pickles_are_allowed(tiny_models, embeddings_folder, monkeypatch):
    """A1111's ``.pt`` embeddings (``string_to_param``) load with --allow-pickle-models and are
    refused, with a warning, without it."""
    from opencomfy.config import ALLOW_PICKLE_ENV
    from opencomfy.diffusion import cache

    _, clip, _ = tiny_models
    table = clip.model.get_input_embeddings().weight
    torch.save({"string_to_param": {"*": table[[1125, 2368]].clone()}}, embeddings_folder / "oldcat.pt")
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    cache.clear()
    assert torch.equal(clip.encode("a embedding:oldcat"), clip.encode("a"))
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    cache.clear()
    assert torch.allclose(clip.encode("a embedding:oldcat"), clip.encode("a photo cat"), atol=1e-6)
