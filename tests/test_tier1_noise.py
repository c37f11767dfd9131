"""Tier 1: noise injection on the trajectory (paper Sec. 3.2) with tiny Wan experts, in process."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT = 6, 3


def run(tiny, inputs, perturb=None, sampler_name="euler", **kw):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    args = dict(model_high=tiny.high, model_low=tiny.low, positive=inputs.positive, negative=inputs.negative,
                latent=inputs.latent, seed=5, steps=STEPS, cfg=3.5, sampler_name=sampler_name, scheduler="simple",
                switch_mode="step", boundary=0.9, switch_step=SPLIT, capture_steps="all", preview_frames=0,
                perturb=perturb)
    args.update(kw)
    latent, _, trace, _ = CoSSampler.PREPARE_CLASS_CLONE(None).execute(**args).result
    return latent["samples"], trace


def injection(mode, index, strength=1.0, seed=9):
    from chain_of_steps_pack.nodes.noise import CoSNoiseInjection

    return CoSNoiseInjection.PREPARE_CLASS_CLONE(None).execute(mode, index, strength, seed).result


@pytest.fixture(scope="module")
def clean(tiny, i2v_inputs):
    return run(tiny, i2v_inputs)


@pytest.mark.parametrize("s", [0, 2, 4])
def test_noise_at_step_leaves_earlier_steps_identical(tiny, i2v_inputs, clean, s):
    perturb, _ = injection("step", s)
    out, trace = run(tiny, i2v_inputs, perturb)
    _, clean_trace = clean
    for t in range(s):
        assert torch.equal(trace[t].tensors["x0_hat"], clean_trace[t].tensors["x0_hat"]), f"step {t} < {s}"
    assert not torch.equal(trace[s].tensors["x0_hat"], clean_trace[s].tensors["x0_hat"])
    assert not torch.equal(out, clean[0])


def test_zero_strength_is_the_clean_run(tiny, i2v_inputs, clean):
    out, _ = run(tiny, i2v_inputs, injection("frame", 1, 0.0)[0])
    assert torch.equal(out, clean[0])


def test_noise_at_frame_touches_only_that_frame_at_every_step(tiny, i2v_inputs, monkeypatch):
    from chain_of_steps_pack.cos_core import perturb as perturb_module

    seen = []
    original = perturb_module.NoiseInjection.apply

    def spy(self, x, step):
        out = original(self, x, step)
        seen.append((step, (out - x).abs().sum(dim=(0, 1, 3, 4))))
        return out

    monkeypatch.setattr(perturb_module.NoiseInjection, "apply", spy)
    run(tiny, i2v_inputs, injection("frame", 1)[0])
    assert [s for s, _ in seen] == list(range(STEPS)), "frame noise before every step"
    for step, per_frame in seen:
        assert per_frame[1] > 0 and per_frame[0] == 0 and per_frame[2] == 0, f"step {step}: {per_frame}"


def test_sampler_output_counts_steps_across_two_stages(tiny, i2v_inputs):
    """The SAMPLER for SamplerCustomAdvanced, used in both stages of a two-stage graph, injects at the
    global step and gives the same result as the CoS Sampler's perturb input."""
    import comfy.sample

    from chain_of_steps_pack.nodes.sampling import full_schedule

    perturb, sampler = injection("step", 4)
    sigmas = full_schedule(tiny.high, STEPS, "euler", "simple")
    latent = i2v_inputs.latent["samples"]
    noise = comfy.sample.prepare_noise(latent, 5)
    mid = comfy.sample.sample_custom(tiny.high, noise, 3.5, sampler, sigmas[:SPLIT + 1], i2v_inputs.positive,
                                     i2v_inputs.negative, latent, disable_pbar=True, seed=5)
    out = comfy.sample.sample_custom(tiny.low, torch.zeros_like(mid), 3.5, sampler, sigmas[SPLIT:],
                                     i2v_inputs.positive, i2v_inputs.negative, mid, disable_pbar=True, seed=5)
    reference, _ = run(tiny, i2v_inputs, perturb)
    assert torch.equal(out, reference)


def test_bad_injections_are_named(tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.noise import CoSNoiseInjection

    with pytest.raises(ValueError, match="index: step 6 is outside 0..5"):
        run(tiny, i2v_inputs, injection("step", 6)[0])
    with pytest.raises(ValueError, match="index: latent frame 3 is outside 0..2"):
        run(tiny, i2v_inputs, injection("frame", 3)[0])
    assert "strength" in CoSNoiseInjection.validate_inputs(strength=1.5)
    with pytest.raises(ValueError, match="strength"):
        injection("step", 1, 1.5)
