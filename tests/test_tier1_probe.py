"""Tier 1: CoS Layer Probe on tiny random-weight Wan experts (in process)."""
from __future__ import annotations

import re
import types

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT = 5, 2


def probe(tiny, **kw):
    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    args = dict(layers="all", steps="all", cfg_half="cond", energy=True, pca=True,
                pca_basis="shared (first probed step)", raw_states=False, raw_cap_mib=64, model_low=tiny.low)
    args.update(kw)
    return CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(tiny.high, **args).result


def sample(tiny, inputs, high, low, steps=STEPS, split=SPLIT, seed=11):
    import nodes

    ks = nodes.KSamplerAdvanced()
    (mid,) = ks.sample(high, "enable", seed, steps, 3.5, "euler", "simple", inputs.positive, inputs.negative,
                       inputs.latent, 0, split, "enable")
    (out,) = ks.sample(low, "disable", seed, steps, 3.5, "euler", "simple", inputs.positive, inputs.negative,
                       mid, split, 10000, "disable")
    return out["samples"]


@pytest.fixture(scope="module")
def probed_run(tiny, i2v_inputs):
    high, low, handle = probe(tiny, raw_states=True)
    out = sample(tiny, i2v_inputs, high, low)
    return types.SimpleNamespace(out=out, trace=handle.snapshot(), handle=handle)


def test_probing_changes_nothing(tiny, i2v_inputs, probed_run):
    assert torch.equal(probed_run.out, sample(tiny, i2v_inputs, tiny.high, tiny.low))


def test_one_trace_with_global_steps_and_experts(probed_run):
    trace = probed_run.trace
    assert trace.steps == list(range(STEPS))
    assert [trace[s].expert for s in trace.steps] == ["high"] * SPLIT + ["low"] * (STEPS - SPLIT)
    assert trace.meta["layers"] == [0, 1, 2, 3]
    names = set(trace[0].tensors)
    assert {f"energy/L{i:02d}/cond" for i in range(4)} <= names and "energy/L00/uncond" not in names


def test_energy_is_the_norm_of_the_block_output(probed_run):
    for step in probed_run.trace.steps:
        record = probed_run.trace[step]
        for layer in range(4):
            raw = record.tensors[f"raw/L{layer:02d}/cond"]  # (B, F, H, W, D)
            energy = record.tensors[f"energy/L{layer:02d}/cond"]  # (B, F, H, W)
            assert energy.shape == raw.shape[:-1]
            assert torch.allclose(energy, raw.float().norm(dim=-1), rtol=1e-4, atol=1e-5)


def test_shared_pca_basis_colours_every_step_the_same_way(probed_run):
    """Shared basis: step k's colours are the projection of step k's states on the step-0 basis, so
    a token whose state did not change keeps its colour."""
    from chain_of_steps_pack.cos_core.pca import fit_basis, project_rgb

    trace = probed_run.trace
    raw0 = trace[0].tensors["raw/L02/cond"].float()
    basis = fit_basis(raw0.reshape(-1, raw0.shape[-1]))
    for step in trace.steps:
        raw = trace[step].tensors["raw/L02/cond"].float()
        expected = project_rgb(raw.reshape(raw.shape[0], -1, raw.shape[-1]), basis).reshape(*raw.shape[:-1], 3)
        assert torch.allclose(trace[step].tensors["pca/L02/cond"].float(), expected, atol=2e-3)


def test_both_halves_and_step_subset(tiny, i2v_inputs):
    high, low, handle = probe(tiny, layers="1,3", steps="0,-1", cfg_half="both", pca=False)
    sample(tiny, i2v_inputs, high, low)
    trace = handle.snapshot()
    assert trace.steps == [0, STEPS - 1]
    assert set(trace[0].tensors) == {"energy/L01/cond", "energy/L01/uncond", "energy/L03/cond", "energy/L03/uncond"}
    assert not torch.equal(trace[0].tensors["energy/L01/cond"], trace[0].tensors["energy/L01/uncond"])


def test_raw_states_refuse_past_the_cap_and_leave_nothing_behind(tiny, i2v_inputs):
    high, low, handle = probe(tiny, raw_states=True, raw_cap_mib=1, layers="all")
    big = dict(i2v_inputs.__dict__)
    big["latent"] = {"samples": torch.zeros(1, 16, 3, 32, 32)}  # 3×16×16 tokens × 128 × 4 B = 0.4 MiB per layer
    with pytest.raises(MemoryError, match="raw_cap_mib") as caught:
        sample(tiny, types.SimpleNamespace(**big), high, low)
    taken, cap = (float(v) for v in re.findall(r"([\d.]+) MiB", str(caught.value)))
    assert cap == 1 and 1 < taken <= 1.5  # shown unrounded: not "1 MiB, over the cap of 1 MiB"
    assert not tiny.high.model_options.get("transformer_options", {}).get("patches_replace")
    # the same patched models then run cleanly with small inputs and give the unprobed result
    high2, low2, _ = probe(tiny)
    assert torch.equal(sample(tiny, i2v_inputs, high2, low2), sample(tiny, i2v_inputs, tiny.high, tiny.low))


