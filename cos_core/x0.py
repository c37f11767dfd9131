"""The x̂0 prediction of a flow-matching video model (paper Sec. 3.1, Eq. 2).

Rectified-flow models (Wan2.x, LTX-2) predict a velocity v at noise level σ with
x_σ = (1 − σ)·x0 + σ·ε and v = ε − x0. The clean-sample estimate at a step is therefore

    x̂0 = x_σ − σ·v.

In ComfyUI the sampler callback's ``x0`` is already this estimate, in the model's latent space
(after ``process_latent_in``); the pack records it and converts it with ``process_latent_out``.
"""
from __future__ import annotations

import torch


def _broadcast_sigma(sigma: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if sigma.ndim == 0:
        return sigma
    if sigma.ndim != 1 or sigma.shape[0] != like.shape[0]:
        raise ValueError(f"sigma must be a scalar or have shape ({like.shape[0]},), got {tuple(sigma.shape)}")
    return sigma.view(-1, *([1] * (like.ndim - 1)))


def x0_hat(x: torch.Tensor, sigma: torch.Tensor | float, v: torch.Tensor) -> torch.Tensor:
    """x̂0 = x_σ − σ·v (paper Eq. 2).

    Args:
        x: noisy latent x_σ, shape (B, C, F, H, W) (any shape with batch first), any float dtype.
        sigma: σ in [0, 1], a float or a (B,) tensor.
        v: the model's velocity prediction, same shape and dtype as ``x``.

    Returns:
        x̂0 with the shape and dtype of ``x``.

    Raises:
        ValueError: if shapes differ or sigma has the wrong shape.
    """
    if x.shape != v.shape:
        raise ValueError(f"x and v must have the same shape, got {tuple(x.shape)} and {tuple(v.shape)}")
    return x - _broadcast_sigma(sigma, x) * v


def velocity(x: torch.Tensor, sigma: torch.Tensor | float, x0: torch.Tensor) -> torch.Tensor:
    """The velocity implied by an x̂0 estimate: v = (x_σ − x̂0)/σ, the inverse of :func:`x0_hat`.

    Raises:
        ValueError: if σ is 0 (the velocity is undefined there) or shapes differ.
    """
    if x.shape != x0.shape:
        raise ValueError(f"x and x0 must have the same shape, got {tuple(x.shape)} and {tuple(x0.shape)}")
    s = _broadcast_sigma(sigma, x)
    if bool((s == 0).any()):
        raise ValueError("velocity is undefined at sigma = 0")
    return (x - x0) / s
