"""Tier 1: every CoS node with LTX models (in process), on tiny random-weight LTXV (video only) and LTXAV
(LTX-2 audio-video) checkpoints built from ComfyUI's own classes and loaded by ComfyUI's loader.

Latents come from ComfyUI's own nodes: EmptyLTXVLatentVideo (96×64, 17 frames → F, H, W = 3, 2, 3,
deliberately not square), LTXVEmptyLatentAudio (with a tiny real LTX-2 audio VAE) and
LTXVConcatAVLatent. Conditioning is a processed text context: (1, L, caption_channels) for LTXV,
(1, L, 2·caption_channels) (video half, audio half) for LTXAV, with an integer attention mask and
LTXVConditioning's frame rate.
"""
from __future__ import annotations

import io
import types

import pytest
import torch

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]

STEPS, SEED, CFG = 4, 5, 3.0
GRID = (3, 2, 3)  # (F, H, W) of a 96×64, 17-frame LTX latent: stride 8 in time, 32 in space
AUDIO_FRAMES = 17  # LTX-2 audio latent frames for 17 video frames at 25 fps (25 audio latents per second)


@pytest.fixture(scope="module")
def ltx(comfy_root, tmp_path_factory):
    """Tiny LTXV / LTXAV models through UNETLoader's path, the tiny audio VAE through LTXVAudioVAELoader's,
    and their conditioning and latents."""
    import comfy.sd
    import comfy.utils
    from comfy_extras.nodes_lt import EmptyLTXVLatentVideo, LTXVConcatAVLatent, LTXVConditioning
    from comfy_extras.nodes_lt_audio import LTXVEmptyLatentAudio

    from tools.tiny import TINY_LTX_AUDIO_VAE, TINY_LTXAV, TINY_LTXV, write_tiny_ltx_models

    folder = tmp_path_factory.mktemp("ltx_models")
    write_tiny_ltx_models(folder)
    ltxv = comfy.sd.load_diffusion_model(str(folder / "diffusion_models" / TINY_LTXV))
    ltxav = comfy.sd.load_diffusion_model(str(folder / "diffusion_models" / TINY_LTXAV))
    sd, metadata = comfy.utils.load_torch_file(str(folder / "checkpoints" / TINY_LTX_AUDIO_VAE), return_metadata=True)
    audio_vae = comfy.sd.VAE(sd=sd, metadata=metadata)

    def conditioning(seed, width):
        gen = torch.Generator().manual_seed(seed)
        # an integer mask, as the Gemma tokenizer gives (a float one would be taken as an additive bias)
        return [[torch.randn(1, 6, width, generator=gen), {"attention_mask": torch.ones(1, 6, dtype=torch.long)}]]

    v_pos, v_neg = LTXVConditioning.execute(conditioning(1, 64), conditioning(2, 64), 25.0).result
    a_pos, a_neg = LTXVConditioning.execute(conditioning(3, 128), conditioning(4, 128), 25.0).result
    video = EmptyLTXVLatentVideo.execute(96, 64, 17, 1).result[0]
    audio = LTXVEmptyLatentAudio.execute(17, 25.0, 1, audio_vae).result[0]
    av = LTXVConcatAVLatent.execute(video, audio).result[0]
    return types.SimpleNamespace(
        v=types.SimpleNamespace(model=ltxv, positive=v_pos, negative=v_neg, latent=video, av=False),
        av=types.SimpleNamespace(model=ltxav, positive=a_pos, negative=a_neg, latent=av, av=True),
        audio_vae=audio_vae, video_latent=video)


@pytest.fixture(params=["v", "av"], ids=["ltxv", "ltxav"])
def kind(request, ltx):
    return getattr(ltx, request.param)


def streams(x):
    return list(x.unbind()) if getattr(x, "is_nested", False) else [x]


def same(a, b) -> bool:
    sa, sb = streams(a), streams(b)
    return len(sa) == len(sb) and all(torch.equal(x, y) for x, y in zip(sa, sb))


def cos_sampler(kind, **kw):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    args = dict(model_high=kind.model, positive=kind.positive, negative=kind.negative, latent=kind.latent, seed=SEED,
                steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9,
                switch_step=0, capture_steps="all", preview_frames=2)
    args.update(kw)
    return CoSSampler.PREPARE_CLASS_CLONE(None).execute(**args).result


def ksampler(kind, model=None, seed=SEED, latent=None):
    """ComfyUI's own KSampler on the same inputs (the reference)."""
    import nodes

    (out,) = nodes.KSampler().sample(model or kind.model, seed, STEPS, CFG, "euler", "simple", kind.positive,
                                     kind.negative, latent or kind.latent)
    return out["samples"]


