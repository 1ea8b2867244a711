"""The latent file nodes and PreviewAny through a running server: files, history, /view."""

from __future__ import annotations

import shutil
import time

from opencomfy.compat.safetensors_file import load_file


def run_prompt(server, prompt: dict) -> dict:
    response = server.post("/prompt", {"prompt": prompt})
    assert response.status == 200, response.body
    entry = server.wait_for_job(response.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return entry["outputs"]


def test_save_latent_then_load_it_from_the_input_folder(server):
    outputs = run_prompt(server, {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48,
                                                          "batch_size": 2}},
        "2": {"class_type": "LatentMultiply", "inputs": {"samples": ["1", 0],
                                                        "multiplier": 2.0}},
        "3": {"class_type": "SaveLatent", "inputs": {"samples": ["2", 0],
                                                    "filename_prefix": "latents/test"}},
    })
    (entry,) = outputs["3"]["latents"]
    assert entry["subfolder"] == "latents" and entry["type"] == "output"
    assert entry["filename"].startswith("test_") and entry["filename"].endswith("_.latent")
    saved = server.base_dir / "output" / "latents" / entry["filename"]
    tensors, metadata = load_file(saved)
    assert tuple(tensors["latent_tensor"].shape) == (2, 4, 6, 8)
    assert '"SaveLatent"' in metadata["prompt"]

    (server.base_dir / "input").mkdir(exist_ok=True)
    shutil.copy(saved, server.base_dir / "input" / "copy.latent")
    # The catalogue looks at the input folder at most once a second: poll like a refresh.
    deadline = time.monotonic() + 10
    while True:
        info = server.get("/object_info/LoadLatent").json()["LoadLatent"]
        if "copy.latent" in info["input"]["required"]["latent"][0] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "copy.latent" in info["input"]["required"]["latent"][0]

    outputs = run_prompt(server, {
        "1": {"class_type": "LoadLatent", "inputs": {"latent": "copy.latent"}},
        "2": {"class_type": "LatentCrop", "inputs": {"samples": ["1", 0], "width": 64,
                                                    "height": 64, "x": 0, "y": 0}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    })
    (text,) = outputs["3"]["text"]
    assert "'samples': tensor" in text


def test_string_nodes_reject_a_bad_combo_value_with_comfyuis_error(server):
    response = server.post("/prompt", {"prompt": {
        "1": {"class_type": "StringTrim", "inputs": {"string": " x ", "mode": "Middle"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }})
    assert response.status == 400
    body = response.json()
    assert body["node_errors"]["1"]["errors"][0]["type"] == "value_not_in_list"
