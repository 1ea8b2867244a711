"""The two small formulas every sampler module shares (Karras et al. 2022)."""

from __future__ import annotations


def to_d(x, sigma, denoised):
    """The ODE's direction dx/dsigma at ``x`` given the model's clean prediction."""
    return (x - denoised) / sigma


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """(sigma_down, sigma_up): where the deterministic step lands and how much noise to add, so
    that the variance at ``sigma_next`` is right (``down^2 + up^2 = sigma_next^2``)."""
    if not eta or sigma_next == 0:
        return sigma_next, 0.0
    sigma_up = min(sigma_next, eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - sigma_up ** 2) ** 0.5, sigma_up