def custom_advanced(kind, model):
    """SamplerCustomAdvanced with CFGGuider, as ComfyUI's LTX-2 templates sample; returns (out, denoised)."""
    from comfy_extras.nodes_custom_sampler import (BasicScheduler, CFGGuider, KSamplerSelect, RandomNoise,
                                                   SamplerCustomAdvanced)

    guider = CFGGuider.execute(model, kind.positive, kind.negative, CFG).result[0]
    sigmas = BasicScheduler.execute(model, "simple", STEPS, 1.0).result[0]
    out, denoised = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED).result[0], guider,
                                                  KSamplerSelect.execute("euler").result[0], sigmas,
                                                  kind.latent).result
    return out["samples"], denoised["samples"]


def probe(model, **kw):
    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    args = dict(layers="all", steps="all", cfg_half="both", energy=True, pca=True,
                pca_basis="shared (first probed step)", raw_states=True, raw_cap_mib=64)
    args.update(kw)
    return CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(model, **args).result


# --- the adapter ---------------------------------------------------------------------------------------

def test_adapter_knows_both_ltx_models(ltx):
    from chain_of_steps_pack.nodes.adapters import adapter_for, require_flow_model
    from chain_of_steps_pack.nodes.adapters.ltx import LtxAdapter

    for kind, name in ((ltx.v, "LTXV"), (ltx.av, "LTXAV")):
        adapter = adapter_for(kind.model)
        assert isinstance(adapter, LtxAdapter) and adapter.num_blocks(kind.model) == 3
        assert adapter.accepts_audio(kind.model) == kind.av and not adapter.has_experts()
        require_flow_model(kind.model, "model")  # ModelType.FLUX is CONST: x̂0 = x − σ·v
        info = adapter.latent_info(kind.model)
        assert (info.name, info.channels, info.temporal_stride, info.spatial_stride) == (name, 128, 8, 32)
        assert len(info.rgb_factors) == 128 and info.rgb_bias is not None
        assert info.pixel_frames(0) == (0, 0) and info.pixel_frames(2) == (9, 16)


def test_grid_leaves_out_appended_guide_frames():
    from chain_of_steps_pack.nodes.adapters.ltx import video_grid

    x = torch.zeros(1, 128, 5, 2, 3)  # 3 grid frames + 2 guide frames appended by LTXVAddGuide
    assert video_grid(x) == (5, 2, 3)
    assert video_grid(x, torch.zeros(1, 3, 2 * 6, 2)) == (3, 2, 3)
    assert video_grid([x, torch.zeros(1, 8, 4, 16)], torch.zeros(1, 3, 0, 2)) == (5, 2, 3)


def test_with_video_keeps_the_audio_unless_asked(ltx):
    from chain_of_steps_pack.nodes.adapters.ltx import LtxAdapter

    adapter = LtxAdapter()
    vx, ax, new_v, new_a = (torch.full((1, 2, 4), float(i)) for i in range(4))
    out = {"img": (vx, ax), "other": 1}
    replaced = adapter.with_video(out, new_v)
    assert replaced["img"][0] is new_v and replaced["img"][1] is ax and replaced["other"] == 1
    assert out["img"] == (vx, ax), "the block's own result is not modified"
    assert adapter.with_video(out, new_v, new_a)["img"][1] is new_a
    assert adapter.video_hidden(out) is vx and adapter.audio_hidden(out) is ax
    assert adapter.with_video({"img": vx}, new_v)["img"] is new_v and adapter.audio_hidden({"img": vx}) is None
    with pytest.raises(ValueError, match="no audio"):
        adapter.with_video({"img": vx}, new_v, new_a)


# --- x̂0: CoS Sampler and CoS Capture x̂0 -------------------------------------------------------------------

def test_cos_sampler_equals_ksampler_and_keeps_both_streams(kind):
    latent, x0_steps, trace, _ = cos_sampler(kind)
    reference = ksampler(kind)
    assert same(latent["samples"], reference)
    assert getattr(latent["samples"], "is_nested", False) == kind.av, "an AV LATENT stays a NestedTensor"
    assert trace.steps == list(range(STEPS)) and trace.meta["latent_format"] == ("LTXAV" if kind.av else "LTXV")
    final = streams(reference)
    assert tuple(trace[0].tensors["x0_hat"].shape) == (1, 128, *GRID)
    assert torch.allclose(trace[STEPS - 1].tensors["x0_hat"], final[0].float(), atol=1e-5)
    if kind.av:
        assert tuple(trace[0].tensors["x0_hat_audio"].shape) == (1, 8, AUDIO_FRAMES, 16)
        assert torch.allclose(trace[STEPS - 1].tensors["x0_hat_audio"], final[1].float(), atol=1e-5)
        assert trace.meta["audio_latent_shape"] == [1, 8, AUDIO_FRAMES, 16]
        video, audio = x0_steps["samples"].unbind()
        assert video.shape[0] == audio.shape[0] == STEPS
    else:
        assert "x0_hat_audio" not in trace[0].tensors and x0_steps["samples"].shape[0] == STEPS


