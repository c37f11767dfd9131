import pytest

from cos_core.schedule import WAN22_I2V_BOUNDARY, WAN22_T2V_BOUNDARY, expert_of_step, switch_step


def wan_sigmas(steps: int, shift: float = 5.0) -> list[float]:
    """Shifted flow-matching schedule: σ(t) = shift·t / (1 + (shift−1)·t), t = 1 − i/N, last σ = 0."""
    sigmas = []
    for i in range(steps + 1):
        t = 1 - i / steps
        sigmas.append(shift * t / (1 + (shift - 1) * t))
    sigmas[-1] = 0.0
    return sigmas


def first_below(sigmas, boundary):
    for i, s in enumerate(sigmas):
        if s < boundary:
            return i
    return len(sigmas) - 1


def test_wan_schedule_is_decreasing_from_one_to_zero():
    sigmas = wan_sigmas(40)
    assert len(sigmas) == 41
    assert sigmas[0] == pytest.approx(1.0) and sigmas[-1] == 0.0
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))


def test_switch_step_of_a_shift5_40_step_schedule_at_the_i2v_boundary():
    sigmas = wan_sigmas(40)
    switch = switch_step(sigmas, 0.9)
    assert switch == first_below(sigmas, 0.9)
    # σ = 0.9 at t = 9/14, i.e. i = 40·5/14 ≈ 14.3, so step 15 is the first low-noise step.
    assert switch == 15
    assert all(s >= 0.9 for s in sigmas[:switch])
    assert sigmas[switch] < 0.9


@pytest.mark.parametrize("steps", [4, 20, 30, 40, 50])
@pytest.mark.parametrize("boundary", [WAN22_I2V_BOUNDARY, WAN22_T2V_BOUNDARY, 0.5, 0.99])
def test_switch_step_is_the_first_step_below_the_boundary(steps, boundary):
    sigmas = wan_sigmas(steps)
    switch = switch_step(sigmas, boundary)
    assert switch == first_below(sigmas, boundary)
    assert all(s >= boundary for s in sigmas[:switch])
    assert sigmas[switch] < boundary


def test_sigma_equal_to_the_boundary_still_belongs_to_the_high_noise_expert():
    assert switch_step([1.0, 0.9, 0.5, 0.0], 0.9) == 2


def test_switch_step_accepts_tensor_like_floats():
    torch = pytest.importorskip("torch")
    assert switch_step(torch.tensor(wan_sigmas(40), dtype=torch.float64), 0.9) == 15


def test_switch_at_step_zero_when_the_schedule_starts_below_the_boundary():
    assert switch_step([0.5, 0.25, 0.0], 0.9) == 0


def test_every_step_high_noise_returns_the_step_count():
    sigmas = [1.0, 0.99, 0.98, 0.95]
    assert switch_step(sigmas, 0.9) == len(sigmas) - 1


@pytest.mark.parametrize("boundary", [0.0, 1.0, -0.1, 1.5, 900])
def test_boundary_outside_the_open_unit_interval_is_rejected(boundary):
    with pytest.raises(ValueError, match="boundary"):
        switch_step(wan_sigmas(10), boundary)


@pytest.mark.parametrize("sigmas", [[], [1.0]])
def test_too_short_schedule_is_rejected(sigmas):
    with pytest.raises(ValueError, match="two sigmas"):
        switch_step(sigmas, 0.9)


def test_official_wan22_boundaries():
    assert WAN22_I2V_BOUNDARY == 0.9
    assert WAN22_T2V_BOUNDARY == 0.875


def test_expert_of_step_splits_at_the_switch():
    assert [expert_of_step(i, 3, True) for i in range(5)] == ["high", "high", "high", "low", "low"]


def test_expert_of_step_with_a_single_expert():
    assert {expert_of_step(i, 3, False) for i in range(5)} == {"single"}


def test_expert_of_step_follows_the_schedule_switch():
    sigmas = wan_sigmas(40)
    switch = switch_step(sigmas, 0.9)
    experts = [expert_of_step(i, switch, True) for i in range(40)]
    assert all(e == "high" for e, s in zip(experts, sigmas) if s >= 0.9)
    assert all(e == "low" for e, s in zip(experts, sigmas) if s < 0.9)
