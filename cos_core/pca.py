"""PCA maps of hidden states (the token visualisation of paper Sec. 5.1): 3 components as RGB.

The official tool refits PCA (scikit-learn, on the CPU) for every layer and step, so colours
mean different things in every picture. Here a basis is fitted on the device with
a randomized SVD in float32, its signs are fixed (largest loading positive) so that refits
are deterministic, and it can be kept: one basis per layer, fitted at the first probed step and
reused for the later ones, so a token with the same state keeps the same colour across steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PCABasis:
    """A 3-component basis of token features.

    Attributes:
        mean: (D,) float32 token mean at fit time.
        components: (D, k) float32 orthonormal principal directions, signs fixed.
        low, high: (k,) float32 1st/99th percentiles of the fitted projections, for colouring.
    """

    mean: torch.Tensor
    components: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def to(self, device) -> "PCABasis":
        return PCABasis(*(t.to(device) for t in (self.mean, self.components, self.low, self.high)))


def fit_basis(tokens: torch.Tensor, k: int = 3, max_tokens: int = 16384, seed: int = 0, niter: int = 4) -> PCABasis:
    """Fit a k-component PCA basis to tokens (N, D) on their device, any float dtype.

    At most ``max_tokens`` tokens (a fixed random subset, drawn before the float32 cast so a full-size
    layer is never copied whole) are used. The top directions come from a randomized SVD (Halko et al.
    2011, the algorithm of ``torch.pca_lowrank``) whose random sketch is drawn from a local generator
    seeded with ``seed``: the fit is deterministic and never touches the global RNG (the sampler's noise).

    Raises:
        ValueError: if tokens is not 2-D or has fewer than k tokens or features.
    """
    if tokens.ndim != 2 or min(tokens.shape) < k:
        raise ValueError(f"need tokens (N, D) with N, D ≥ {k}, got {tuple(tokens.shape)}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if tokens.shape[0] > max_tokens:
        idx = torch.randperm(tokens.shape[0], generator=gen)[:max_tokens].to(tokens.device)
        tokens = tokens[idx]
    x = tokens.float()
    mean = x.mean(dim=0)
    xc = x - mean
    q = min(k + 4, *x.shape)
    sketch = xc @ torch.randn(x.shape[1], q, generator=gen).to(x.device)
    basis = torch.linalg.qr(sketch).Q
    for _ in range(niter):  # power iterations sharpen the top directions
        basis = torch.linalg.qr(xc @ (xc.T @ basis)).Q
    _, _, vh = torch.linalg.svd(basis.T @ xc, full_matrices=False)
    components = vh[:k].T.contiguous()
    signs = torch.sign(components.gather(0, components.abs().argmax(dim=0, keepdim=True)))
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    proj = xc @ components
    low = torch.quantile(proj, 0.01, dim=0)
    high = torch.quantile(proj, 0.99, dim=0)
    return PCABasis(mean, components, low, high)


def project_rgb(tokens: torch.Tensor, basis: PCABasis) -> torch.Tensor:
    """Project tokens (…, N, D) on a 3-component basis and map to RGB in [0, 1] (…, N, 3), float32."""
    proj = (tokens.float() - basis.mean) @ basis.components
    span = (basis.high - basis.low).clamp_min(1e-6)
    return ((proj - basis.low) / span).clamp(0.0, 1.0)