def test_ltxav_also_samples_a_video_only_latent(ltx):
    kind = types.SimpleNamespace(**{**ltx.av.__dict__, "latent": ltx.video_latent})
    latent, _, trace, _ = cos_sampler(kind, preview_frames=0)
    assert not getattr(latent["samples"], "is_nested", False)
    assert torch.equal(latent["samples"], ksampler(kind))
    assert "x0_hat_audio" not in trace[0].tensors


def test_capture_changes_nothing_with_sampler_custom_advanced(kind):
    from chain_of_steps_pack.nodes.capture import CoSCaptureX0

    patched, _, handle = CoSCaptureX0.PREPARE_CLASS_CLONE(None).execute(kind.model, "all").result
    stock, stock_denoised = custom_advanced(kind, kind.model)
    out, denoised = custom_advanced(kind, patched)
    assert same(out, stock) and same(denoised, stock_denoised)
    trace = handle.snapshot()
    assert trace.steps == list(range(STEPS))
    last = streams(denoised)  # SamplerCustomAdvanced's denoised_output: the last x̂0, per stream
    assert torch.allclose(trace[STEPS - 1].tensors["x0_hat"], last[0].float(), atol=1e-6)
    if kind.av:  # the OUTER_SAMPLE wrapper sees packed (B, 1, N) latents and unpacks them
        assert torch.allclose(trace[STEPS - 1].tensors["x0_hat_audio"], last[1].float(), atol=1e-6)
    assert not kind.model.wrappers
    # the trace names its latent format, so the decoders use LTX's latent→RGB factors (not Wan's 16 channels)
    assert trace.meta["latent_format"] == ("LTXAV" if kind.av else "LTXV")
    assert decode(trace).shape[-1] == 3


def test_i2v_first_frame_x0_is_the_image_latent(ltx):
    """LTXVImgToVideoInplace's noise_mask (frame 0 kept): ComfyUI's x̂0 is m·(x − σv) + (1 − m)·image, so
    the conditioned frame is the image at every step (the official tool applies x − σv there too)."""
    from comfy_extras.nodes_lt import get_noise_mask

    image = torch.randn(1, 128, 1, 2, 3, generator=torch.Generator().manual_seed(9))
    samples = ltx.video_latent["samples"].clone()
    samples[:, :, :1] = image
    mask = get_noise_mask(ltx.video_latent)
    mask[:, :, :1] = 0.0
    kind = types.SimpleNamespace(**{**ltx.v.__dict__, "latent": {"samples": samples, "noise_mask": mask}})
    _, _, trace, _ = cos_sampler(kind)
    for step in trace.steps:
        assert torch.allclose(trace[step].tensors["x0_hat"][:, :, :1], image, atol=1e-6), f"step {step}"
    assert not torch.allclose(trace[0].tensors["x0_hat"][:, :, 1:], trace[STEPS - 1].tensors["x0_hat"][:, :, 1:])


# --- CoS Layer Probe and CoS Energy Maps -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def probed(ltx):
    runs = {}
    for name in ("v", "av"):
        kind = getattr(ltx, name)
        model, _, handle = probe(kind.model)
        runs[name] = types.SimpleNamespace(out=ksampler(kind, model), trace=handle.snapshot(), handle=handle,
                                           kind=kind)
    return runs


@pytest.mark.parametrize("name", ["v", "av"])
def test_probe_changes_nothing_and_maps_the_ltx_grid(probed, name):
    run = probed[name]
    assert same(run.out, ksampler(run.kind))
    trace = run.trace
    assert trace.steps == list(range(STEPS)) and trace.meta["layers"] == [0, 1, 2]
    assert trace.meta["temporal_stride"] == 8
    for step in trace.steps:
        for layer in range(3):
            for half in ("cond", "uncond"):
                raw = trace[step].tensors[f"raw/L{layer:02d}/{half}"]
                energy = trace[step].tensors[f"energy/L{layer:02d}/{half}"]
                assert tuple(energy.shape) == (1, *GRID) and tuple(raw.shape[:-1]) == (1, *GRID)
                assert raw.shape[-1] == 128  # video inner dim (32 heads × 4)
                assert tuple(trace[step].tensors[f"pca/L{layer:02d}/{half}"].shape) == (1, *GRID, 3)
                assert torch.allclose(energy, raw.float().norm(dim=-1), rtol=1e-4, atol=1e-5)
    # LTX blocks mutate their input in place: what the probe kept of layer 0 is not what layer 2 left
    assert not torch.equal(trace[0].tensors["raw/L00/cond"], trace[0].tensors["raw/L02/cond"])


