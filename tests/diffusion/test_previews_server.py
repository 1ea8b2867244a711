"""Latent previews over HTTP and the websocket: a server started with ``--preview-method
latent2rgb`` and a TAESD decoder in models/vae_approx, a KSampler graph, binary preview frames."""

from __future__ import annotations

import io
import json
import shutil
import struct

import pytest
from PIL import Image

from tests.diffusion.test_previews import tiny_autoencoder, write_taesd_decoder
from tests.diffusion.test_server import default_workflow
from tests.harness import Server

CKPT = "tiny_sd1.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_checkpoint):
    base = tmp_path_factory.mktemp("previews-server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "vae_approx").mkdir(parents=True)
    shutil.copy(tiny_checkpoint[0], base / "models" / "checkpoints" / CKPT)
    write_taesd_decoder(base / "models" / "vae_approx" / "taesd_decoder.safetensors", tiny_autoencoder(4))
    srv = Server(base_dir=base, args=["--preview-method", "latent2rgb"]).start()
    yield srv
    srv.stop()


def _run(server: Server, seed: int, **extra) -> list:
    from tests.server.wsutil import Client, new_id, queue_prompt

    client_id = new_id()
    client = Client(server, client_id, flags={"supports_preview_metadata": True})
    try:
        workflow = default_workflow(CKPT, width=64, height=48, steps=4, seed=seed)
        prompt_id = queue_prompt(server, workflow, client_id, **extra)
        return client.until_done(prompt_id, timeout=120)
    finally:
        client.close()


def _previews(messages: list) -> list[tuple[dict, Image.Image]]:
    """(metadata, image) of every type-4 preview frame."""
    out = []
    for m in messages:
        if isinstance(m, bytes) and struct.unpack(">I", m[:4])[0] == 4:
            (size,) = struct.unpack(">I", m[4:8])
            out.append((json.loads(m[8:8 + size]), Image.open(io.BytesIO(m[8 + size:]))))
    return out


def test_flag_latent2rgb_sends_preview_frames_during_sampling(server):
    messages = _run(server, seed=21)
    previews = _previews(messages)
    assert previews, "no preview frame"
    for metadata, image in previews:
        assert metadata["node_id"] == "3" and metadata["image_type"] == "image/jpeg"
        assert (image.format, image.size) == ("JPEG", (8, 6))        # one pixel per latent pixel
    # The frames come while node 3 samples: after its first progress, before it is executed.
    kinds = ["preview" if isinstance(m, bytes) else m["type"] + ":" + str(m["data"].get("node"))
             for m in messages if isinstance(m, bytes) or m["type"] in ("progress", "executing")]
    first_progress = kinds.index("progress:3")
    assert all(first_progress < i < kinds.index("executing:8") for i, k in enumerate(kinds) if k == "preview")


def test_prompt_none_sends_no_previews(server):
    messages = _run(server, seed=22, extra_data={"preview_method": "none"})
    assert [m for m in messages if isinstance(m, dict) and m["type"] == "progress"]
    assert not [m for m in messages if isinstance(m, bytes) and struct.unpack(">I", m[:4])[0] in (1, 4)]


def test_prompt_taesd_decodes_with_the_vae_approx_decoder(server):
    previews = _previews(_run(server, seed=23, extra_data={"preview_method": "taesd"}))
    assert previews
    assert all(image.size == (64, 48) for _, image in previews)      # the decoder's 8x upscale


def test_prompt_auto_is_latent2rgb_although_the_decoder_is_there(server):
    previews = _previews(_run(server, seed=24, extra_data={"preview_method": "auto"}))
    assert previews
    assert all(image.size == (8, 6) for _, image in previews)        # one pixel per latent pixel
