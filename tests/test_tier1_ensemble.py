"""Tier 1: the multi-seed mid-layer ensemble (paper Sec. 6) on a 30-block tiny Wan2.2 pair."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT, SEED = 4, 2, 21


def ensemble(deep, inputs, **kw):
    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

    args = dict(members=3, seed=SEED, steps="0", layers="20-29", alpha=1.0, merge="per layer",
                continue_with="all", model_low=deep.low)
    args.update(kw)
    return CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(deep.high, inputs.latent, **args).result


def cos_sample(deep, inputs, high=None, low=None, latent=None, noise=None, sampler=None, seed=SEED):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    out, _, trace, _ = CoSSampler.PREPARE_CLASS_CLONE(None).execute(
        model_high=high or deep.high, model_low=low or deep.low, positive=inputs.positive, negative=inputs.negative,
        latent=latent or inputs.latent, seed=seed, steps=STEPS, cfg=3.5, sampler_name="euler", scheduler="simple",
        switch_mode="step", boundary=0.9, switch_step=SPLIT, capture_steps="all", preview_frames=0, noise=noise,
        sampler=sampler).result
    return out["samples"], trace


def record_blocks(model, layers):
    """A clone that records every listed block's output (after any replace) per call, by σ."""
    seen = []

    def post(args):
        if args["block_index"] in layers:
            seen.append((args["block_index"], float(args["transformer_options"]["sigmas"][0]),
                         list(args["transformer_options"]["cond_or_uncond"]), args["img"].detach().clone()))
        return {"img": args["img"]}

    clone = model.clone()
    clone.set_model_double_block_patch(post)
    return clone, seen


def test_one_member_is_exactly_the_baseline(deep, i2v_inputs):
    high, low, latent, noise, sampler = ensemble(deep, i2v_inputs, members=1)
    got, _ = cos_sample(deep, i2v_inputs, high, low, latent, noise, sampler)
    baseline, _ = cos_sample(deep, i2v_inputs)
    assert torch.equal(got, baseline)


def test_alpha_zero_gives_each_members_own_baseline(deep, i2v_inputs):
    high, low, latent, noise, sampler = ensemble(deep, i2v_inputs, alpha=0.0)
    got, _ = cos_sample(deep, i2v_inputs, high, low, latent, noise, sampler)
    assert got.shape[0] == 3
    for k in range(3):
        alone, _ = cos_sample(deep, i2v_inputs, seed=SEED + k)
        assert torch.allclose(got[k:k + 1], alone, atol=1e-4), f"member {k}"


def test_member_noise_is_each_seeds_own_noise(deep, i2v_inputs):
    import comfy.sample

    _, _, latent, noise, _ = ensemble(deep, i2v_inputs, seeds="5, 9, 1")
    drawn = noise.generate_noise(latent)
    for k, seed in enumerate([5, 9, 1]):
        assert torch.equal(drawn[k:k + 1], comfy.sample.prepare_noise(i2v_inputs.latent["samples"], seed))


def test_members_identical_after_the_window_at_step_0_only(deep, i2v_inputs):
    high, low, latent, noise, sampler = ensemble(deep, i2v_inputs)
    high, seen = record_blocks(high, {19, 29})
    out, trace = cos_sample(deep, i2v_inputs, high, low, latent, noise, sampler)
    sigma0 = trace[0].sigma
    by = {(layer, round(s, 6)): (order, h) for layer, s, order, h in seen}
    for (layer, sigma), (order, h) in by.items():
        members = h.view(len(order), 3, *h.shape[1:])
        same = all(torch.equal(members[c, 0], members[c, k]) for c in range(len(order)) for k in (1, 2))
        if layer == 29 and sigma == round(sigma0, 6):
            assert same, "α = 1: every member leaves layer 29 with the mean"
        else:
            assert not same, f"layer {layer} at σ={sigma} must differ between members"
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2]), "members stay separate ('all')"


def test_window_mean_reading_also_equalises_at_the_window_end(deep, i2v_inputs):
    high, low, latent, noise, sampler = ensemble(deep, i2v_inputs, merge="window mean")
    high, seen = record_blocks(high, {25, 29})
    _, trace = cos_sample(deep, i2v_inputs, high, low, latent, noise, sampler)
    first = [(layer, h) for layer, s, _, h in seen if abs(s - trace[0].sigma) < 1e-6]
    for layer, h in first:
        members = h.view(-1, 3, *h.shape[1:])
        assert torch.equal(members[0, 0], members[0, 1]) == (layer == 29)


def test_primary_costs_one_plus_k_minus_one_steps_over_s(deep, i2v_inputs):
    """Counted in DiT rows (batch items × CFG halves) per model call."""
    import comfy.patcher_extension

    from chain_of_steps_pack.cos_core.ensemble import primary_cost

    def counting(model, rows):
        clone = model.clone()

        def wrapper(executor, x, *args, **kwargs):
            rows.append(x.shape[0])
            return executor(x, *args, **kwargs)

        clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "count", wrapper)
        return clone

    base_rows, ens_rows = [], []
    cos_sample(deep, i2v_inputs, counting(deep.high, base_rows), counting(deep.low, base_rows))
    high, low, latent, noise, sampler = ensemble(deep, i2v_inputs, continue_with="primary")
    out, trace = cos_sample(deep, i2v_inputs, counting(high, ens_rows), counting(low, ens_rows), latent, noise,
                            sampler)
    assert out.shape[0] == 1, "primary: one video out"
    assert sum(ens_rows) / sum(base_rows) == pytest.approx(primary_cost(3, 1, STEPS))
    assert trace[0].tensors["x0_hat"].shape[0] == 3 and trace[1].tensors["x0_hat"].shape[0] == 1


def test_bad_input_is_named(deep, i2v_inputs):
    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

    with pytest.raises(ValueError, match="layers: '20-30' is out of range; valid layers are 0..29"):
        ensemble(deep, i2v_inputs, layers="20-30")
    with pytest.raises(ValueError, match="seeds"):
        ensemble(deep, i2v_inputs, seeds="1, 2")
    assert "alpha" in CoSSeedEnsemble.validate_inputs(alpha=1.5)
    assert "steps" in CoSSeedEnsemble.validate_inputs(steps="-1")
    batch2 = {"samples": i2v_inputs.latent["samples"].repeat(2, 1, 1, 1, 1)}
    with pytest.raises(ValueError, match="latent: .*batch of 1"):
        CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(deep.high, batch2, 3, 0, "0", "20-29", 1.0, "per layer",
                                                          "all")
