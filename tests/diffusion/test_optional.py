"""The diffusion extra is optional: without diffusers the model nodes are simply absent."""

from __future__ import annotations

import subprocess
import sys

from tests.harness import REPO

SCRIPT = """
import sys
sys.modules["diffusers"] = None          # as if the extra were not installed
from opencomfy.diffusion import available
from opencomfy.engine import NodeRegistry
from opencomfy.nodes import register_core_nodes
from opencomfy.nodes.diffusion import NODES
assert not available()
assert NODES == []
registry = NodeRegistry()
register_core_nodes(registry)
assert "KSampler" not in registry and "CheckpointLoaderSimple" not in registry
assert "EmptyLatentImage" in registry and "SaveImage" in registry
print("ok")
"""


def test_model_nodes_absent_without_the_extra():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_model_nodes_present_with_the_extra():
    from opencomfy.engine import NodeRegistry
    from opencomfy.nodes import register_core_nodes

    registry = NodeRegistry()
    register_core_nodes(registry)
    for name in ("CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "KSamplerAdvanced", "VAEDecode",
                 "VAEEncode", "VAEEncodeForInpaint", "LoraLoader", "CLIPSetLastLayer"):
        assert name in registry
        assert registry.node_info(name)["python_module"] == "nodes"