def test_probe_states_are_the_block_outputs_in_f_h_w_order(ltx):
    """The probe's raw states of block 1 equal the video tokens block 2 receives (copied before block 2
    mutates them), reshaped (F, H, W) row-major; the block hands back a (video, audio) tuple."""
    from chain_of_steps_pack.nodes.adapters import cfg_halves

    kind = ltx.av
    probed_model, _, handle = probe(kind.model, layers="1", cfg_half="cond", pca=False)
    seen = {}

    def spy(args, extra):
        vx, _ = args["img"]
        options = args["transformer_options"]
        rows = dict(cfg_halves(options["cond_or_uncond"], vx.shape[0]))["cond"]
        seen[round(float(options["sigmas"][0]), 5)] = vx[rows].detach().clone()
        out = extra["original_block"](args)
        with pytest.raises(AttributeError):
            out["img"].detach()  # what the official token hook does with an LTX-2 block output
        return out

    probed_model.set_model_patch_replace(spy, "dit", "double_block", 2)
    assert same(ksampler(kind, probed_model), ksampler(kind))
    trace = handle.snapshot()
    assert len(seen) == STEPS
    for step in trace.steps:
        tokens = seen[round(trace[step].sigma, 5)]
        assert tokens.shape[1] == 18
        assert torch.equal(trace[step].tensors["raw/L01/cond"], tokens.reshape(1, *GRID, -1))


@pytest.mark.parametrize("view", ["energy grid (layers × frames)", "PCA grid (layers × frames)",
                                  "temporal energy curves", "mean energy across steps"])
def test_energy_maps_draw_an_ltx_probe(probed, view):
    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps

    image = CoSEnergyMaps.PREPARE_CLASS_CLONE(None).execute(probed["av"].handle, view, -1, "all", "global", 0,
                                                            "cond").result[0]
    assert image.ndim == 4 and image.shape[-1] == 3 and float(image.std()) > 0.02


# --- CoS Seed Ensemble ----------------------------------------------------------------------------------------

def ensemble(kind, **kw):
    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

    args = dict(members=3, seed=SEED, steps="0", layers="0-2", alpha=1.0, merge="per layer", continue_with="all")
    args.update(kw)
    return CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(kind.model, kind.latent, **args).result


def test_ensemble_of_one_member_is_the_baseline(kind):
    model, _, latent, noise, sampler = ensemble(kind, members=1)
    got = cos_sampler(kind, model_high=model, latent=latent, noise=noise, sampler=sampler)[0]["samples"]
    assert same(got, cos_sampler(kind)[0]["samples"])


def test_ensemble_members_are_each_seeds_own_run_at_alpha_zero(ltx):
    kind = ltx.av
    model, _, latent, noise, sampler = ensemble(kind, alpha=0.0)
    got = streams(cos_sampler(kind, model_high=model, latent=latent, noise=noise, sampler=sampler)[0]["samples"])
    assert got[0].shape[0] == got[1].shape[0] == 3
    for k in range(3):
        alone = streams(cos_sampler(kind, seed=SEED + k)[0]["samples"])
        for mine, ref in zip(got, alone):
            assert torch.allclose(mine[k:k + 1], ref, atol=1e-4), f"member {k}"


