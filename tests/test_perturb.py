"""Tier 0: noise injection (paper Sec. 3.2): where it lands, how it blends, how runs are split."""
import pytest
import torch

from cos_core.perturb import NoiseInjection


def latent(seed=0):
    return torch.randn(2, 4, 5, 3, 3, generator=torch.Generator().manual_seed(seed))


def test_step_noise_replaces_every_frame_only_at_its_step():
    inj = NoiseInjection("step", 3, 1.0, seed=1)
    x = latent()
    assert inj.apply(x, 2) is x
    out = inj.apply(x, 3)
    assert torch.equal(out, inj.noise(x, 3))
    assert (out != x).all()


def test_frame_noise_replaces_only_its_frame_at_every_step():
    inj = NoiseInjection("frame", 2, 1.0, seed=1)
    x = latent()
    for step in (0, 7):
        out = inj.apply(x, step)
        changed = (out != x).any(dim=(0, 1, 3, 4))
        assert changed.tolist() == [False, False, True, False, False]
    assert not torch.equal(inj.apply(x, 0), inj.apply(x, 1)), "fresh noise per step"


def test_strength_blends_linearly_and_zero_is_identity():
    x = latent()
    half = NoiseInjection("step", 0, 0.5, seed=4)
    assert torch.allclose(half.apply(x, 0), 0.5 * x + 0.5 * half.noise(x, 0))
    assert torch.equal(NoiseInjection("frame", 1, 0.0).apply(x, 0), x)


def test_noise_is_reproducible_and_seeded():
    x = latent()
    assert torch.equal(NoiseInjection("step", 1, seed=3).noise(x, 1), NoiseInjection("step", 1, seed=3).noise(x, 1))
    assert not torch.equal(NoiseInjection("step", 1, seed=3).noise(x, 1), NoiseInjection("step", 1, seed=4).noise(x, 1))


def test_segments_split_only_where_needed():
    assert NoiseInjection("step", 4).segments(0, 10) == [(0, 4), (4, 10)]
    assert NoiseInjection("step", 0).segments(0, 10) == [(0, 10)]
    assert NoiseInjection("step", 12).segments(0, 10) == [(0, 10)]
    assert NoiseInjection("step", 4).segments(5, 10) == [(5, 10)]
    assert NoiseInjection("frame", 1).segments(3, 6) == [(3, 4), (4, 5), (5, 6)]
    assert NoiseInjection("frame", 1, 0.0).segments(3, 6) == [(3, 6)]


@pytest.mark.parametrize("inj,total,frames,needle", [
    (NoiseInjection("step", 20), 20, 5, "index: step 20 is outside 0..19"),
    (NoiseInjection("frame", 5), 20, 5, "index: latent frame 5 is outside 0..4"),
    (NoiseInjection("step", 1, 1.5), 20, 5, "strength"),
    (NoiseInjection("step", 1, -0.1), 20, 5, "strength"),
    (NoiseInjection("time", 1), 20, 5, "mode"),
])
def test_validate_names_the_bad_input(inj, total, frames, needle):
    with pytest.raises(ValueError, match=needle):
        inj.validate(total, frames)


def test_injected_noise_is_not_the_samplers_own_noise_drawn_again():
    """ComfyUI draws initial noise with torch.manual_seed(seed); injecting noise with small seeds must not
    reproduce it (that would make the injection invisible)."""
    x = latent()
    for seed in range(4):
        for step in range(4):
            own = torch.randn(x.shape, generator=torch.Generator().manual_seed(step))
            assert not torch.allclose(NoiseInjection("step", step, seed=seed).noise(x, step), own)
