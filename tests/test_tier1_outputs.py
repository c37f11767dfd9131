"""Tier 1: decoding, saving and loading what the CoS Sampler recorded (tiny models, in process)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def run(pack, tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    node = CoSSampler.PREPARE_CLASS_CLONE(None)
    latent, x0_steps, trace, _ = node.execute(
        model_high=tiny.high, model_low=tiny.low, positive=i2v_inputs.positive, negative=i2v_inputs.negative,
        latent=i2v_inputs.latent, seed=3, steps=5, cfg=3.5, sampler_name="euler", scheduler="simple",
        switch_mode="boundary sigma", boundary=0.9, switch_step=0, capture_steps="all", preview_frames=3).result
    return latent, x0_steps, trace


@pytest.fixture
def output_dir(comfy_root, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    return tmp_path


def decode(trace, **kw):
    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps

    args = dict(mode="latent2rgb (fast)", layout="grid: steps × frames", steps="all", frames=3, step=-1)
    args.update(kw)
    return CoSDecodeSteps.PREPARE_CLASS_CLONE(None).execute(trace, **args)


def test_latent2rgb_grid_has_a_row_per_step_and_differs_between_steps(run):
    _, _, trace = run
    image = decode(trace).result[0]
    assert image.ndim == 4 and image.shape[0] == 1 and image.shape[-1] == 3
    few = decode(trace, steps="0,-1").result[0]
    assert few.shape[1] < image.shape[1], "fewer steps → fewer rows"
    assert few.shape[2] == image.shape[2]
    arr = image[0].numpy()
    assert arr.std() > 0.01


def test_vae_grid_and_frames_of_one_step(run, tiny):
    latent, _, trace = run
    grid = decode(trace, mode="vae", vae=tiny.vae).result[0]
    assert grid.shape[0] == 1 and grid.shape[-1] == 3
    frames = decode(trace, mode="vae", vae=tiny.vae, layout="frames of one step", step=-1).result[0]
    reference = tiny.vae.decode(latent["samples"]).reshape(-1, *frames.shape[1:])
    assert frames.shape == reference.shape  # every pixel frame of the last step: 9 for 3 latent frames
    assert torch.allclose(frames, reference.float(), atol=1e-4), "x̂0 at the last step decodes to the final video"


def test_decode_errors_name_the_input(run):
    _, _, trace = run
    with pytest.raises(ValueError, match="vae"):
        decode(trace, mode="vae")
    with pytest.raises(ValueError, match="steps"):
        decode(trace, steps="40")
    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps

    assert "mode" in CoSDecodeSteps.validate_inputs(mode="taesd")


def test_save_then_load_trace(run, output_dir):
    from chain_of_steps_pack.nodes.trace_io import CoSLoadTrace, CoSSaveTrace

    _, _, trace = run
    saver = CoSSaveTrace.PREPARE_CLASS_CLONE(None)
    first = saver.execute(trace, "cos/trace").result[0]
    second = saver.execute(trace, "cos/trace").result[0]
    assert first != second, "a second save never overwrites the first"
    loaded = CoSLoadTrace.PREPARE_CLASS_CLONE(None).execute(first).result[0]
    assert loaded.steps == trace.steps and loaded.meta == trace.meta
    for s in trace.steps:
        assert torch.equal(loaded[s].tensors["x0_hat"], trace[s].tensors["x0_hat"])
    with pytest.raises(ValueError, match="filename_prefix"):
        saver.execute(trace, "../escape")
    with pytest.raises(ValueError, match="path"):
        CoSLoadTrace.PREPARE_CLASS_CLONE(None).execute("../../etc/passwd")
    assert not [p for p in output_dir.rglob("*") if p.name.endswith(".tmp")], "no temporary files left"


def test_step_videos_one_file_per_step(run, tiny, output_dir):
    pytest.importorskip("av")
    from chain_of_steps_pack.nodes.videos import CoSSaveStepVideos

    _, _, trace = run
    node = CoSSaveStepVideos.PREPARE_CLASS_CLONE(None)
    folder = node.execute(trace, "vae", "0,2,-1", 16.0, "cos/steps", vae=tiny.vae).result[0]
    files = sorted(os.listdir(output_dir / folder))
    assert files == ["step_000.mp4", "step_002.mp4", "step_004.mp4"]
    assert all((output_dir / folder / f).stat().st_size > 0 for f in files)
    again = node.execute(trace, "latent2rgb (fast)", "all", 16.0, "cos/steps").result[0]
    assert again != folder and len(os.listdir(output_dir / again)) == 5


def test_live_preview_sends_pictures_without_blocking(run, tiny, i2v_inputs, monkeypatch):
    import comfy.utils

    from chain_of_steps_pack.nodes.sampler import CoSSampler

    sent = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK",
                        lambda value, total, preview, node_id=None: sent.append((value, total, preview)))
    node = CoSSampler.PREPARE_CLASS_CLONE(None)
    node.execute(model_high=tiny.high, model_low=tiny.low, positive=i2v_inputs.positive,
                 negative=i2v_inputs.negative, latent=i2v_inputs.latent, seed=3, steps=8, cfg=3.5,
                 sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=4,
                 capture_steps="-1", preview_frames=3)
    assert [v for v, _, _ in sent] == list(range(1, 9)), "one progress bar over the global steps"
    assert {t for _, t, _ in sent} == {8}
    pictures = [p for _, _, p in sent if p is not None]
    assert pictures, "at least one preview picture reached the progress bar"
    kind, image, _ = pictures[-1]
    assert kind == "JPEG" and image.width > image.height
    assert np.asarray(image).std() > 1
