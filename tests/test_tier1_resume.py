"""Tier 1: stop at step k, resume (also from a saved file), pick among seeds (tiny Wan2.2 pair)."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT, SEED = 6, 3, 13


def sampler_run(tiny, inputs, stop=-1, sampler_name="euler", **kw):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    args = dict(model_high=tiny.high, model_low=tiny.low, positive=inputs.positive, negative=inputs.negative,
                latent=inputs.latent, seed=SEED, steps=STEPS, cfg=3.5, sampler_name=sampler_name, scheduler="simple",
                switch_mode="step", boundary=0.9, switch_step=SPLIT, capture_steps="all", stop_after_step=stop,
                preview_frames=0)
    args.update(kw)
    return CoSSampler.PREPARE_CLASS_CLONE(None).execute(**args).result


def resume(tiny, inputs, state, pick=-1, **kw):
    from chain_of_steps_pack.nodes.resume import CoSResume

    args = dict(model_high=tiny.high, positive=inputs.positive, negative=inputs.negative, state=state, pick=pick,
                capture_steps="all", model_low=tiny.low)
    args.update(kw)
    return CoSResume.PREPARE_CLASS_CLONE(None).execute(**args).result


@pytest.fixture(scope="module")
def full(tiny, i2v_inputs):
    return sampler_run(tiny, i2v_inputs)


@pytest.mark.parametrize("k", [0, SPLIT - 2, SPLIT - 1, SPLIT, STEPS - 2])
def test_stop_then_resume_equals_one_run(tiny, i2v_inputs, full, k):
    """k before, at (the next step starts the low-noise stage) and after the expert switch."""
    latent, _, trace, state = sampler_run(tiny, i2v_inputs, stop=k)
    assert trace.steps == list(range(k + 1))
    assert torch.equal(latent["samples"], full[2][k].tensors["x0_hat"]), "stopped LATENT = clean x̂0 at k"
    assert state.records()[0].step == k + 1
    final, _, rest, = resume(tiny, i2v_inputs, state)
    assert torch.equal(final["samples"], full[0]["samples"])
    assert rest.steps == list(range(k + 1, STEPS))


def test_resume_from_a_saved_file_days_later(tiny, i2v_inputs, full, tmp_path):
    from chain_of_steps_pack.cos_core.trace import Trace

    _, _, _, state = sampler_run(tiny, i2v_inputs, stop=SPLIT + 1)
    path = state.save(tmp_path / "state.safetensors")
    final, _, _ = resume(tiny, i2v_inputs, Trace.load(path))
    assert torch.equal(final["samples"], full[0]["samples"])


def test_pick_among_seeds_costs_n_k_plus_rest(tiny, i2v_inputs):
    """N seeds for k steps, then one finished: N·k + (S − k) batch rows of model work, not N·S."""
    import comfy.patcher_extension

    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

    rows = []

    def counting(model):
        clone = model.clone()
        clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "count",
                                   lambda ex, x, *a, **kw: (rows.append(x.shape[0] // 2), ex(x, *a, **kw))[1])
        return clone

    high, low = counting(tiny.high), counting(tiny.low)
    n, k = 3, 2
    _, _, latent, noise, _ = CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(
        high, i2v_inputs.latent, n, SEED, "0", "0", 0.0, "per layer", "all", model_low=low).result
    x0, _, _, state = sampler_run(tiny, i2v_inputs, stop=k - 1, model_high=high, model_low=low, latent=latent,
                                  noise=noise)
    assert x0["samples"].shape[0] == n
    final, _, _ = resume(tiny, i2v_inputs, state, pick=1, model_high=high, model_low=low)
    assert sum(rows) == n * k + (STEPS - k)
    alone, _, _, _ = sampler_run(tiny, i2v_inputs, seed=SEED + 1)
    assert torch.allclose(final["samples"], alone["samples"], atol=1e-4), "the picked seed finishes as if alone"


def test_bad_resumes_are_refused(tiny, i2v_inputs, tmp_path):
    from chain_of_steps_pack.cos_core.trace import Trace, TraceFormatError
    from comfy_fixtures import text_conditioning

    _, _, trace, state = sampler_run(tiny, i2v_inputs, stop=2)
    with pytest.raises(ValueError, match="state: not the state"):
        resume(tiny, i2v_inputs, trace)
    with pytest.raises(ValueError, match="model_high: not the model"):
        resume(tiny, i2v_inputs, state, model_high=tiny.low)
    with pytest.raises(ValueError, match="positive: the conditioning differs"):
        resume(tiny, i2v_inputs, state, positive=text_conditioning(99))
    with pytest.raises(ValueError, match="pick"):
        resume(tiny, i2v_inputs, state, pick=3)
    path = state.save(tmp_path / "s.safetensors")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(TraceFormatError):
        Trace.load(path)
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    assert "stop_after_step" in CoSSampler.validate_inputs(steps=6, stop_after_step=6)


def test_schedule_mismatch_is_refused(tiny, i2v_inputs):
    _, _, _, state = sampler_run(tiny, i2v_inputs, stop=2)
    state.meta["sigmas"] = [s * 0.9 for s in state.meta["sigmas"]]
    with pytest.raises(ValueError, match="state: the σ schedule"):
        resume(tiny, i2v_inputs, state)
