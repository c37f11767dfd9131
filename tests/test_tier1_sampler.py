"""Tier 1: the CoS Sampler and CoS Capture x̂0 on tiny random-weight Wan models, in process."""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.comfy

STEPS, SPLIT, CFG, SEED = 6, 3, 3.5, 7


def stock_two_stage(tiny, inputs, high, low, steps=STEPS, split=SPLIT, sampler="euler"):
    """ComfyUI's Wan2.2 template: two KSamplerAdvanced, high expert 0..split, low split..end."""
    import nodes

    ks = nodes.KSamplerAdvanced()
    (mid,) = ks.sample(high, "enable", SEED, steps, CFG, sampler, "simple", inputs.positive, inputs.negative,
                       inputs.latent, 0, split, "enable")
    (out,) = ks.sample(low, "disable", SEED, steps, CFG, sampler, "simple", inputs.positive, inputs.negative,
                       mid, split, 10000, "disable")
    return out["samples"]


def run_cos_sampler(pack, tiny, inputs, **overrides):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    node = CoSSampler.PREPARE_CLASS_CLONE(None)
    args = dict(model_high=tiny.high, positive=inputs.positive, negative=inputs.negative, latent=inputs.latent,
                seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="simple", switch_mode="step",
                boundary=0.9, switch_step=SPLIT, capture_steps="all", preview_frames=2, model_low=tiny.low)
    args.update(overrides)
    return node.execute(**args).result[:3]


def test_cos_sampler_equals_stock_two_ksampler_advanced(pack, tiny, i2v_inputs):
    latent, x0_steps, trace = run_cos_sampler(pack, tiny, i2v_inputs)
    reference = stock_two_stage(tiny, i2v_inputs, tiny.high, tiny.low)
    assert torch.equal(latent["samples"], reference)
    assert trace.steps == list(range(STEPS))
    assert [trace[s].expert for s in trace.steps] == ["high"] * SPLIT + ["low"] * (STEPS - SPLIT)
    assert x0_steps["samples"].shape[0] == STEPS * latent["samples"].shape[0]


def test_last_x0_equals_final_sample(pack, tiny, i2v_inputs):
    latent, _, trace = run_cos_sampler(pack, tiny, i2v_inputs)
    last = trace[STEPS - 1].tensors["x0_hat"]
    assert torch.allclose(last, latent["samples"].float(), atol=1e-5)


