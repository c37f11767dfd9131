"""Tier 2: bad input through a real ComfyUI server, and inputs that are unusual but fine.

Every bad input must be answered by a validation error (HTTP 400, ``node_errors`` naming the
input) or an execution error whose message names the input, and the server must serve the next
prompt. The unusual-but-valid inputs (odd frame counts, batch > 1, cfg = 1, multi-call samplers,
optional inputs left empty) must work, with the trace checked.

One server per module (tiny random-weight models, the pack, the test probes of
``tests/server_nodes``, and a tiny Flux as an image model with no Chain-of-Steps adapter); it is
always stopped. Skips when COMFYUI_PATH is unset. The table of cases is in TESTING.md.
"""
from __future__ import annotations

import itertools

import pytest

from tier2_support import (TINY_FLUX, TINY_HIGH, TINY_LOW, TINY_VAE, Graph, Node, conditioning, failed,
                           fetch_trace, ksampler, module_server, names_input, node_error_text, rejected,
                           sampler_inputs, succeeded, t2v_run, ui_output, validation_names_input, video_latent,
                           wan_model)

pytestmark = [pytest.mark.server]

STEPS = 3  # the tiny runs' step count (sampler_inputs' default)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, flux=True)


_health_seeds = itertools.count(50_000)


def next_node(node: Node) -> Node:
    """The node created right after ``node`` (the PreviewImage the builders add)."""
    return Node(str(int(node.id) + 1))


def assert_still_serving(client):
    """The next prompt runs: a one-step CoS Sampler with a fresh seed (so nothing is cached)."""
    g = Graph()
    seed = next(_health_seeds)
    sampler, *_ = t2v_run(g, seed=seed, steps=1)
    save = g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="health/trace")
    history = succeeded(client, g.prompt, timeout=120)
    assert ui_output(history, save, "cos_trace"), history.get("outputs")


# ---------------------------------------------------------------------------------------------
# graph pieces
# ---------------------------------------------------------------------------------------------

def flux(g: Graph):
    """A tiny Flux: an image model, flow-matching, with no Chain-of-Steps adapter."""
    return g.node("UNETLoader", unet_name=TINY_FLUX, weight_dtype="default")


def sampler_graph(g: Graph, model=None, latent=None, save=True, **settings):
    model = model if model is not None else wan_model(g)
    pos, neg = conditioning(g)
    latent = latent if latent is not None else video_latent(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=latent,
                     **sampler_inputs(**settings))
    if save:
        g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="bad/trace")
    return sampler


PROBE = dict(layers="all", steps="all", cfg_half="cond", energy=True, pca=True, pca_basis="shared (first probed step)",
             raw_states=False, raw_cap_mib=64)
ENERGY = dict(view="energy grid (layers × frames)", step=0, layers="all", normalise="global", frames=0, cfg_half="cond",
              batch_index=0)
DECODE = dict(mode="latent2rgb (fast)", layout="grid: steps × frames", steps="all", frames=0, step=-1, batch_index=0)


def probe_graph(g: Graph, model=None, latent=None, probe=None, sampler=None, energy=None, save=True):
    """CoS Layer Probe → KSampler → (CoS Energy Maps) + CoS Save Trace; returns the nodes."""
    model = model if model is not None else wan_model(g)
    pos, neg = conditioning(g)
    latent = latent if latent is not None else video_latent(g)
    node = g.node("CoSLayerProbe", model=model, **{**PROBE, **(probe or {})})
    ks = ksampler(g, node.out(0), pos, neg, latent, **(sampler or {}))
    maps = None
    if energy is not None:
        maps = g.node("CoSEnergyMaps", trace=node.out(2), after=ks, **{**ENERGY, **energy})
        g.node("PreviewImage", images=maps)
    save_node = g.node("CoSSaveTrace", trace=node.out(2), filename_prefix="bad/probe", after=ks) if save else None
    return node, ks, maps, save_node


