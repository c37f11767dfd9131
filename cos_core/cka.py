"""Linear CKA between two runs' representations (paper Sec. 3.2, Fig. 3c; Kornprobst et al. [29]).

CKA_linear(X, Y) = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F · ‖Yᶜᵀ Yᶜ‖_F), with Xᶜ, Yᶜ the column-centred
(tokens × channels) matrices. It is computed in this feature-covariance form (D × D products,
never the N × N Gram matrices), so 32,760 tokens × 5120 channels fit on a GPU, with float32
inputs accumulated in float64 for the small D × D results. The paper plots the dissimilarity
1 − CKA: 0 = no effect, 1 = fully corrupted.
"""
from __future__ import annotations

import torch


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """A latent (C, F, H, W) → tokens × channels (F·H·W, C); a (N, D) matrix passes through."""
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        return x.flatten(1).t()
    raise ValueError(f"expected tokens (N, D) or a latent (C, F, H, W), got shape {tuple(x.shape)}")


def cka_linear(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same N tokens.

    Args:
        x, y: (N, D1) and (N, D2) float tensors (any float dtype, any device), or latents
            (C, F, H, W) taken as F·H·W tokens of C channels.

    Returns:
        CKA in [0, 1] as a Python float; 1.0 when both are constant (identical, no information).

    Raises:
        ValueError: if the token counts differ.
    """
    x, y = as_tokens(x).float(), as_tokens(y).float()
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"both runs need the same tokens: {x.shape[0]} vs {y.shape[0]}")
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    # scale to unit Frobenius norm first: CKA is scale-invariant and this keeps float32 products tame
    nx, ny = torch.linalg.matrix_norm(x), torch.linalg.matrix_norm(y)
    if float(nx) == 0.0 or float(ny) == 0.0:
        return 1.0 if float(nx) == float(ny) else 0.0
    x, y = x / nx, y / ny
    cross = torch.linalg.matrix_norm((y.t() @ x).double()) ** 2
    self_x = torch.linalg.matrix_norm((x.t() @ x).double())
    self_y = torch.linalg.matrix_norm((y.t() @ y).double())
    return float((cross / (self_x * self_y)).clamp(0.0, 1.0))


def cka_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> float:
    """1 − CKA_linear(x, y): 0 = identical up to rotation and scale, 1 = unrelated."""
    return 1.0 - cka_linear(x, y)