def test_interrupt_leaves_no_hook(tiny, i2v_inputs):
    import comfy.model_management

    high, low, handle = probe(tiny)
    calls = {"n": 0}
    original = handle.step_of

    def interrupting_step_of(sigma):
        calls["n"] += 1
        if calls["n"] == 6:
            comfy.model_management.interrupt_current_processing(True)
        return original(sigma)

    handle.step_of = interrupting_step_of
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        sample(tiny, i2v_inputs, high, low)
    comfy.model_management.interrupt_current_processing(False)
    assert not tiny.high.model_options.get("transformer_options", {}).get("patches_replace")
    assert not any(m._forward_hooks for m in tiny.high.model.modules())
    assert torch.equal(sample(tiny, i2v_inputs, tiny.high, tiny.low), sample(tiny, i2v_inputs, *probe(tiny)[:2]))


def test_bad_input_is_named(tiny):
    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    with pytest.raises(ValueError, match="layers: '4' is out of range"):
        probe(tiny, layers="0,4")
    assert "steps" in CoSLayerProbe.validate_inputs(steps="")
    not_wan = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="model: a Linear model is not supported"):
        CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(not_wan, "all", "all", "cond", True, True,
                                                        "per step")


def test_trace_memory_at_full_wan22_size_stays_under_1_gib(probed_run):
    """Bytes per token per layer per step, measured on the tiny run, scaled to 40 layers × 50 steps
    × 32,760 tokens (81 frames at 480×832), cond half: energy float32 + PCA float16×3 = 10 B."""
    record = probed_run.trace[0]
    tokens = record.tensors["energy/L00/cond"].numel()
    per_token = sum(record.tensors[f"{kind}/L00/cond"].nbytes for kind in ("energy", "pca")) / tokens
    assert per_token == 10
    full = 40 * 50 * 32760 * per_token
    assert full < 2**30, f"{full / 2**20:.0f} MiB"


@pytest.mark.parametrize("view", ["energy grid (layers × frames)", "PCA grid (layers × frames)",
                                  "temporal energy curves", "mean energy across steps"])
def test_energy_maps_draw_every_view(probed_run, view):
    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps

    image = CoSEnergyMaps.PREPARE_CLASS_CLONE(None).execute(probed_run.handle, view, -1, "all", "global", 0,
                                                            "cond").result[0]
    assert image.ndim == 4 and image.shape[0] == 1 and image.shape[-1] == 3 and image.shape[2] > 400
    assert float(image.std()) > 0.02


def test_energy_maps_errors_name_the_input(probed_run):
    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps

    node = CoSEnergyMaps.PREPARE_CLASS_CLONE(None)
    with pytest.raises(ValueError, match="uncond"):
        node.execute(probed_run.handle, "energy grid (layers × frames)", 0, "all", "global", 0, "uncond")
    with pytest.raises(ValueError, match="layers"):
        node.execute(probed_run.handle, "energy grid (layers × frames)", 0, "7", "global", 0, "cond")
    assert "normalise" in CoSEnergyMaps.validate_inputs(normalise="log")


def test_two_probes_on_the_same_blocks_both_record_everything(tiny, i2v_inputs, probed_run):
    """ComfyUI keeps one replace function per block; a second probe chains with the first instead of
    replacing it, so both traces hold every layer and step, equal to a lone probe's."""
    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    first_high, first_low, first = probe(tiny, layers="all", pca=False)
    second_high, second_low, second = CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(
        first_high, layers="1-3", steps="all", cfg_half="cond", energy=True, pca=False,
        pca_basis="per step", raw_states=False, raw_cap_mib=64, model_low=first_low).result
    out = sample(tiny, i2v_inputs, second_high, second_low)
    assert torch.equal(out, probed_run.out)
    alone, one, two = probed_run.trace, first.snapshot(), second.snapshot()
    assert one.steps == two.steps == list(range(STEPS))
    for step in range(STEPS):
        for layer in range(4):
            name = f"energy/L{layer:02d}/cond"
            assert torch.equal(one[step].tensors[name], alone[step].tensors[name])
            assert (name in two[step].tensors) == (layer >= 1)
            if layer >= 1:
                assert torch.equal(two[step].tensors[name], alone[step].tensors[name])
    # the user's models and the first probe's clones are left as they were
    assert not tiny.high.model_options.get("transformer_options", {}).get("patches_replace")
    first_blocks = first_high.model_options["transformer_options"]["patches_replace"]["dit"]
    second_blocks = second_high.model_options["transformer_options"]["patches_replace"]["dit"]
    assert set(first_blocks) == set(second_blocks) == {("double_block", i) for i in range(4)}
    assert [first_blocks[key] is second_blocks[key] for key in sorted(first_blocks)] == [True, False, False, False]
