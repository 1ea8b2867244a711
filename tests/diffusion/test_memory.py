"""Device memory management: models move to the compute device when used, and the least
recently used ones go back to the CPU when the device runs short (simulated device here)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from opencomfy.diffusion import memory

GIB = 1 << 30
CUDA = torch.device("cuda", 0)


class FakeModule(torch.nn.Module):
    """A module that only records where it was moved; its "weights" have a given size."""

    def __init__(self, name: str, size: int):
        super().__init__()
        self.name, self.size, self.where = name, size, torch.device("cpu")

    def to(self, device):
        self.where = torch.device(device)
        return self

    def parameters(self, recurse=True):
        yield SimpleNamespace(device=self.where, numel=lambda: self.size, element_size=lambda: 1)

    def buffers(self, recurse=True):
        return iter(())


@pytest.fixture
def device(monkeypatch):
    """A 10 GiB simulated CUDA device; yields the list of modules to account."""
    modules: list[FakeModule] = []
    monkeypatch.setattr(memory, "compute_device", lambda: CUDA)
    monkeypatch.setattr(memory, "free_device_bytes",
                        lambda _d: 10 * GIB - sum(m.size for m in modules if m.where.type == "cuda"))
    monkeypatch.setattr(memory, "_resident", type(memory._resident)())
    return modules


def _use(*modules):
    handles = [SimpleNamespace(modules=lambda m=m: [m], patches=()) for m in modules]
    with memory.models_in_use(*handles) as where:
        assert where == CUDA
        assert all(m.where == CUDA for m in modules)


def test_least_recently_used_model_is_offloaded(device):
    a, b, c = FakeModule("a", 4 * GIB), FakeModule("b", 4 * GIB), FakeModule("c", 4 * GIB)
    device += [a, b, c]
    _use(a)
    _use(b)                  # 6 GiB free before: fits with the 1 GiB margin
    _use(a)                  # a is now the most recently used
    _use(c)                  # 2 GiB free: b (least recently used) goes back to the CPU
    assert (a.where.type, b.where.type, c.where.type) == ("cuda", "cpu", "cuda")
    memory.unload_all()
    assert all(m.where.type == "cpu" for m in (a, b, c))


def test_models_used_together_are_not_offloaded_for_each_other(device):
    a, b = FakeModule("a", 4 * GIB), FakeModule("b", 4 * GIB)
    device += [a, b]
    _use(a, b)
    assert a.where.type == b.where.type == "cuda"


def test_cpu_forced_keeps_everything_on_the_cpu(monkeypatch):
    from opencomfy.compat.comfy.cli_args import args

    monkeypatch.setattr(args, "cpu", True)
    assert memory.compute_device() == torch.device("cpu")
    assert memory.weight_dtype("unet") == torch.float32
