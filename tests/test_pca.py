"""Tier 0: the PCA basis of CoS Layer Probe (cos_core/pca.py)."""
from __future__ import annotations

import pytest
import torch

from cos_core.pca import fit_basis, project_rgb


def planted(n=4000, d=64, seed=1):
    """Tokens with three planted directions of variance 9, 4, 1 over isotropic noise of variance 0.01."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.linalg.qr(torch.randn(d, 3, generator=gen)).Q
    scores = torch.randn(n, 3, generator=gen) * torch.tensor([3.0, 2.0, 1.0])
    return scores @ directions.T + 0.1 * torch.randn(n, d, generator=gen) + 5.0, directions


def test_the_basis_finds_the_planted_directions_in_order():
    tokens, directions = planted()
    basis = fit_basis(tokens)
    assert basis.components.shape == (64, 3) and basis.components.dtype == torch.float32
    cosines = (basis.components.T @ directions).abs().diagonal()
    assert torch.all(cosines > 0.999), cosines
    torch.testing.assert_close(basis.components.T @ basis.components, torch.eye(3), atol=1e-5, rtol=0)


def test_it_agrees_with_an_exact_eigendecomposition():
    tokens, _ = planted(n=3000, d=32, seed=4)
    x = tokens - tokens.mean(dim=0)
    _, vectors = torch.linalg.eigh(x.T @ x)
    exact = vectors[:, -3:].flip(1)
    assert torch.all((fit_basis(tokens).components.T @ exact).abs().diagonal() > 0.9999)


def test_the_fit_leaves_the_global_rng_alone_and_is_deterministic():
    tokens, _ = planted()
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    first = fit_basis(tokens, max_tokens=1000)
    assert torch.equal(torch.rand(4), expected)  # the sampler's noise stream is not reseeded
    second = fit_basis(tokens, max_tokens=1000)
    assert torch.equal(first.components, second.components) and torch.equal(first.low, second.low)


def test_half_precision_tokens_and_subsampling():
    tokens, directions = planted(n=20000)
    basis = fit_basis(tokens.to(torch.bfloat16), max_tokens=2048)
    assert basis.mean.dtype == torch.float32
    assert torch.all((basis.components.T @ directions).abs().diagonal() > 0.99)


def test_signs_are_fixed_so_refits_give_the_same_colours():
    tokens, _ = planted()
    a, b = fit_basis(tokens, seed=0), fit_basis(tokens, seed=7)
    torch.testing.assert_close(a.components, b.components, atol=1e-3, rtol=0)
    rgb = project_rgb(tokens[:10], a)
    assert rgb.shape == (10, 3) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1


@pytest.mark.parametrize("shape", [(5,), (2, 64), (64, 2), (1, 2, 3)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="need tokens"):
        fit_basis(torch.zeros(shape))
