import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cos_core.latent_rgb import latent_to_rgb, pick_frames

FACTORS = [[0.5, -0.25, 0.1],
           [0.2, 0.4, -0.3]]
BIAS = [0.1, -0.2, 0.05]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_output_shape_for_a_5d_latent():
    out = latent_to_rgb(torch.randn(2, 16, 5, 6, 7), torch.randn(16, 3))
    assert out.shape == (2, 5, 6, 7, 3)
    assert out.dtype == torch.float32


def test_a_4d_latent_gets_a_batch_dimension():
    out = latent_to_rgb(torch.randn(16, 5, 6, 7), torch.randn(16, 3))
    assert out.shape == (1, 5, 6, 7, 3)


def test_values_lie_in_the_unit_interval():
    out = latent_to_rgb(10 * torch.randn(1, 16, 3, 8, 8), torch.randn(16, 3), torch.randn(3))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out == 0.0).any() and (out == 1.0).any()  # large values are clamped, not rescaled


def test_matches_a_hand_computation_with_two_channels():
    latent = torch.tensor([0.3, -1.2, 2.0, 0.0]).view(1, 2, 1, 1, 2)  # (B=1, C=2, F=1, H=1, W=2)
    out = latent_to_rgb(latent, FACTORS, BIAS)
    for w in range(2):
        c0, c1 = latent[0, 0, 0, 0, w].item(), latent[0, 1, 0, 0, w].item()
        for k in range(3):
            expected = ((c0 * FACTORS[0][k] + c1 * FACTORS[1][k] + BIAS[k]) + 1) / 2
            expected = min(1.0, max(0.0, expected))
            assert out[0, 0, 0, w, k].item() == pytest.approx(expected, abs=1e-6)


def test_no_bias_means_zero_bias():
    latent = torch.randn(1, 2, 2, 3, 3)
    assert torch.allclose(latent_to_rgb(latent, FACTORS), latent_to_rgb(latent, FACTORS, [0, 0, 0]))


def test_factors_may_be_a_tensor_and_the_latent_any_float_dtype():
    latent = torch.randn(1, 2, 2, 3, 3)
    want = latent_to_rgb(latent, FACTORS, BIAS)
    got = latent_to_rgb(latent.half(), torch.tensor(FACTORS), torch.tensor(BIAS))
    assert got.dtype == torch.float32
    assert torch.allclose(got, want, atol=2e-3)


def test_scale_upsamples_height_and_width():
    out = latent_to_rgb(torch.randn(1, 2, 3, 4, 5), FACTORS, BIAS, scale=8)
    assert out.shape == (1, 3, 32, 40, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_scale_of_a_constant_frame_stays_constant():
    latent = torch.full((1, 2, 1, 3, 3), 0.4)
    small = latent_to_rgb(latent, FACTORS, BIAS)
    big = latent_to_rgb(latent, FACTORS, BIAS, scale=4)
    assert torch.allclose(big, small[:, :, :1, :1].expand_as(big), atol=1e-6)


def test_every_frame_is_projected():
    latent = torch.zeros(1, 2, 4, 3, 3)
    latent[:, 0, 2] = 1.0  # only frame 2 has a non-zero channel 0
    out = latent_to_rgb(latent, FACTORS)
    assert torch.allclose(out[0, 0], torch.full((3, 3, 3), 0.5))  # zero latent -> mid grey
    assert torch.allclose(out[0, 1], out[0, 0]) and torch.allclose(out[0, 3], out[0, 0])
    expected = torch.tensor([(f + 1) / 2 for f in FACTORS[0]])
    assert torch.allclose(out[0, 2], expected.expand(3, 3, 3))
    assert not torch.allclose(out[0, 2], out[0, 0])


def test_batches_are_projected_independently():
    latent = torch.randn(2, 2, 2, 3, 3)
    both = latent_to_rgb(latent, FACTORS, BIAS)
    assert torch.allclose(both[1], latent_to_rgb(latent[1:], FACTORS, BIAS)[0])


@pytest.mark.parametrize("factors", [torch.randn(3, 3), torch.randn(2, 4), torch.randn(6), torch.randn(16, 3)])
def test_wrong_factor_shape_names_the_channel_counts(factors):
    with pytest.raises(ValueError, match="2-channel") as info:
        latent_to_rgb(torch.randn(1, 2, 1, 2, 2), factors)
    assert str(tuple(factors.shape)) in str(info.value)


@pytest.mark.parametrize("shape", [(2, 4, 4), (4,), (1, 1, 2, 1, 4, 4)])
def test_latent_that_is_not_4d_or_5d_is_rejected(shape):
    with pytest.raises(ValueError, match="video latent"):
        latent_to_rgb(torch.randn(shape), torch.randn(2, 3))


def test_pick_frames_spreads_evenly_with_both_ends():
    frames = pick_frames(21, 6)
    assert frames == [0, 4, 8, 12, 16, 20]
    assert frames[0] == 0 and frames[-1] == 20
    assert frames == sorted(set(frames)) and len(frames) == 6


def test_pick_frames_never_asks_for_more_frames_than_exist():
    assert pick_frames(3, 10) == [0, 1, 2]


@pytest.mark.parametrize("n", [0, 1, -3])
def test_pick_frames_of_at_most_one_is_the_first_frame(n):
    assert pick_frames(21, n) == [0]


def test_pick_frames_of_an_empty_video_is_an_error():
    with pytest.raises(ValueError):
        pick_frames(0, 4)


@given(frame_count=st.integers(min_value=1, max_value=500), n=st.integers(min_value=2, max_value=60))
def test_pick_frames_returns_min_n_frames_unique_sorted_with_both_ends(frame_count, n):
    frames = pick_frames(frame_count, n)
    assert frames == sorted(set(frames))
    assert len(frames) == min(n, frame_count)
    assert frames[0] == 0 and frames[-1] == frame_count - 1