def test_ensemble_merges_the_video_stream_and_keeps_the_primary(ltx):
    """α = 1 at step 0: the members leave the window's last block with one video state; their audio
    states stay their own; continue = primary keeps member 0 of both streams."""
    kind = ltx.av
    model, _, latent, noise, sampler = ensemble(kind, continue_with="primary")
    seen = []

    def after(out):
        vx, ax = out["img"]
        seen.append((vx.shape[0], vx.detach().clone(), ax.detach().clone()))
        return out

    spied = model.clone()
    replace = spied.model_options["transformer_options"]["patches_replace"]["dit"][("double_block", 2)]

    def chained(args, extra):
        return after(replace(args, extra))

    spied.set_model_patch_replace(chained, "dit", "double_block", 2)
    out, _, trace, _ = cos_sampler(kind, model_high=spied, latent=latent, noise=noise, sampler=sampler)
    video, audio = streams(out["samples"])
    assert video.shape[0] == audio.shape[0] == 1
    assert trace[0].tensors["x0_hat_audio"].shape[0] == 3 and trace[1].tensors["x0_hat_audio"].shape[0] == 1
    rows, vx, ax = seen[0]  # step 0: 2 CFG halves × 3 members
    assert rows == 6
    video, audio = vx.view(2, 3, *vx.shape[1:]), ax.view(2, 3, *ax.shape[1:])
    assert all(torch.equal(video[c, 0], video[c, k]) for c in range(2) for k in (1, 2)), "one video state"
    assert not torch.equal(audio[0, 0], audio[0, 1]), "audio is left to each member"
    assert all(r == 2 for r, _, _ in seen[1:]), "after step 0 only the primary member runs"


# --- CoS Noise Injection ---------------------------------------------------------------------------------------

def test_noise_injection_perturbs_the_video_stream_only(ltx, monkeypatch):
    from chain_of_steps_pack.cos_core import perturb as perturb_module
    from chain_of_steps_pack.nodes.noise import CoSNoiseInjection

    kind = ltx.av
    seen = []
    original = perturb_module.NoiseInjection.apply

    def spy(self, x, step):
        seen.append(tuple(x.shape))
        return original(self, x, step)

    monkeypatch.setattr(perturb_module.NoiseInjection, "apply", spy)
    clean = cos_sampler(kind, preview_frames=0)[2]
    perturb, sampler = CoSNoiseInjection.PREPARE_CLASS_CLONE(None).execute("step", 2, 1.0, 3).result
    _, _, trace, _ = cos_sampler(kind, perturb=perturb, preview_frames=0)
    assert seen and set(seen) == {(1, 128, *GRID)}, "the injection sees the video latent, not the packed pair"
    for t in range(2):
        assert torch.equal(trace[t].tensors["x0_hat"], clean[t].tensors["x0_hat"])
        assert torch.equal(trace[t].tensors["x0_hat_audio"], clean[t].tensors["x0_hat_audio"])
    assert not torch.equal(trace[2].tensors["x0_hat"], clean[2].tensors["x0_hat"])
    # the SAMPLER output in SamplerCustomAdvanced gives the same run
    from comfy_extras.nodes_custom_sampler import BasicScheduler, CFGGuider, RandomNoise, SamplerCustomAdvanced

    guider = CFGGuider.execute(kind.model, kind.positive, kind.negative, CFG).result[0]
    sigmas = BasicScheduler.execute(kind.model, "simple", STEPS, 1.0).result[0]
    out = SamplerCustomAdvanced.execute(RandomNoise.execute(SEED).result[0], guider, sampler, sigmas,
                                        kind.latent).result[0]["samples"]
    reference = cos_sampler(kind, perturb=perturb, preview_frames=0)[0]["samples"]
    assert same(out, reference)


def test_frame_injection_counts_video_latent_frames(ltx):
    from chain_of_steps_pack.nodes.noise import CoSNoiseInjection

    perturb, _ = CoSNoiseInjection.PREPARE_CLASS_CLONE(None).execute("frame", 3, 1.0, 3).result
    with pytest.raises(ValueError, match="index: latent frame 3 is outside 0..2"):
        cos_sampler(ltx.av, perturb=perturb, preview_frames=0)
    perturb, _ = CoSNoiseInjection.PREPARE_CLASS_CLONE(None).execute("frame", 1, 1.0, 3).result
    cos_sampler(ltx.av, perturb=perturb, preview_frames=0)


# --- the sweeps, stop/resume --------------------------------------------------------------------------------------

def test_information_flow_on_an_av_run(ltx, tmp_path, monkeypatch):
    import folder_paths

    from chain_of_steps_pack.nodes.info_flow import CoSInformationFlow

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    kind = ltx.av
    image, text = CoSInformationFlow.PREPARE_CLASS_CLONE(None).execute(
        kind.model, kind.positive, kind.negative, kind.latent, SEED, STEPS, CFG, "euler", "simple", "step", 0.9, 0,
        "step", "1,2", 1.0, 0, "cos/flow").result
    import json

    numbers = json.loads(text)
    assert len(numbers["dissimilarity"]) == 2 and numbers["dissimilarity"][0][0] == 0.0
    assert numbers["dissimilarity"][1][2] > 0.0 and image.shape[-1] == 3


