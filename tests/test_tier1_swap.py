"""Tier 1: layer-wise latent swap (paper Sec. 5.2) on the tiny 4-block Wan2.2 pair."""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SPLIT = 4, 2


def plan(tiny, positive, negative, latent):
    from chain_of_steps_pack.nodes.sampling import plan_run

    return plan_run(tiny.high, positive, negative, latent, 3, STEPS, 3.5, "euler", "simple", "step", 0.9, SPLIT,
                    model_low=tiny.low)


def sweep(tiny, inputs, alt_positive, **kw):
    from chain_of_steps_pack.nodes.swap import CoSLayerSwapSweep

    args = dict(model_high=tiny.high, model_low=tiny.low, positive=inputs.positive, negative=inputs.negative,
                latent=inputs.latent, seed=3, steps=STEPS, cfg=3.5, sampler_name="euler", scheduler="simple",
                switch_mode="step", boundary=0.9, switch_step=SPLIT, alt_positive=alt_positive,
                alt_negative=inputs.negative, swap_step=0, layers="all", show_frame=-1)
    args.update(kw)
    image, text = CoSLayerSwapSweep.PREPARE_CLASS_CLONE(None).execute(**args).result
    return image, json.loads(text)


def test_swapping_a_runs_own_states_reproduces_it(tiny, i2v_inputs):
    image, numbers = sweep(tiny, i2v_inputs, i2v_inputs.positive)
    assert numbers["distance_to_original"] == [0.0] * 4
    assert numbers["trajectories"] == 6 and image.shape[-1] == 3


def test_swap_sets_block_k_to_the_alternative_and_leaves_earlier_blocks(tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.adapters import adapter_for
    from chain_of_steps_pack.nodes.sampling import sample_run
    from chain_of_steps_pack.nodes.swap import SwapState, patch_for_swap, record_alternative
    from comfy_fixtures import text_conditioning

    adapter = adapter_for(tiny.high)
    alt = plan(tiny, text_conditioning(77), i2v_inputs.negative, i2v_inputs.latent)
    recorded = record_alternative(alt, adapter, [0, 1, 2, 3], 0)

    def blocks_at_step0(models):
        run = plan(tiny, i2v_inputs.positive, i2v_inputs.negative, i2v_inputs.latent)
        seen = {}

        def post(args):
            options = args["transformer_options"]
            if abs(float(options["sigmas"][0]) - float(run.sigmas[0])) < 1e-6:
                seen[args["block_index"]] = (list(options["cond_or_uncond"]), args["img"].detach().clone())
            return {"img": args["img"]}

        patched = {}
        for expert, model in (models or run.models).items():
            clone = model.clone()
            clone.set_model_double_block_patch(post)
            patched[expert] = clone
        run.models = patched
        sample_run(run)
        return seen

    clean = blocks_at_step0(None)
    state = SwapState(adapter, recorded, 0, 2)
    run = plan(tiny, i2v_inputs.positive, i2v_inputs.negative, i2v_inputs.latent)
    swapped = blocks_at_step0({e: patch_for_swap(m, state) for e, m in run.models.items()})
    assert state.swaps == 1
    for layer in (0, 1):
        assert torch.equal(swapped[layer][1], clean[layer][1]), f"layer {layer} < k unchanged"
    order, hidden = swapped[2]
    record = recorded[0]
    for i, half in enumerate("cond" if c == 0 else "uncond" for c in order):
        want = record.tensors[f"raw/L02/{half}"].reshape(hidden.shape[0] // len(order), -1, hidden.shape[-1])
        assert torch.equal(hidden[i:i + 1], want), f"block 2 output = the alternative's ({half})"
    assert not torch.equal(swapped[3][1], clean[3][1])


def test_sweep_moves_outcomes_towards_the_alternative(tiny, i2v_inputs):
    from comfy_fixtures import text_conditioning

    _, numbers = sweep(tiny, i2v_inputs, text_conditioning(55), layers="0,3")
    assert all(d > 0 for d in numbers["distance_to_original"])
    assert len(numbers["distance_to_alternative"]) == 2


def test_bad_input_is_named(tiny, i2v_inputs):
    from chain_of_steps_pack.cos_core.trace import Trace
    from chain_of_steps_pack.nodes.adapters import adapter_for
    from chain_of_steps_pack.nodes.swap import CoSLayerSwapSweep, SwapState

    with pytest.raises(ValueError, match="layers: '4' is out of range"):
        sweep(tiny, i2v_inputs, i2v_inputs.positive, layers="4")
    assert "swap_step" in CoSLayerSwapSweep.validate_inputs(steps=4, swap_step=4)
    bigger = {"samples": torch.zeros(1, 16, 3, 8, 12)}
    with pytest.raises(ValueError, match="alt_latent"):
        sweep(tiny, i2v_inputs, i2v_inputs.positive, alt_latent=bigger)
    state = SwapState(adapter_for(tiny.high), Trace(), 0, 1)
    with pytest.raises(ValueError, match="alternative: no recorded"):
        state.swapped(torch.zeros(2, 48, 128), {"cond_or_uncond": [1, 0], "grid_sizes": (3, 4, 4)})
