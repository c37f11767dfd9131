"""Tier 1: the shipped CoS-Toy model loads through ComfyUI as a Wan I2V model and solves held-out tasks."""
from __future__ import annotations

import json

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

N, STEPS = 6, 6
HELD_OUT = range(500, 500 + N)        # training instances use seeds >= 1 000 000
KINDS = ("dot", "maze", "door")       # maze: 3 rooms a side


def toy():
    from chain_of_steps_pack.nodes import toy

    return toy


def batch_inputs(items, rooms=3):
    """[(kind, seed)] → one batched conditioning (per-item concat_latent_image) and latent."""
    from comfy_extras.nodes_wan import WanImageToVideo

    t = toy()
    vae = t.ToyVAE()
    ins = []
    for kind, s in items:
        start, _, cond = t.CoSToyTask.execute(kind, s, rooms).result
        ins.append(WanImageToVideo.execute(cond, cond, vae, 96, 96, 17, 1, start_image=start).result)
    extra = {"concat_latent_image": torch.cat([p[0][1]["concat_latent_image"] for p, _, _ in ins]),
             "concat_mask": ins[0][0][0][1]["concat_mask"]}
    cond = [[ins[0][0][0][0], extra]]
    return cond, {"samples": torch.cat([lat["samples"] for _, _, lat in ins])}


def solve(model, items):
    """One CoS Sampler run over all items; per item (success from CoS Toy Score, soft score of cos_core)."""
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    from cos_core.toy import tasks

    cond, latent = batch_inputs(items)
    out, _, trace, _ = CoSSampler.PREPARE_CLASS_CLONE(None).execute(
        model_high=model, positive=cond, negative=cond, latent=latent, seed=3, steps=STEPS, cfg=1.0,
        sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=STEPS,
        capture_steps="0,-1", preview_frames=0).result
    videos = toy().ToyVAE().decode(out["samples"])
    success = [toy().CoSToyScore.execute(v, kind, s, 3).result[0] for (kind, s), v in zip(items, videos)]
    soft = [tasks.score(tasks.task(kind, s, 3), v.numpy())["soft"] for (kind, s), v in zip(items, videos)]
    return success, soft, trace


@pytest.fixture(scope="module")
def toy_model():
    return toy().load_toy_model(5.0)


def shuffled_toy_model(seed: int = 7):
    """The shipped file with each tensor's entries randomly permuted: same layout and weight statistics, untrained."""
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    from safetensors import safe_open

    gen = torch.Generator().manual_seed(seed)
    with safe_open(str(toy().WEIGHTS), "pt") as f:
        metadata = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    sd = {k: v.flatten()[torch.randperm(v.numel(), generator=gen)].view(v.shape) for k, v in sd.items()}
    return ModelSamplingSD3().patch(comfy.sd.load_diffusion_model_state_dict(sd, metadata=metadata), 5.0)[0]


def test_shipped_weights_are_a_few_mb_and_detected_as_wan_i2v_with_30_blocks(toy_model):
    import comfy.latent_formats
    from safetensors import safe_open

    diffusion = toy_model.model.diffusion_model
    assert type(diffusion).__name__ == "WanModel" and len(diffusion.blocks) == 30
    assert diffusion.patch_embedding.weight.shape[1] == 36
    # width 64 gives dim // 128 = 0 heads by the weights alone; ComfyUI applies the file's metadata config
    assert diffusion.num_heads == 1 and diffusion.dim == 64
    with safe_open(str(toy().WEIGHTS), "pt") as f:
        assert json.loads(f.metadata()["config"]) == {"transformer": {"num_heads": 1}}
    assert isinstance(toy_model.model.latent_format, comfy.latent_formats.Wan21)
    assert toy().WEIGHTS.stat().st_size <= 6 * 10**6


def test_toy_vae_through_wan_image_to_video_gives_the_model_the_training_code():
    from cos_core.toy import latent as toy_latent
    from cos_core.toy import tasks

    cond, latent = batch_inputs([("maze", 1)])
    raw = cond[0][1]["concat_latent_image"]
    fmt = toy().ToyVAE()
    code = (raw - fmt.mean.view(1, 16, 1, 1, 1)) / fmt.std.view(1, 16, 1, 1, 1)
    inst = tasks.task("maze", 1, 3)
    _, expected = toy_latent.i2v_inputs(torch.from_numpy(inst.pixels()[:1]), 17)
    assert torch.allclose(code, expected, atol=1e-5)
    assert latent["samples"].shape == (1, 16, 5, 12, 12)


def test_toy_model_beats_its_own_shuffled_weights_on_held_out_tasks(toy_model):
    items = [(kind, s) for kind in KINDS for s in HELD_OUT]
    trained, trained_soft, trace = solve(toy_model, items)
    chance, chance_soft, _ = solve(shuffled_toy_model(), items)
    assert trace.steps == [0, STEPS - 1]
    mean = lambda xs: sum(xs) / len(xs)                                         # noqa: E731
    report = f"trained {sum(trained):.0f}/{len(items)} solved, soft {mean(trained_soft):.2f}; " \
             f"shuffled {sum(chance):.0f} solved, soft {mean(chance_soft):.2f}"
    print(report)
    assert sum(trained) >= 6 and sum(chance) == 0, report
    assert mean(trained_soft) >= 0.8 and mean(chance_soft) <= 0.35, report
    assert mean(trained_soft) - mean(chance_soft) >= 0.5, report