def ensemble_graph(g: Graph, model=None, latent=None, settings=None, **ensemble):
    model = model if model is not None else wan_model(g)
    pos, neg = conditioning(g)
    latent = latent if latent is not None else video_latent(g)
    values = dict(members=2, seed=3, steps="0", layers="1-2", alpha=1.0, merge="per layer", continue_with="primary",
                  seeds="")
    values.update(ensemble)
    node = g.node("CoSSeedEnsemble", model=model, latent=latent, **values)
    sampler = g.node("CoSSampler", model_high=node.out(0), positive=pos, negative=neg, latent=node.out(2),
                     noise=node.out(3), sampler=node.out(4), **sampler_inputs(**(settings or {})))
    g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="bad/ensemble")
    return node


def run_inputs(**settings) -> dict:
    values = sampler_inputs(**settings)
    for name in ("capture_steps", "stop_after_step", "preview_frames"):
        values.pop(name)
    return values


def flow_graph(g: Graph, settings=None, **flow):
    model = wan_model(g)
    pos, neg = conditioning(g)
    values = dict(mode="step", injections="all", strength=1.0, noise_seed=0, filename_prefix="bad/flow")
    values.update(flow)
    return g.node("CoSInformationFlow", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                  **run_inputs(**(settings or {})), **values)


def swap_graph(g: Graph, alt_latent=None, settings=None, **swap):
    model = wan_model(g)
    pos, neg = conditioning(g)
    alt_pos, alt_neg = conditioning(g, "alternative")
    values = dict(swap_step=0, layers="1", show_frame=-1)
    values.update(swap)
    extra = {} if alt_latent is None else {"alt_latent": alt_latent}
    node = g.node("CoSLayerSwapSweep", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                  alt_positive=alt_pos, alt_negative=alt_neg, **run_inputs(**(settings or {})), **values, **extra)
    g.node("PreviewImage", images=node)
    return node


def noise_graph(g: Graph, **noise):
    values = dict(mode="step", index=1, strength=1.0, noise_seed=0)
    values.update(noise)
    injection = g.node("CoSNoiseInjection", **values)
    model = wan_model(g)
    pos, neg = conditioning(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                     perturb=injection.out(0), **sampler_inputs())
    g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="bad/noise")
    return injection


def noise_custom_graph(g: Graph, **noise):
    """CoS Noise Injection's SAMPLER in ComfyUI's own SamplerCustomAdvanced."""
    values = dict(mode="step", index=1, strength=1.0, noise_seed=0)
    values.update(noise)
    injection = g.node("CoSNoiseInjection", **values)
    model = wan_model(g)
    pos, neg = conditioning(g)
    guider = g.node("CFGGuider", model=model, positive=pos, negative=neg, cfg=3.5)
    sigmas = g.node("BasicScheduler", model=model, scheduler="simple", steps=STEPS, denoise=1.0)
    custom = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=1), guider=guider,
                    sampler=injection.out(1), sigmas=sigmas, latent_image=video_latent(g))
    g.node("SaveLatent", samples=custom.out(0), filename_prefix="bad/noise_latent")
    return custom


def decode_graph(g: Graph, trace=None, after=None, **decode):
    trace = trace if trace is not None else sampler_graph(g, save=False).out(2)
    node = g.node("CoSDecodeSteps", trace=trace, **{**DECODE, **decode}, **({"after": after} if after else {}))
    g.node("PreviewImage", images=node)
    return node


def videos_graph(g: Graph, **videos):
    values = dict(mode="latent2rgb (fast)", steps="all", fps=8.0, filename_prefix="bad/steps")
    values.update(videos)
    return g.node("CoSSaveStepVideos", trace=sampler_graph(g, save=False).out(2), **values)


def convergence_graph(g: Graph, capture_steps="all", **conv):
    values = dict(threshold=0.1, grid=2, batch_index=0)
    values.update(conv)
    node = g.node("CoSConvergence", trace=sampler_graph(g, save=False, capture_steps=capture_steps).out(2), **values)
    g.node("PreviewImage", images=node)
    return node


