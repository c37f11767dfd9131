import pytest
import torch

from cos_core.x0 import velocity, x0_hat

SHAPE = (2, 4, 3, 5, 6)  # (B, C, F, H, W)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_x0_hat_with_scalar_sigma(gen):
    x, v = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    assert torch.allclose(x0_hat(x, 0.3, v), x - 0.3 * v)


def test_x0_hat_with_zero_dim_tensor_sigma(gen):
    x, v = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    assert torch.allclose(x0_hat(x, torch.tensor(0.7), v), x - 0.7 * v)


def test_x0_hat_with_per_batch_sigma(gen):
    x, v = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    sigma = torch.tensor([0.9, 0.2])
    out = x0_hat(x, sigma, v)
    assert torch.allclose(out[0], x[0] - 0.9 * v[0])
    assert torch.allclose(out[1], x[1] - 0.2 * v[1])


def test_x0_hat_keeps_shape_and_dtype(gen):
    x = torch.randn(SHAPE, generator=gen).to(torch.bfloat16)
    v = torch.randn(SHAPE, generator=gen).to(torch.bfloat16)
    out = x0_hat(x, torch.tensor([0.5, 0.5]), v)
    assert out.shape == x.shape and out.dtype == torch.bfloat16


@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.5, 0.875, 1.0])
def test_x0_hat_recovers_the_clean_sample_of_a_flow_matching_path(gen, sigma):
    x0, eps = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    x = (1 - sigma) * x0 + sigma * eps
    v = eps - x0
    assert torch.allclose(x0_hat(x, sigma, v), x0, atol=1e-5)


def test_x0_hat_recovers_the_clean_sample_with_per_batch_sigma(gen):
    x0, eps = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    s = torch.tensor([0.95, 0.1]).view(-1, 1, 1, 1, 1)
    x = (1 - s) * x0 + s * eps
    assert torch.allclose(x0_hat(x, s.flatten(), eps - x0), x0, atol=1e-5)


def test_velocity_is_the_inverse_of_x0_hat(gen):
    x, v = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    for sigma in (0.3, torch.tensor([0.8, 0.15])):
        assert torch.allclose(velocity(x, sigma, x0_hat(x, sigma, v)), v, atol=1e-5)


def test_velocity_of_a_flow_matching_path_is_eps_minus_x0(gen):
    x0, eps = torch.randn(SHAPE, generator=gen), torch.randn(SHAPE, generator=gen)
    x = 0.4 * x0 + 0.6 * eps
    assert torch.allclose(velocity(x, 0.6, x0), eps - x0, atol=1e-5)


def test_x0_hat_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        x0_hat(torch.zeros(SHAPE), 0.5, torch.zeros(2, 4, 3, 5, 7))


def test_velocity_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        velocity(torch.zeros(SHAPE), 0.5, torch.zeros(1, 4, 3, 5, 6))


@pytest.mark.parametrize("sigma", [torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.5]),
                                   torch.full((2, 1), 0.5), torch.full((2, 4), 0.5)])
def test_sigma_of_wrong_shape_is_rejected(sigma):
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="sigma"):
        x0_hat(x, sigma, x)
    with pytest.raises(ValueError, match="sigma"):
        velocity(x, sigma, x)


def test_velocity_at_sigma_zero_is_undefined():
    x = torch.ones(SHAPE)
    with pytest.raises(ValueError, match="sigma = 0"):
        velocity(x, 0.0, x)


def test_velocity_with_one_zero_sigma_in_the_batch_is_undefined():
    x = torch.ones(SHAPE)
    with pytest.raises(ValueError, match="sigma = 0"):
        velocity(x, torch.tensor([0.5, 0.0]), x)
