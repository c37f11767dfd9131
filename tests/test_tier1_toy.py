"""Tier 1: the shipped CoS-Toy model loads through ComfyUI as a Wan I2V model and solves held-out tasks."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

N, STEPS = 6, 6
HELD_OUT = range(500, 500 + N)        # training instances use seeds >= 1 000 000


def toy():
    from chain_of_steps_pack.nodes import toy

    return toy


def batch_inputs(kind, seeds, rooms=3):
    from comfy_extras.nodes_wan import WanImageToVideo

    t = toy()
    vae = t.ToyVAE()
    ins = []
    for s in seeds:
        start, _, cond = t.CoSToyTask.execute(kind, s, rooms).result
        ins.append(WanImageToVideo.execute(cond, cond, vae, 96, 96, 17, 1, start_image=start).result)
    extra = {"concat_latent_image": torch.cat([p[0][1]["concat_latent_image"] for p, _, _ in ins]),
             "concat_mask": ins[0][0][0][1]["concat_mask"]}
    cond = [[ins[0][0][0][0], extra]]
    return cond, {"samples": torch.cat([lat["samples"] for _, _, lat in ins])}


def success_rate(model, kind, seeds):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    cond, latent = batch_inputs(kind, seeds)
    out, _, trace, _ = CoSSampler.PREPARE_CLASS_CLONE(None).execute(
        model_high=model, positive=cond, negative=cond, latent=latent, seed=3, steps=STEPS, cfg=1.0,
        sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=STEPS,
        capture_steps="0,-1", preview_frames=0).result
    videos = toy().ToyVAE().decode(out["samples"])
    scores = [toy().CoSToyScore.execute(v, kind, s, 3).result[0] for s, v in zip(seeds, videos)]
    return sum(scores) / len(scores), trace


@pytest.fixture(scope="module")
def toy_model():
    return toy().load_toy_model(5.0)


def test_shipped_weights_are_detected_as_wan_i2v_with_30_blocks(toy_model):
    import comfy.latent_formats

    diffusion = toy_model.model.diffusion_model
    assert type(diffusion).__name__ == "WanModel" and len(diffusion.blocks) == 30
    assert diffusion.patch_embedding.weight.shape[1] == 36
    assert isinstance(toy_model.model.latent_format, comfy.latent_formats.Wan21)
    assert toy().WEIGHTS.stat().st_size < 16 * 2**20


def test_toy_vae_through_wan_image_to_video_gives_the_model_the_training_code():
    from cos_core.toy import latent as toy_latent
    from cos_core.toy import tasks

    cond, latent = batch_inputs("maze", [1])
    raw = cond[0][1]["concat_latent_image"]
    fmt = toy().ToyVAE()
    code = (raw - fmt.mean.view(1, 16, 1, 1, 1)) / fmt.std.view(1, 16, 1, 1, 1)
    inst = tasks.task("maze", 1, 3)
    _, expected = toy_latent.i2v_inputs(torch.from_numpy(inst.pixels()[:1]), 17)
    assert torch.allclose(code, expected, atol=1e-5)
    assert latent["samples"].shape == (1, 16, 5, 12, 12)


def test_toy_model_solves_held_out_dot_tasks_and_random_weights_do_not(toy_model):
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    from tools.tiny import wan_state_dict

    trained, trace = success_rate(toy_model, "dot", HELD_OUT)
    random_model = ModelSamplingSD3().patch(
        comfy.sd.load_diffusion_model_state_dict(wan_state_dict(7, in_dim=36, num_layers=30)), 5.0)[0]
    chance, _ = success_rate(random_model, "dot", HELD_OUT)
    assert trace.steps == [0, STEPS - 1]
    assert trained >= 0.5, f"trained toy model solved {trained:.0%} of {N} held-out dot tasks"
    assert chance <= 0.2 and trained - chance >= 0.4