def test_layer_swap_with_an_identical_alternative_changes_nothing(ltx):
    import json

    from chain_of_steps_pack.nodes.swap import CoSLayerSwapSweep

    kind = ltx.av
    _, text = CoSLayerSwapSweep.PREPARE_CLASS_CLONE(None).execute(
        kind.model, kind.positive, kind.negative, kind.latent, SEED, 3, CFG, "euler", "simple", "step", 0.9, 0,
        kind.positive, kind.negative, 0, "0,2", -1).result
    numbers = json.loads(text)
    assert numbers["distance_to_original"] == [0.0, 0.0], "the swapped-in states are the run's own"


def test_stop_and_resume_an_av_run(ltx):
    from chain_of_steps_pack.nodes.resume import CoSResume

    kind = ltx.av
    full = cos_sampler(kind, preview_frames=0)[0]["samples"]
    stopped, _, _, state = cos_sampler(kind, stop_after_step=1, preview_frames=0)
    assert len(streams(stopped["samples"])) == 2, "the stopped x̂0 LATENT is an AV latent too"
    latent, _, trace = CoSResume.PREPARE_CLASS_CLONE(None).execute(kind.model, kind.positive, kind.negative, state, -1,
                                                                   "all", 0).result
    assert same(latent["samples"], full)
    assert trace.steps == [2, 3] and "x0_hat_audio" in trace[2].tensors


# --- CoS Decode Steps: video and audio ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def av_trace(ltx):
    return cos_sampler(ltx.av, preview_frames=0)[2]


def decode(trace, **kw):
    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps

    args = dict(mode="latent2rgb (fast)", layout="grid: steps × frames", steps="all", frames=0, step=-1)
    args.update(kw)
    return CoSDecodeSteps.PREPARE_CLASS_CLONE(None).execute(trace, **args).result[0]


def test_decode_steps_draws_ltx_video_x0(av_trace):
    image = decode(av_trace)
    assert image.ndim == 4 and image.shape[-1] == 3 and float(image.std()) > 0.01
    frames = decode(av_trace, layout="frames of one step")
    assert frames.shape[0] == GRID[0], "latent2rgb: one picture per latent frame"


def test_audio_x0_renders_as_latent_and_as_spectrogram(ltx, av_trace):
    latent_view = decode(av_trace, layout="audio x̂0 per step (LTX-2)")
    assert latent_view.ndim == 4 and latent_view.shape[-1] == 3 and float(latent_view.std()) > 0.02
    fewer = decode(av_trace, layout="audio x̂0 per step (LTX-2)", steps="0,-1")
    assert fewer.shape[1] < latent_view.shape[1], "one row per step"
    spectro = decode(av_trace, layout="audio x̂0 per step (LTX-2)", audio_vae=ltx.audio_vae, steps="0,-1")
    assert spectro.ndim == 4 and float(spectro.std()) > 0.02
    assert not torch.equal(spectro, fewer)


# --- bad input ---------------------------------------------------------------------------------------------------

def test_wan_only_options_with_ltx_are_named(ltx, tiny):
    from chain_of_steps_pack.nodes.capture import CoSCaptureX0

    with pytest.raises(ValueError, match="model_low: the high-/low-noise expert switch is a Wan2.2 A14B option"):
        cos_sampler(ltx.v, model_low=ltx.v.model)
    with pytest.raises(ValueError, match="model_low: .*Wan2.2 A14B option; model_high is Wan and model_low is LTX-2"):
        cos_sampler(ltx.v, model_high=tiny.t2v, model_low=ltx.v.model)
    with pytest.raises(ValueError, match="model_low"):
        CoSCaptureX0.PREPARE_CLASS_CLONE(None).execute(ltx.av.model, "all", model_low=ltx.av.model)
    with pytest.raises(ValueError, match="model_low"):
        probe(ltx.av.model, model_low=ltx.av.model)
    with pytest.raises(ValueError, match="model_low"):
        ensemble(ltx.av, model_low=tiny.low)
    with pytest.raises(ValueError, match="layers: '20-29' is out of range; valid layers are 0..2"):
        ensemble(ltx.av, layers="20-29")  # the paper's Wan window on a 3-block model
    with pytest.raises(ValueError, match="layers: '48' is out of range"):
        probe(ltx.v.model, layers="0,48")
    with pytest.raises(ValueError, match="latent: the latent has 16 channels but the model expects 128"):
        cos_sampler(ltx.v, latent={"samples": torch.zeros(1, 16, 3, 4, 4)})


