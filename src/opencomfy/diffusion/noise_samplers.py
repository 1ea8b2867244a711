"""Where the stochastic samplers get their fresh noise, seeded as ComfyUI seeds it.

A noise sampler is ``noise(sigma, sigma_next) -> tensor`` of the sample's shape, standard normal.

- :func:`default_noise_sampler`: independent Gaussian draws from one generator. On the CPU the
  generator is seeded with ``seed + 1``, so that the first draw is not the initial noise again
  (which ``torch.manual_seed(seed)`` produced); on another device with ``seed`` itself.
- :class:`BrownianTreeNoiseSampler`: increments of one Brownian motion W over sigma, normalised
  by ``sqrt(|sigma - sigma_next|)``. The draws of nearby steps are then correlated as the SDE
  needs (the increments over two halves of an interval add up to the increment over it), and
  the result hardly depends on the step count. The motion is a ``torchsde.BrownianTree`` over
  ``[sigma_min, sigma_max]`` seeded by ``seed`` (its ``entropy``), one for the whole batch;
  a list of seeds gives one tree per batch item.
"""

from __future__ import annotations

import warnings
from typing import cast

import torch


def default_noise_sampler(x: torch.Tensor, seed: int | None = None):
    """Independent standard normal draws of ``x``'s shape from one seeded generator."""
    generator = None
    if seed is not None:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(seed + 1 if x.device.type == "cpu" else seed)

    def noise(_sigma, _sigma_next):
        return torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)

    return noise


def _as_time(value) -> torch.Tensor:
    """A sigma as a 0-d float32 tensor: the tree's clock (float64 would change its draws)."""
    return torch.as_tensor(value, dtype=torch.float32).detach().reshape(())


class BrownianTreeNoiseSampler:
    """Normalised increments of a seeded Brownian motion over ``[sigma_min, sigma_max]``.

    ``cpu=True`` keeps the tree on the CPU whatever ``x``'s device (ComfyUI's default, so that
    a seed gives the same image on any GPU); ``transform`` maps sigma to the tree's clock.
    """

    def __init__(self, x: torch.Tensor, sigma_min, sigma_max, seed=None, transform=None, cpu: bool = False):
        import torchsde

        self.transform = transform if transform is not None else (lambda t: t)
        self.device, self.dtype = x.device, x.dtype
        t0 = _as_time(self.transform(_as_time(sigma_min)))
        t1 = _as_time(self.transform(_as_time(sigma_max)))
        self.sign = 1
        if t1 < t0:
            t0, t1, self.sign = t1, t0, -1
        if seed is None:
            seeds, self.batched = [int(torch.randint(0, 2 ** 63 - 1, ()).item())], False
        elif isinstance(seed, (list, tuple)):
            if len(seed) != x.shape[0]:
                raise ValueError("a list of seeds for the Brownian tree needs one seed per batch item")
            seeds, self.batched = list(seed), True
        else:
            seeds, self.batched = [int(seed)], False
        tree_device = torch.device("cpu") if cpu else x.device
        w0 = torch.zeros(x.shape[1:] if self.batched else x.shape, dtype=x.dtype, device=tree_device)
        self.tree_device = tree_device
        self.trees = [torchsde.BrownianTree(t0.to(tree_device), w0, t1.to(tree_device), entropy=s)
                      for s in seeds]

    def increment(self, sigma, sigma_next) -> torch.Tensor:
        """W(sigma_next) - W(sigma), unnormalised (oriented: from ``sigma`` to ``sigma_next``)."""
        a = _as_time(self.transform(_as_time(sigma))).to(self.tree_device)
        b = _as_time(self.transform(_as_time(sigma_next))).to(self.tree_device)
        sign = 1
        if b < a:
            a, b, sign = b, a, -1
        with warnings.catch_warnings():
            # torchsde warns when a bound is the tree's end read back at another precision;
            # the query is still answered correctly.
            warnings.filterwarnings("ignore", message="Should have (ta|tb)")
            # torchsde types a query as tensor-or-tuple; without return_U/return_A it is a tensor.
            w = torch.stack([cast(torch.Tensor, tree(a, b)) for tree in self.trees]).to(self.device, self.dtype)
        w = w * (self.sign * sign)
        return w if self.batched else w[0]

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        """The increment from ``sigma`` to ``sigma_next`` scaled to unit variance."""
        a = _as_time(self.transform(_as_time(sigma)))
        b = _as_time(self.transform(_as_time(sigma_next)))
        return self.increment(sigma, sigma_next) / (b - a).abs().sqrt().to(self.device, self.dtype)
