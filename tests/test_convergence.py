"""Tier 0: convergence distances and the settle-step rule."""
import numpy as np
import pytest
import torch

from cos_core.convergence import convergence_figure, distances, settle_step


def synthetic(settle=6, steps=12, seed=0):
    """x̂0(t) = final + e(t)·noise, with e shrinking fast until ``settle`` and tiny after."""
    gen = torch.Generator().manual_seed(seed)
    final = torch.randn(4, 3, 8, 8, generator=gen)
    noise = torch.randn(steps, 4, 3, 8, 8, generator=gen)
    scale = torch.tensor([1.0 - 0.9 * t / settle if t < settle else 0.02 * (steps - 1 - t) / steps
                          for t in range(steps)])
    return final.unsqueeze(0) + scale.view(-1, 1, 1, 1, 1) * noise


def test_settle_step_of_a_known_trajectory():
    d = distances(synthetic(settle=6))
    assert settle_step(d["to_final"], 0.1) == 6
    assert d["to_final"][-1] == 0 and np.isnan(d["change"][0])


def test_settle_rule_needs_every_later_step_below():
    assert settle_step([0.9, 0.05, 0.3, 0.08, 0.0], 0.1) == 3
    assert settle_step([0.5, 0.4], 0.1) == 1
    with pytest.raises(ValueError, match="threshold"):
        settle_step([0.1], 0)


def test_per_frame_and_region_distances_localise_a_late_change():
    x = synthetic(settle=2).clone()
    x[:-1, :, 1, :4, :4] += 5.0  # frame 1, top-left region differs until the last step
    d = distances(x, grid=2)
    assert d["to_final_frames"][3, 1] > 10 * d["to_final_frames"][3, 0]
    regions = d["to_final_regions"][3]
    assert regions[0, 0] > 3 * max(regions[0, 1], regions[1, 0], regions[1, 1])


def test_change_is_relative_step_difference():
    x = torch.stack([torch.ones(1, 1, 2, 2), 2 * torch.ones(1, 1, 2, 2)])
    d = distances(x)
    assert d["change"][1] == pytest.approx(0.5)
    assert d["to_final"][0] == pytest.approx(0.5)


def test_figure_renders():
    d = distances(synthetic())
    image = convergence_figure(list(range(12)), d, 6, 0.1, "test", sigmas=list(np.linspace(1, 0.1, 12)),
                               switch_step=4)
    assert image.size[0] > 800 and image.mode == "RGB"


def test_bad_shapes():
    with pytest.raises(ValueError):
        distances(torch.zeros(1, 4, 3, 8, 8))