def test_ltx_only_inputs_with_wan_or_ltxv_are_named(ltx, tiny, av_trace):
    wan = types.SimpleNamespace(model=tiny.t2v, positive=ltx.v.positive, negative=ltx.v.negative, latent=None)
    with pytest.raises(ValueError, match="latent: an audio-video LATENT .* needs an LTX-2 audio-video model; this "
                                         "WanModel"):
        cos_sampler(wan, latent=ltx.av.latent)
    with pytest.raises(ValueError, match="latent: an audio-video LATENT .*LTXVModel"):
        cos_sampler(ltx.v, latent=ltx.av.latent)
    video_only = cos_sampler(ltx.v, preview_frames=0)[2]
    with pytest.raises(ValueError, match="layout: the trace holds no audio x̂0"):
        decode(video_only, layout="audio x̂0 per step (LTX-2)")
    with pytest.raises(ValueError, match="audio_vae: not an audio VAE"):
        decode(av_trace, layout="audio x̂0 per step (LTX-2)", audio_vae=object())


# --- the LTX-2.3 workflow ----------------------------------------------------------------------------------------

WORKFLOW = "ltx23_i2v_chain_of_steps.json"
TEMPLATE = "video_ltx2_3_i2v.json"


def _workflow():
    import json
    from pathlib import Path

    return json.loads((Path(__file__).resolve().parent.parent / "workflows" / WORKFLOW).read_text(encoding="utf-8"))


def _model_files(nodes):
    return {v for n in nodes for v in (n.get("widgets_values") or [])
            if isinstance(v, str) and v.endswith(".safetensors")}


