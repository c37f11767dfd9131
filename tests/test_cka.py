"""Tier 0: linear CKA (paper Fig. 3c) and its dissimilarity."""
import pytest
import torch

from cos_core.cka import as_tokens, cka_dissimilarity, cka_linear


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_identical_inputs_have_zero_dissimilarity():
    x = rand(2000, 64)
    assert cka_dissimilarity(x, x) == pytest.approx(0.0, abs=1e-6)


def test_invariant_to_orthogonal_rotation_isotropic_scaling_and_offset():
    x = rand(2000, 32)
    q, _ = torch.linalg.qr(rand(32, 32, seed=1))
    y = 7.5 * x @ q + 3.0
    assert cka_linear(x, y) == pytest.approx(1.0, abs=1e-5)


def test_not_invariant_to_anisotropic_scaling():
    x = rand(2000, 8)
    y = x * torch.tensor([100.0, 1, 1, 1, 1, 1, 1, 1])
    assert cka_linear(x, y) < 0.9


def test_independent_inputs_are_near_one_dissimilar():
    assert cka_dissimilarity(rand(8000, 16), rand(8000, 16, seed=2)) > 0.97


def test_partial_corruption_lies_between():
    x = rand(4000, 16)
    y = 0.6 * x + 0.8 * rand(4000, 16, seed=3)
    d = cka_dissimilarity(x, y)
    assert 0.2 < d < 0.9


def test_latents_are_tokens_of_channels():
    latent = rand(16, 3, 4, 5)
    tokens = as_tokens(latent)
    assert tokens.shape == (60, 16)
    assert torch.equal(tokens[7], latent.flatten(1)[:, 7])
    assert cka_linear(latent, latent.clone()) == pytest.approx(1.0, abs=1e-6)


def test_large_offsets_in_float32_stay_stable():
    """Feature-covariance form with centring first: a 1e4 offset in float32 does not break it, and
    bfloat16 inputs (the DiT's dtype) are accumulated in float32/float64."""
    x = rand(20000, 128) + 1e4
    assert cka_linear(x, x * 3) == pytest.approx(1.0, abs=1e-4)
    assert cka_linear(x, rand(20000, 128, seed=4) + 1e4) < 0.05
    h = rand(20000, 128)
    assert cka_linear(h, h.to(torch.bfloat16)) == pytest.approx(1.0, abs=1e-3)


def test_mismatched_tokens_and_shapes_raise():
    with pytest.raises(ValueError, match="same tokens"):
        cka_linear(rand(10, 4), rand(11, 4))
    with pytest.raises(ValueError, match="tokens"):
        cka_linear(rand(10), rand(10))


def test_constant_inputs_do_not_divide_by_zero():
    assert cka_linear(torch.ones(10, 3), torch.ones(10, 3)) == 1.0
    assert cka_linear(torch.ones(10, 3), rand(10, 3)) == 0.0