def test_trace_sigmas_follow_the_schedule_and_boundary(pack, tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.sampler import full_schedule

    sigmas = full_schedule(tiny.high, STEPS, "euler", "simple")
    _, _, trace = run_cos_sampler(pack, tiny, i2v_inputs, switch_mode="boundary sigma", boundary=0.9)
    assert [round(trace[s].sigma, 6) for s in trace.steps] == [round(float(s), 6) for s in sigmas[:-1]]
    switch = trace.meta["switch_step"]
    assert all(float(sigmas[i]) >= 0.9 for i in range(switch)) and float(sigmas[switch]) < 0.9
    assert {trace[s].expert for s in range(switch)} <= {"high"}


def test_x0_is_x_minus_sigma_v(pack, tiny):
    """The callback's x0 equals x_σ − σ·v with v the model's raw output (paper Eq. 2), cfg = 1."""
    import comfy.patcher_extension
    import comfy.sample

    from chain_of_steps_pack.cos_core.x0 import x0_hat
    from comfy_fixtures import text_conditioning

    velocities, states = [], []

    def keep_v(executor, *args, **kwargs):
        out = executor(*args, **kwargs)
        velocities.append(out.detach().clone())
        return out

    model = tiny.t2v.clone()
    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test", keep_v)
    latent = torch.zeros(1, 16, 3, 8, 8)
    noise = comfy.sample.prepare_noise(latent, 3)
    comfy.sample.sample(model, noise, 4, 1.0, "euler", "simple", text_conditioning(1), text_conditioning(2), latent,
                        callback=lambda i, x0, x, n: states.append((i, x0.clone(), x.clone())), disable_pbar=True)
    sigmas = model.get_model_object("model_sampling")
    from chain_of_steps_pack.nodes.sampler import full_schedule

    schedule = full_schedule(tiny.t2v, 4, "euler", "simple")
    assert len(velocities) == len(states) == 4
    for (i, x0, x), v in zip(states, velocities):
        assert torch.allclose(x0_hat(x, float(schedule[i]), v.float()), x0, atol=1e-5), f"step {i}"
    assert sigmas is not None


def test_capture_node_gives_one_trace_with_global_steps(pack, tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.capture import CoSCaptureX0

    node = CoSCaptureX0.PREPARE_CLASS_CLONE(None)
    high, low, handle = node.execute(tiny.high, "all", model_low=tiny.low).result
    stock = stock_two_stage(tiny, i2v_inputs, tiny.high, tiny.low)
    captured = stock_two_stage(tiny, i2v_inputs, high, low)
    assert torch.equal(stock, captured), "capturing must not change the result"
    trace = handle.snapshot()
    assert trace.steps == list(range(STEPS))
    assert [trace[s].expert for s in trace.steps] == ["high"] * SPLIT + ["low"] * (STEPS - SPLIT)
    assert torch.allclose(trace[STEPS - 1].tensors["x0_hat"], stock.float(), atol=1e-5)
    _, _, sampler_trace = run_cos_sampler(pack, tiny, i2v_inputs)
    for s in trace.steps:
        assert torch.equal(trace[s].tensors["x0_hat"], sampler_trace[s].tensors["x0_hat"])
        assert trace[s].sigma == pytest.approx(sampler_trace[s].sigma)
    # the user's MODELs are untouched: no wrapper leaked onto them
    assert not tiny.high.wrappers and not tiny.low.wrappers


def test_capture_resets_between_runs(pack, tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.capture import CoSCaptureX0

    high, low, handle = CoSCaptureX0.PREPARE_CLASS_CLONE(None).execute(tiny.high, "0,-1", model_low=tiny.low).result
    stock_two_stage(tiny, i2v_inputs, high, low)
    first = handle.snapshot()
    stock_two_stage(tiny, i2v_inputs, high, low, steps=4, split=2)
    second = handle.snapshot()
    assert first.steps == [0, STEPS - 1] and second.steps == [0, 3]
    assert second.meta["total_steps"] == 4


def test_capture_steps_subset_and_heun(pack, tiny, i2v_inputs):
    """A multi-evaluation sampler still records one x̂0 per step, keyed by σ."""
    latent, _, trace = run_cos_sampler(pack, tiny, i2v_inputs, sampler_name="heun", capture_steps="0,2,-1")
    assert trace.steps == [0, 2, STEPS - 1]
    assert torch.allclose(trace[STEPS - 1].tensors["x0_hat"], latent["samples"].float(), atol=1e-5)


def test_single_model_matches_ksampler(pack, tiny, i2v_inputs):
    import nodes

    (ref,) = nodes.KSampler().sample(tiny.high, SEED, STEPS, CFG, "euler", "simple", i2v_inputs.positive,
                                     i2v_inputs.negative, i2v_inputs.latent)
    latent, _, trace = run_cos_sampler(pack, tiny, i2v_inputs, model_low=None)
    assert torch.equal(latent["samples"], ref["samples"])
    assert {trace[s].expert for s in trace.steps} == {"single"}


@pytest.mark.parametrize("field,value,needle", [
    ("capture_steps", "0-99", "capture_steps"),
    ("capture_steps", "", "capture_steps"),
    ("boundary", 1.0, "boundary"),
    ("switch_step", 99, "switch_step"),
])
def test_bad_settings_are_named(pack, field, value, needle):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    values = dict(steps=STEPS, capture_steps="all", switch_mode="step", boundary=0.9, switch_step=SPLIT)
    values[field] = value
    message = CoSSampler.validate_inputs(**values)
    assert isinstance(message, str) and needle in message


def test_non_video_latent_and_non_flow_model_are_refused(pack, tiny, i2v_inputs):
    import comfy.model_sampling

    with pytest.raises(ValueError, match="latent"):
        run_cos_sampler(pack, tiny, i2v_inputs, latent={"samples": torch.zeros(1, 16, 8, 8)})
    eps = tiny.high.clone()

    class EpsSampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
        pass

    eps.add_object_patch("model_sampling", EpsSampling(tiny.high.model.model_config))
    with pytest.raises(ValueError, match="model_high.*flow"):
        run_cos_sampler(pack, tiny, i2v_inputs, model_high=eps)