def test_workflow_is_flat_and_uses_the_official_ltx23_files():
    import json
    from importlib import resources

    workflow = _workflow()
    assert not workflow.get("definitions"), "a flat graph: no subgraphs"
    types_ = {n["type"] for n in workflow["nodes"]}
    assert {"CoSCaptureX0", "SamplerCustomAdvanced", "CoSDecodeSteps", "LTXVConcatAVLatent", "CFGGuider"} <= types_
    by_id = {n["id"]: n for n in workflow["nodes"]}
    for lid, src, slot, dst, dst_slot, kind in workflow["links"]:
        assert lid in (by_id[src]["outputs"][slot]["links"] or []) and by_id[dst]["inputs"][dst_slot]["link"] == lid
    layouts = {n["widgets_values"][1] for n in workflow["nodes"] if n["type"] == "CoSDecodeSteps"}
    assert "audio x̂0 per step (LTX-2)" in layouts
    try:
        template = json.loads(resources.files("comfyui_workflow_templates_json").joinpath("templates", TEMPLATE)
                              .read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("ComfyUI's workflow templates package is not installed here")
    official = _model_files(template["definitions"]["subgraphs"][0]["nodes"])
    ours = _model_files(workflow["nodes"])
    assert ours == official - {"gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors"}  # prompt enhancer only


@pytest.mark.server
def test_workflow_validates_on_a_live_server():
    """UI → API against the server's /object_info (widget orders); the server then rejects the prompt only for
    the model files this machine does not have."""
    from tools.comfy_server import ComfyClient, ComfyServer, PromptRejected
    from tools.cos_run import default_image
    from tools.workflow_api import ui_to_api

    from comfy_fixtures import comfy_path

    with ComfyServer(comfy_path(), cpu=True, log=lambda *_: None) as server:
        prompt = ui_to_api(_workflow(), server.object_info, strict=True)
        client = ComfyClient(server.url)
        image = client.upload_image(default_image())
        next(v for v in prompt.values() if v["class_type"] == "LoadImage")["inputs"]["image"] = image
        with pytest.raises(PromptRejected) as rejected:
            client.queue(prompt)
    errors = [(node["class_type"], error["type"], error.get("extra_info", {}).get("input_name"))
              for node in rejected.value.body["node_errors"].values() for error in node["errors"]]
    assert errors and all(kind == "value_not_in_list" for _, kind, _ in errors), errors
    assert {name for _, _, name in errors} <= {"ckpt_name", "text_encoder", "lora_name", "model_name"}


# --- the tiny LTX-2.3 stand-ins (tools/tiny.py) and the shipped workflow run end to end on them -------------------

def test_tiny_ltx23_stand_ins_load_through_comfyuis_loaders(tmp_path, monkeypatch):
    """The tiny LTX-2.3 checkpoint, LoRA and latent upscaler are taken by the loaders the workflow uses, as the
    real files are: CheckpointLoaderSimple (an LTXAV model with the 2.3 options, the video VAE, no text
    encoder), LTXVAudioVAELoader (audio VAE + vocoder from the same file), LoraLoaderModelOnly (every LoRA
    key matches a weight) and LatentUpscaleModelLoader; the Gemma stand-in's context has the width the
    model passes on unchanged."""
    import folder_paths
    import nodes
    from comfy_extras.nodes_hunyuan import LatentUpscaleModelLoader
    from comfy_extras.nodes_lt_audio import LTXVAudioVAELoader

    from tools.tiny import (LTX23_CONTEXT_WIDTH, TINY_LTX23, TINY_LTX23_LORA, TINY_LTX23_UPSCALER,
                            ltx23_lora_state_dict, write_tiny_ltx23_models)
    from tools.tiny_nodes.cos_tiny_stand_ins import LTX_WIDTH, CoSTinyLTXTextEncode

    write_tiny_ltx23_models(tmp_path)
    for folder in ("checkpoints", "loras", "latent_upscale_models"):
        monkeypatch.setitem(folder_paths.folder_names_and_paths, folder,
                            ([str(tmp_path / folder)], folder_paths.supported_pt_extensions))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(TINY_LTX23)[:3]
    diffusion = model.model.diffusion_model
    assert type(model.model).__name__ == "LTXAV" and clip is None
    assert diffusion.caption_proj_before_connector and diffusion.apply_gated_attention
    assert type(vae.first_stage_model).__name__ == "VideoVAE" and vae.latent_channels == 128
    audio_vae = LTXVAudioVAELoader.execute(TINY_LTX23).result[0]
    assert type(audio_vae.first_stage_model).__name__ == "AudioVAE"
    with_lora = nodes.LoraLoaderModelOnly().load_lora_model_only(model, TINY_LTX23_LORA, 0.5)[0]
    assert len(with_lora.patches) == len(ltx23_lora_state_dict(0)) // 2, "every LoRA pair patches one weight"
    upscaler = LatentUpscaleModelLoader.execute(TINY_LTX23_UPSCALER).result[0]
    assert type(upscaler.model).__name__ == "LatentUpsampler"
    assert LTX_WIDTH == LTX23_CONTEXT_WIDTH
    (context, extra), = CoSTinyLTXTextEncode.execute("a prompt").result[0]
    assert context.shape[-1] == LTX_WIDTH and extra["attention_mask"].dtype == torch.long
    assert diffusion.preprocess_text_embeds(context) is context, "a processed context passes unchanged"


@pytest.mark.server
def test_workflow_runs_end_to_end_on_the_tiny_stand_ins(tmp_path):
    """The shipped LTX-2.3 workflow, converted strictly and made tiny as the thumbnails and the browser test do
    (tiny checkpoint, LoRA and upscaler under their official names; CLIPTextEncode → CoSTinyLTXTextEncode),
    runs to the end: both stages sample, every output node answers, the final video with sound is saved."""
    from tools.comfy_server import ComfyClient, ComfyServer, comfy_python, write_tiny_models
    from tools.cos_run import output_files
    from tools.workflow_thumbnails import input_images, tiny_prompt

    from comfy_fixtures import comfy_path

    root = comfy_path()
    python = comfy_python(root)
    models = write_tiny_models(python, root, tmp_path / "models")
    with ComfyServer(root, python=python, cpu=True, tiny_models=models, log=lambda *_: None) as server:
        client = ComfyClient(server.url)
        prompt = tiny_prompt(_workflow(), server.object_info, input_images(client, tmp_path / "inputs"))
        assert {v["class_type"] for v in prompt.values()} >= {"CoSTinyLTXTextEncode", "CheckpointLoaderSimple"}
        assert "LTXAVTextEncoderLoader" not in {v["class_type"] for v in prompt.values()}
        history = client.run(prompt, timeout=600)
        files = output_files(history)
        by_node = {}
        for entry in files:
            by_node.setdefault(entry["node"], []).append(entry)
        for node_id in ("40", "42", "44", "46"):  # stage-1 grids (latent2rgb, VAE), audio spectrograms, stage 2
            (picture,) = by_node[node_id]
            assert len(client.view(picture["filename"], picture["subfolder"], picture["type"])) > 1000
        (video,) = by_node["38"]
        assert video["filename"].endswith(".mp4")
        data = client.view(video["filename"], video["subfolder"], video["type"])
        av = pytest.importorskip("av")
        with av.open(io.BytesIO(data)) as container:
            kinds = sorted(stream.type for stream in container.streams)
        assert kinds == ["audio", "video"], "the final video carries the generated sound"
        assert history["outputs"]["47"], "the stage-1 trace is saved"
