"""Tier 1: the information-flow sweep (paper Fig. 3c) on tiny Wan experts."""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT = 5, 2


@pytest.fixture
def output_dir(comfy_root, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    return tmp_path


def sweep(tiny, inputs, mode="step", injections="all", **kw):
    from chain_of_steps_pack.nodes.info_flow import CoSInformationFlow

    args = dict(model_high=tiny.high, model_low=tiny.low, positive=inputs.positive, negative=inputs.negative,
                latent=inputs.latent, seed=5, steps=STEPS, cfg=3.5, sampler_name="euler", scheduler="simple",
                switch_mode="step", boundary=0.9, switch_step=SPLIT, mode=mode, injections=injections, strength=1.0,
                noise_seed=1, filename_prefix="cos/flow")
    args.update(kw)
    image, text = CoSInformationFlow.PREPARE_CLASS_CLONE(None).execute(**args).result
    return image, json.loads(text)


def test_step_sweep_matrix_shape_zeros_before_injection_and_prefix_reuse(tiny, i2v_inputs, output_dir):
    image, numbers = sweep(tiny, i2v_inputs)
    matrix = numbers["dissimilarity"]
    assert numbers["injections"] == list(range(STEPS)) and len(matrix) == STEPS and len(matrix[0]) == STEPS
    for s, row in enumerate(matrix):
        assert all(v == 0 for v in row[:s]), "steps before the injection are untouched"
        assert row[s] > 0.05, "the injected step itself is corrupted"
    assert numbers["trajectories"] == STEPS + 1
    assert numbers["steps_evaluated"] == STEPS + sum(STEPS - s for s in range(STEPS)) < (STEPS + 1) * STEPS
    assert numbers["sensitivity"] == [row[-1] for row in matrix]
    assert image.shape[0] == 1 and image.shape[-1] == 3
    assert sorted(p.suffix for p in (output_dir / "cos").iterdir()) == [".csv", ".json"]


def test_resumed_perturbed_run_equals_a_whole_run_with_the_injection(tiny, i2v_inputs):
    """Prefix reuse is exact: resuming from the clean x_s then injecting = injecting in a full run."""
    from chain_of_steps_pack.cos_core.perturb import NoiseInjection
    from chain_of_steps_pack.nodes.sampling import plan_run, sample_run

    run = plan_run(tiny.high, i2v_inputs.positive, i2v_inputs.negative, i2v_inputs.latent, 5, STEPS, 3.5, "euler",
                   "simple", "step", 0.9, SPLIT, model_low=tiny.low)
    states = {}

    def keep(index, expert, start, end, model):
        return lambda step, x0, x, n: states.__setitem__(start + step, x.detach().clone())

    sample_run(run, keep)
    injection = NoiseInjection("step", 3, 1.0, 2)
    whole, _ = sample_run(run, injection=injection)
    resumed, _ = sample_run(run, injection=injection, start_step=3, start_x=states[3])
    assert torch.allclose(whole, resumed, atol=1e-6)


def test_frame_sweep_and_bad_injections(tiny, i2v_inputs, output_dir):
    _, numbers = sweep(tiny, i2v_inputs, mode="frame", injections="0,2")
    assert numbers["injections"] == [0, 2] and numbers["steps_evaluated"] == 3 * STEPS
    assert all(row[0] > 0 for row in numbers["dissimilarity"]), "frame noise acts from the first step"
    with pytest.raises(ValueError, match="injections"):
        sweep(tiny, i2v_inputs, mode="frame", injections="3")
    from chain_of_steps_pack.nodes.info_flow import CoSInformationFlow

    assert "strength" in CoSInformationFlow.validate_inputs(strength=2.0)
    assert "injections" in CoSInformationFlow.validate_inputs(steps=5, mode="step", injections="9")