def resume_graph(g: Graph, state_output=3, batch=2, stop_after_step=1, **resume):
    model = wan_model(g)
    pos, neg = conditioning(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=video_latent(g, batch=batch),
                     **sampler_inputs(stop_after_step=stop_after_step))
    values = dict(pick=-1, capture_steps="all", preview_frames=0)
    values.update(resume)
    node = g.node("CoSResume", model_high=model, positive=pos, negative=neg, state=sampler.out(state_output), **values)
    g.node("CoSSaveTrace", trace=node.out(2), filename_prefix="bad/resume")
    return node


def capture_graph(g: Graph, two_stage_low_output=False, **capture):
    """CoS Capture x̂0 on one model; two KSamplerAdvanced stages (the second on the 'model_low' output
    when ``two_stage_low_output``)."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSCaptureX0", model=model, **{"capture_steps": "all", **capture})
    common = dict(noise_seed=4, steps=4, cfg=3.5, sampler_name="euler", scheduler="simple", positive=pos, negative=neg)
    first = g.node("KSamplerAdvanced", model=node.out(0), add_noise="enable", latent_image=video_latent(g),
                   start_at_step=0, end_at_step=2, return_with_leftover_noise="enable", **common)
    second = g.node("KSamplerAdvanced", model=node.out(1) if two_stage_low_output else node.out(0),
                    add_noise="disable", latent_image=first, start_at_step=2, end_at_step=10000,
                    return_with_leftover_noise="disable", **common)
    save = g.node("CoSSaveTrace", trace=node.out(2), filename_prefix="bad/capture", after=second)
    return node, save


# ---------------------------------------------------------------------------------------------
# validation errors: HTTP 400 naming the input, before anything runs
# ---------------------------------------------------------------------------------------------

VALIDATION = {
    # case id: (build(g) -> node that must complain, input named in the error)
    "sampler steps 0": (lambda g: sampler_graph(g, steps=0), "steps"),
    "sampler steps 10001": (lambda g: sampler_graph(g, steps=10001), "steps"),
    "sampler capture_steps out of range": (lambda g: sampler_graph(g, capture_steps="0-99"), "capture_steps"),
    "sampler capture_steps unreadable": (lambda g: sampler_graph(g, capture_steps="1..3"), "capture_steps"),
    "sampler capture_steps backwards": (lambda g: sampler_graph(g, capture_steps="2-1"), "capture_steps"),
    "sampler stop_after_step = steps": (lambda g: sampler_graph(g, stop_after_step=STEPS), "stop_after_step"),
    "sampler switch_step past the end": (lambda g: sampler_graph(g, switch_step=9), "switch_step"),
    "sampler boundary 1": (lambda g: sampler_graph(g, boundary=1.0), "boundary"),
    "sampler cfg -1": (lambda g: sampler_graph(g, cfg=-1.0), "cfg"),
    "sampler unknown sampler_name": (lambda g: sampler_graph(g, sampler_name="nope"), "sampler_name"),
    "probe layers unreadable": (lambda g: probe_graph(g, probe={"layers": "1,x"})[0], "layers"),
    "probe steps backwards": (lambda g: probe_graph(g, probe={"steps": "2-1"})[0], "steps"),
    "probe raw_cap_mib 0": (lambda g: probe_graph(g, probe={"raw_cap_mib": 0})[0], "raw_cap_mib"),
    "energy maps layers unreadable": (lambda g: probe_graph(g, energy={"layers": "a"}, save=False)[2], "layers"),
    "decode frames -1": (lambda g: decode_graph(g, frames=-1), "frames"),
    "decode steps empty": (lambda g: decode_graph(g, steps=" "), "steps"),
    "noise strength 2": (lambda g: noise_graph(g, strength=2.0), "strength"),
    "noise index -1": (lambda g: noise_graph(g, index=-1), "index"),
    "ensemble steps 'all'": (lambda g: ensemble_graph(g, steps="all"), "steps"),
    "ensemble alpha 1.5": (lambda g: ensemble_graph(g, alpha=1.5), "alpha"),
    "ensemble members 0": (lambda g: ensemble_graph(g, members=0), "members"),
    "information flow injections out of range": (lambda g: flow_graph(g, injections="0-9"), "injections"),
    "layer swap swap_step past the end": (lambda g: swap_graph(g, swap_step=5), "swap_step"),
    "convergence grid 0": (lambda g: convergence_graph(g, grid=0), "grid"),
    "resume pick -2": (lambda g: resume_graph(g, pick=-2), "pick"),
}


@pytest.mark.parametrize("case", list(VALIDATION))
def test_validation_error_names_the_input(client, case):
    build, name = VALIDATION[case]
    g = Graph()
    node = build(g)
    body = rejected(client, g.prompt)
    assert validation_names_input(body, node, name), node_error_text(body, node)
    assert client.request("/queue") is not None  # a 400 never reaches the executor; see the next test


def test_still_serving_after_the_validation_errors(client):
    assert_still_serving(client)


def test_one_bad_output_of_several_is_reported_and_the_others_run(client):
    """ComfyUI's own rule: when only some outputs fail validation, /prompt answers 200, runs the valid
    ones and lists the invalid ones in ``node_errors`` (a client must look at it on a 200 too)."""
    from tier2_support import post_prompt, wait_all

    g = Graph()
    _, _, maps, save = probe_graph(g, energy={"layers": "a"})
    status, body = post_prompt(client, g.prompt)
    assert status == 200 and validation_names_input(body, maps, "layers"), body
    (history,) = wait_all(client, [body["prompt_id"]]).values()
    assert history["status"]["status_str"] == "success"
    assert ui_output(history, save, "cos_trace") and ui_output(history, maps, "images") is None


# ---------------------------------------------------------------------------------------------
# execution errors naming the input (the value is only wrong for what is connected)
# ---------------------------------------------------------------------------------------------

EXECUTION = {
    # case id: (build(g), input named in the message, node type that fails or None)
    "image latent into the CoS Sampler": (
        lambda g: sampler_graph(g, latent=g.node("EmptyLatentImage", width=32, height=32, batch_size=1)),
        "latent", "CoSSampler"),
    "12-channel Mochi video latent into a Wan model": (
        lambda g: sampler_graph(g, latent=g.node("EmptyMochiLatentVideo", width=32, height=32, length=7,
                                                 batch_size=1)), "latent", "CoSSampler"),
    "128-channel LTXV video latent into a Wan model": (
        lambda g: sampler_graph(g, latent=g.node("EmptyLTXVLatentVideo", width=64, height=64, length=9,
                                                 batch_size=1)), "latent", "CoSSampler"),
    "image model (Flux) into the CoS Sampler": (lambda g: sampler_graph(g, model=flux(g)), "model_high", "CoSSampler"),
    "image model (Flux) as model_low": (
        lambda g: g.set(sampler_graph(g), model_low=flux(g)), "model_low", "CoSSampler"),
    "image model (Flux) into the CoS Layer Probe": (lambda g: probe_graph(g, model=flux(g)), "model", "CoSLayerProbe"),
    "image model (Flux) into CoS Capture x0": (
        lambda g: g.node("CoSSaveTrace", filename_prefix="bad/x", trace=g.node(
            "CoSCaptureX0", model=flux(g), capture_steps="all").out(2)), "model", "CoSCaptureX0"),
    "image model (Flux) into the CoS Seed Ensemble": (
        lambda g: ensemble_graph(g, model=flux(g)), "model", "CoSSeedEnsemble"),
    "eps-prediction model (not flow matching)": (
        lambda g: sampler_graph(g, model=g.node("ModelSamplingDiscrete", model=wan_model(g), sampling="eps",
                                                zsnr=False)), "model_high", "CoSSampler"),
    "probe layers out of range": (lambda g: probe_graph(g, probe={"layers": "0-99"}), "layers", "CoSLayerProbe"),
    "probe with every output off": (
        lambda g: probe_graph(g, probe={"energy": False, "pca": False}), "energy", "CoSLayerProbe"),
    "probe steps out of range": (lambda g: probe_graph(g, probe={"steps": "0-99"}), "steps", None),
    "capture_steps out of range for the KSamplers": (
        lambda g: capture_graph(g, capture_steps="0-99"), "capture_steps", None),
    "ensemble layers out of range": (lambda g: ensemble_graph(g, layers="0-99"), "layers", "CoSSeedEnsemble"),
    "ensemble on a batch of 2": (lambda g: ensemble_graph(g, latent=video_latent(g, batch=2)), "latent",
                                 "CoSSeedEnsemble"),
    "ensemble with 3 seeds for 2 members": (lambda g: ensemble_graph(g, seeds="1,2,3"), "seeds", "CoSSeedEnsemble"),
    "ensemble step past the end of the run": (lambda g: ensemble_graph(g, steps="9"), "steps", None),
    "layer swap layers out of range": (lambda g: swap_graph(g, layers="9"), "layers", "CoSLayerSwapSweep"),
    "layer swap alt_latent of another size": (
        lambda g: swap_graph(g, alt_latent=video_latent(g, size=48)), "alt_latent", "CoSLayerSwapSweep"),
    "noise at step past the end": (lambda g: noise_graph(g, index=7), "index", "CoSSampler"),
    "noise at latent frame past the end": (lambda g: noise_graph(g, mode="frame", index=5), "index", "CoSSampler"),
    "noise SAMPLER at step past the end (SamplerCustomAdvanced)": (
        lambda g: noise_custom_graph(g, index=7), "index", "SamplerCustomAdvanced"),
    "information flow frame past the end": (
        lambda g: flow_graph(g, mode="frame", injections="5"), "injections", "CoSInformationFlow"),
    "decode steps out of range": (lambda g: decode_graph(g, steps="7"), "steps", "CoSDecodeSteps"),
    "decode batch_index past the batch (grid)": (lambda g: decode_graph(g, batch_index=3), "batch_index",
                                                 "CoSDecodeSteps"),
    "decode batch_index past the batch (one step)": (
        lambda g: decode_graph(g, layout="frames of one step", batch_index=3), "batch_index", "CoSDecodeSteps"),
    "decode mode vae with no VAE connected": (lambda g: decode_graph(g, mode="vae"), "vae", "CoSDecodeSteps"),
    "decode a probe trace (no x0)": (
        lambda g: decode_graph(g, *(lambda p: (p[0].out(2), p[1]))(probe_graph(g, save=False))), "trace",
        "CoSDecodeSteps"),
    "step videos mode vae with no VAE connected": (lambda g: videos_graph(g, mode="vae"), "vae", "CoSSaveStepVideos"),
    "energy maps step out of range": (lambda g: probe_graph(g, energy={"step": 9}), "step", "CoSEnergyMaps"),
    "energy maps layers not probed": (lambda g: probe_graph(g, energy={"layers": "7-9"}), "layers", "CoSEnergyMaps"),
    "energy maps batch_index past the batch": (
        lambda g: probe_graph(g, latent=video_latent(g, batch=2), energy={"batch_index": 5}), "batch_index",
        "CoSEnergyMaps"),
    "energy maps of a sampler trace (no energy)": (
        lambda g: g.node("PreviewImage", images=g.node("CoSEnergyMaps", trace=sampler_graph(g, save=False).out(2),
                                                       **ENERGY)), "trace", "CoSEnergyMaps"),
    "convergence of a trace with gaps": (lambda g: convergence_graph(g, capture_steps="0,2"), "trace",
                                         "CoSConvergence"),
    "convergence batch_index past the batch": (lambda g: convergence_graph(g, batch_index=4), "batch_index",
                                               "CoSConvergence"),
    "resume pick past the batch": (lambda g: resume_graph(g, pick=5), "pick", "CoSResume"),
    "resume from a run that did not stop (state is empty)": (
        lambda g: resume_graph(g, stop_after_step=-1), "state", "CoSResume"),
    "resume from a trace that is not a state": (lambda g: resume_graph(g, state_output=2), "state", "CoSResume"),
}


@pytest.mark.parametrize("case", list(EXECUTION))
def test_execution_error_names_the_input(client, case):
    build, name, node_type = EXECUTION[case]
    g = Graph()
    build(g)
    data = failed(client, g.prompt)
    message = data.get("exception_message", "")
    assert names_input(message, name), f"{data.get('node_type')}: {data.get('exception_type')}: {message}"
    if node_type is not None:
        assert data.get("node_type") == node_type, data
    assert_still_serving(client)


@pytest.mark.parametrize("case, build, name", [
    ("step videos steps unreadable", lambda g: videos_graph(g, steps="abc"), "steps"),
    ("save trace filename_prefix '../x'", lambda g: g.node(
        "CoSSaveTrace", trace=sampler_graph(g, save=False).out(2), filename_prefix="../x"), "filename_prefix"),
    ("step videos filename_prefix absolute", lambda g: videos_graph(g, filename_prefix="/cos_bad_abs/x"),
     "filename_prefix"),
    ("information flow filename_prefix '../x'", lambda g: flow_graph(g, filename_prefix="../x"), "filename_prefix"),
])
def test_bad_text_inputs_fail_naming_the_input(client, case, build, name):
    """A validation error is better (nothing runs), but an execution error naming the input passes."""
    from tools.comfy_server import PromptFailed, PromptRejected

    g = Graph()
    node = build(g)
    try:
        history = client.run(g.prompt, timeout=120)
    except PromptRejected as err:
        assert validation_names_input(err.body, node, name), node_error_text(err.body, node)
    except PromptFailed as err:
        assert not err.interrupted and names_input(err.data.get("exception_message", ""), name), err.data
    else:
        pytest.fail(f"{case}: the prompt ran: {history.get('outputs')}")
    assert_still_serving(client)


# ---------------------------------------------------------------------------------------------
# unusual but valid: must work, and the traces must say so
# ---------------------------------------------------------------------------------------------

def i2v_graph(g: Graph, length: int, batch: int = 1):
    """Wan2.2 I2V: WanImageToVideo with a start image → CoS Sampler with both experts → Save Trace."""
    high, low = wan_model(g, TINY_HIGH), wan_model(g, TINY_LOW)
    pos, neg = conditioning(g)
    vae = g.node("VAELoader", vae_name=TINY_VAE)
    image = g.node("EmptyImage", width=32, height=32, batch_size=1, color=0x808080)
    wan = g.node("WanImageToVideo", positive=pos, negative=neg, vae=vae, width=32, height=32, length=length,
                 batch_size=batch, start_image=image)
    sampler = g.node("CoSSampler", model_high=high, model_low=low, positive=wan.out(0), negative=wan.out(1),
                     latent=wan.out(2), **sampler_inputs())
    return sampler, g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"ok/i2v_{length}")


def fetch_latent(client, history, node):
    import safetensors.torch

    (entry,) = ui_output(history, node, "latents")
    return safetensors.torch.load(client.view(entry["filename"], entry["subfolder"], entry["type"]))["latent_tensor"]


def test_odd_frame_counts_are_floored_to_4k_plus_1_by_wan_image_to_video(client, tmp_path):
    """WanImageToVideo makes ((length - 1) // 4) + 1 latent frames (its VAE encode of the start image
    drops the frames past the last 4k+1 too), so length 10 gives bit for bit the length-9 video, and
    length 1 a one-latent-frame video: the pack sees ordinary latents."""
    g = Graph()
    saves = {length: i2v_graph(g, length)[1] for length in (1, 9, 10)}
    history = succeeded(client, g.prompt)
    traces = {length: fetch_trace(client, history, save, tmp_path) for length, save in saves.items()}
    for length, trace in traces.items():
        assert trace.steps == list(range(STEPS))
        assert trace[STEPS - 1].tensors["x0_hat"].shape[2] == (length - 1) // 4 + 1
    for s in range(STEPS):
        assert traces[10][s].tensors["x0_hat"].equal(traces[9][s].tensors["x0_hat"]), f"step {s}"


def test_batch_of_two_through_sampler_decode_probe_and_energy_maps(client, tmp_path):
    g = Graph()
    sampler, save = i2v_graph(g, 5, batch=2)
    decode = decode_graph(g, trace=sampler.out(2), batch_index=1)
    _, _, maps, probe_save = probe_graph(g, latent=video_latent(g, batch=2), energy={"batch_index": 1})
    history = succeeded(client, g.prompt)
    trace = fetch_trace(client, history, save, tmp_path)
    assert trace[0].tensors["x0_hat"].shape[0] == 2 and trace.meta["latent_shape"][0] == 2
    probed = fetch_trace(client, history, probe_save, tmp_path)
    assert probed[0].tensors["energy/L00/cond"].shape[0] == 2
    assert ui_output(history, next_node(decode), "images") and ui_output(history, next_node(maps), "images")


def test_cfg_1_runs_one_half_and_probe_and_energy_maps_still_work(client, tmp_path):
    g = Graph()
    saved, previews = {}, []
    for half in ("cond", "both"):
        _, _, maps, saved[half] = probe_graph(g, probe={"cfg_half": half}, sampler={"cfg": 1.0}, energy={})
        previews.append(next_node(maps))
    history = succeeded(client, g.prompt)
    for half, save in saved.items():
        trace = fetch_trace(client, history, save, tmp_path)
        assert trace.steps == list(range(STEPS))
        names = set(trace[0].tensors)
        assert "energy/L00/cond" in names and not any(n.endswith("/uncond") for n in names), (half, names)
    assert all(ui_output(history, p, "images") for p in previews)


def test_cfg_1_with_the_uncond_half_asked_names_cfg_half(client):
    """cfg = 1 runs only the cond half, so a probe set to record 'uncond' records nothing: the error
    must say so (naming cfg_half), not send the user to the step spec."""
    g = Graph()
    probe_graph(g, probe={"cfg_half": "uncond"}, sampler={"cfg": 1.0}, energy={"cfg_half": "uncond"}, save=False)
    data = failed(client, g.prompt)
    assert names_input(data["exception_message"], "cfg_half"), data["exception_message"]
    assert_still_serving(client)


def test_cfg_1_in_the_sampler_ensemble_swap_and_information_flow(client):
    g = Graph()
    sampler_graph(g, cfg=1.0)
    ensemble_graph(g, settings={"cfg": 1.0})
    swap_graph(g, settings={"cfg": 1.0})
    flow_graph(g, settings={"cfg": 1.0, "sampler_name": "heun"})
    succeeded(client, g.prompt)


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2s_ancestral"])
def test_multi_call_samplers_record_x0_once_per_step(client, tmp_path, sampler_name):
    """heun calls the model twice per step, dpmpp_2s_ancestral at an off-schedule midpoint: the CoS
    Sampler's trace still has one x̂0 per step with the schedule's σ, and the last x̂0 is the result."""
    g = Graph()
    sampler = sampler_graph(g, sampler_name=sampler_name, save=False)
    save = g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"ok/{sampler_name}")
    latent = g.node("SaveLatent", samples=sampler.out(0), filename_prefix=f"ok/{sampler_name}")
    history = succeeded(client, g.prompt)
    trace = fetch_trace(client, history, save, tmp_path)
    assert trace.steps == list(range(STEPS))
    assert [trace[s].sigma for s in trace.steps] == pytest.approx(trace.meta["sigmas"][:STEPS], rel=1e-6)
    final = fetch_latent(client, history, latent)
    assert final.shape == trace[STEPS - 1].tensors["x0_hat"].shape
    assert final.float().sub(trace[STEPS - 1].tensors["x0_hat"]).abs().max() < 1e-4


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2s_ancestral"])
def test_multi_call_samplers_through_the_layer_probe(client, tmp_path, sampler_name):
    """One record per schedule step; a step's record comes from that step's own first evaluation
    (heun's second evaluation at the next σ is replaced), so step 0 equals an euler run's step 0 and,
    for heun, step 1 differs from euler's step 1 (which is heun's predictor point)."""
    g = Graph()
    _, _, _, save = probe_graph(g, sampler={"sampler_name": sampler_name, "seed": 21})
    _, _, _, euler_save = probe_graph(g, probe={"steps": "0-2"}, sampler={"seed": 21})
    history = succeeded(client, g.prompt)
    trace, euler = fetch_trace(client, history, save, tmp_path), fetch_trace(client, history, euler_save, tmp_path)
    assert trace.steps == euler.steps == list(range(STEPS))
    assert [trace[s].sigma for s in trace.steps] == pytest.approx(trace.meta["sigmas"][:STEPS], rel=1e-6)
    assert trace[0].tensors["energy/L02/cond"].equal(euler[0].tensors["energy/L02/cond"])
    if sampler_name == "heun":
        assert not trace[1].tensors["energy/L02/cond"].equal(euler[1].tensors["energy/L02/cond"])


def test_multi_call_sampler_through_capture_with_two_stages(client, tmp_path):
    g = Graph()
    _, save = capture_graph(g)
    g.prompt[next(k for k, v in g.prompt.items() if v["class_type"] == "KSamplerAdvanced")]["inputs"][
        "sampler_name"] = "heun"
    trace = fetch_trace(client, succeeded(client, g.prompt), save, tmp_path)
    assert trace.steps == [0, 1, 2, 3] and trace.meta["stage_starts"] == [0, 2]


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2s_ancestral"])
def test_multi_call_samplers_with_the_seed_ensemble_and_resume(client, sampler_name):
    g = Graph()
    ensemble_graph(g, settings={"sampler_name": sampler_name})
    resume = resume_graph(g)
    g.prompt[next(k for k, v in g.prompt.items() if v["class_type"] == "CoSSampler"
                  and v["inputs"].get("stop_after_step") == 1)]["inputs"]["sampler_name"] = sampler_name
    succeeded(client, g.prompt)
    assert resume is not None


def test_disconnected_optional_inputs(client, tmp_path):
    """Every optional input left empty: CoS Sampler (no model_low/noise/sampler/perturb), Save Trace
    and Decode Steps (no 'after', no VAE in latent2rgb), Seed Ensemble (no model_low/sampler), Noise
    Injection (no sampler: euler), Layer Swap (no VAE, no alt_latent), Capture x̂0 (no model_low)."""
    g = Graph()
    sampler = sampler_graph(g, save=False)
    save = g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="ok/optional")
    decode_graph(g, trace=sampler.out(2))
    ensemble_graph(g)
    noise_custom_graph(g)
    swap_graph(g)
    capture_graph(g)
    history = succeeded(client, g.prompt)
    assert fetch_trace(client, history, save, tmp_path).steps == list(range(STEPS))


def test_capture_without_model_low_can_feed_both_stages(client, tmp_path):
    """With model_low not connected, CoS Capture x̂0's 'model_low' output must still be usable: a
    two-stage graph of one model wired to both outputs records all steps (rather than handing
    KSamplerAdvanced a None that fails deep inside ComfyUI)."""
    g = Graph()
    _, save = capture_graph(g, two_stage_low_output=True)
    trace = fetch_trace(client, succeeded(client, g.prompt), save, tmp_path)
    assert trace.steps == [0, 1, 2, 3]


def test_step_videos_and_load_trace_round_trip(client, server, tmp_path):
    """Not bad input: the saved trace is read back by CoS Load Trace and decoded, videos are written."""
    g = Graph()
    sampler = sampler_graph(g, save=False, seed=7)
    save = g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="ok/roundtrip")
    videos = g.node("CoSSaveStepVideos", trace=sampler.out(2), mode="latent2rgb (fast)", steps="0,-1", fps=8.0,
                    filename_prefix="ok/steps")
    history = succeeded(client, g.prompt)
    (entry,) = ui_output(history, save, "cos_trace")
    written = [v["filename"] for v in ui_output(history, videos, "images")]
    assert written == ["step_000.mp4", f"step_{STEPS - 1:03d}.mp4"]
    load = Graph()
    node = decode_graph(load, trace=load.node("CoSLoadTrace", path=f"{entry['subfolder']}/{entry['filename']}"))
    assert ui_output(succeeded(client, load.prompt), node, "images")
