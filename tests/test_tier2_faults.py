"""Tier 2: faults during a run through a real ComfyUI server: nothing breaks, nothing is lost.

- ``POST /interrupt`` in the middle of sampling with the pack's hooks on,
- an exception raised inside a block hook (CoS Layer Probe's raw-state cap),
- a full disk while writing outputs (simulated inside the server by the test-only
  ``CoSTestFault`` node of ``tests/server_nodes``: the trace writer writes half a file and raises
  ``OSError(ENOSPC)``, or ``os.fsync`` fails with ENOSPC for every file in the output folder),

and after each: no hook, wrapper or patch remains on the shared MODEL (the cached UNETLoader →
ModelSamplingSD3 output, looked at by ``CoSTestInspectModel`` inside the server), no half-written
or temporary file is left in the output folder, no preview thread is left running, and the next
run gives bit for bit what a clean run gave (traces and latents).

One server per module (tiny random-weight models, the pack and the test probes), always stopped.
Skips when COMFYUI_PATH is unset.
"""
from __future__ import annotations

import threading

import pytest

from tier2_support import (Graph, clean_model_report, conditioning, failed, fetch_trace, inspect_shared_model,
                           ksampler, module_server, names_input, same_trace, sampler_inputs, stray_files, succeeded,
                           ui_output, video_latent, wan_model)

pytestmark = pytest.mark.server

LONG = 16  # steps of the runs that get interrupted (the interrupt must land mid-run)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory)


def untouched_model(client) -> dict:
    """The shared MODEL before a fault: nothing attached but ModelSamplingSD3's object patch.

    ComfyUI's default cache drops every result the current prompt does not use, so the shared MODEL
    stays the same object only while every prompt in between uses it; the tests see to that.
    """
    report = inspect_shared_model(client)
    assert not report["patches_replace"] and not report["wrappers"] and not report["forward_hooks"], report
    return report


def assert_nothing_left_behind(client, server, before):
    report = inspect_shared_model(client)
    assert report["model_id"] == before["model_id"], "not the same shared MODEL: the check would prove nothing"
    assert clean_model_report(report) == clean_model_report(before)
    assert report["checksum"] == before["checksum"], "the shared model's weights changed"
    assert report["pack_threads"] == [], "a preview thread was left running"
    assert stray_files(server.output_dir) == []


def fetch_latent(client, history, node):
    import safetensors.torch

    (entry,) = ui_output(history, node, "latents")
    return safetensors.torch.load(client.view(entry["filename"], entry["subfolder"], entry["type"]))["latent_tensor"]


# ---------------------------------------------------------------------------------------------
# graphs: the three ways the pack hooks into sampling
# ---------------------------------------------------------------------------------------------

PROBE = dict(layers="all", cfg_half="both", energy=True, pca=True, pca_basis="shared (first probed step)",
             raw_states=False, raw_cap_mib=64)


def probe_ksampler(g: Graph, key: str, steps: int = LONG, frames: int = 5, size: int = 32, **probe):
    """CoS Layer Probe (block replace + OUTER_SAMPLE wrapper on a clone) → KSampler → trace, latent.
    ``key`` is the probe's step spec: different spellings of 'every step' give different cache keys
    (so the graph runs again) and the same numbers."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSLayerProbe", model=model, steps=key, **{**PROBE, **probe})
    ks = ksampler(g, node.out(0), pos, neg, video_latent(g, frames=frames, size=size), seed=5, steps=steps)
    return ks, (g.node("CoSSaveTrace", trace=node.out(2), filename_prefix="faults/probe", after=ks),
                g.node("SaveLatent", samples=ks, filename_prefix="faults/probe"))


def ensemble_sampler(g: Graph, key: int, steps: int = LONG):
    """CoS Seed Ensemble (block replace on clones + a segmenting SAMPLER) → CoS Sampler with the live
    preview on; ``key`` is preview_frames (a cache key that does not change the numbers)."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSSeedEnsemble", model=model, latent=video_latent(g), members=2, seed=3,
                  steps="0-1", layers="1-2", alpha=1.0, merge="per layer", continue_with="primary", seeds="")
    sampler = g.node("CoSSampler", model_high=node.out(0), positive=pos, negative=neg, latent=node.out(2),
                     noise=node.out(3), sampler=node.out(4),
                     **sampler_inputs(steps=steps, preview_frames=key, seed=9))
    return sampler, (g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix="faults/ensemble"),
                     g.node("SaveLatent", samples=sampler.out(0), filename_prefix="faults/ensemble"))


def probed_cos_sampler(g: Graph, key: int, frames: int = 5, size: int = 32, **probe):
    """CoS Layer Probe's MODEL sampled by the CoS Sampler (its own stages and callbacks)."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSLayerProbe", model=model, steps="all", **{**PROBE, **probe})
    sampler = g.node("CoSSampler", model_high=node.out(0), positive=pos, negative=neg,
                     latent=video_latent(g, frames=frames, size=size), **sampler_inputs(preview_frames=key))
    return sampler, (g.node("CoSSaveTrace", trace=node.out(2), filename_prefix="faults/probed", after=sampler.out(0)),
                     g.node("SaveLatent", samples=sampler.out(0), filename_prefix="faults/probed"))


def run_and_fetch(client, g: Graph, saves, tmp_path):
    history = succeeded(client, g.prompt, timeout=300)
    return fetch_trace(client, history, saves[0], tmp_path), fetch_latent(client, history, saves[1])


def assert_same_run(got, want):
    trace, latent = got
    assert same_trace(trace, want[0]) == []
    assert latent.equal(want[1]), "the final latent differs from the clean run's"


# ---------------------------------------------------------------------------------------------
# POST /interrupt mid-run
# ---------------------------------------------------------------------------------------------

INTERRUPTED = {
    "layer probe + KSampler": (probe_ksampler, ("all", f"0-{LONG - 1}", "0--1")),
    "seed ensemble + CoS Sampler": (ensemble_sampler, (1, 2, 3)),
}


@pytest.mark.parametrize("case", list(INTERRUPTED))
def test_interrupt_mid_run_leaves_nothing_behind(client, server, tmp_path, case):
    from tools.comfy_server import PromptFailed

    build, (clean_key, fault_key, next_key) = INTERRUPTED[case]
    before = untouched_model(client)
    g = Graph()
    _, saves = build(g, clean_key)
    clean = run_and_fetch(client, g, saves, tmp_path)
    assert clean[0].steps == list(range(LONG))

    g = Graph()
    sampler, _ = build(g, fault_key)
    seen, sent = [], threading.Event()

    def interrupt_on_first_step(c, prompt_id, kind, data):
        if kind == "progress" and str(data.get("node")) == sampler.id:
            seen.append(data.get("value"))
            if not sent.is_set():
                sent.set()
                c.interrupt(prompt_id)

    with pytest.raises(PromptFailed) as caught:
        client.run(g.prompt, on_event=interrupt_on_first_step, timeout=300)
    assert caught.value.interrupted
    assert seen and max(seen) < LONG, f"the interrupt came too late: progress {seen}"
    assert_nothing_left_behind(client, server, before)

    g = Graph()
    _, saves = build(g, next_key)
    assert_same_run(run_and_fetch(client, g, saves, tmp_path), clean)


# ---------------------------------------------------------------------------------------------
# an exception inside a hook
# ---------------------------------------------------------------------------------------------

HOOKED = {
    # raw states of 3×8×8 tokens × 128 channels × 4 B = 96 KiB per layer, step and half: the 1 MiB cap
    # is passed inside the block hook during sampling
    "layer probe + KSampler": (lambda g, key, **kw: probe_ksampler(g, key, steps=3, **kw), ("all", "0-2", "0--1"),
                               "KSampler"),
    "layer probe + CoS Sampler": (lambda g, key, **kw: probed_cos_sampler(g, key, **kw),
                                  (1, 2, 3), "CoSSampler"),
}


@pytest.mark.parametrize("case", list(HOOKED))
def test_exception_inside_a_block_hook_leaves_nothing_behind(client, server, tmp_path, case):
    build, (clean_key, fault_key, next_key), node_type = HOOKED[case]
    big = dict(frames=9, size=128, raw_states=True)
    before = untouched_model(client)
    g = Graph()
    _, saves = build(g, clean_key, **big, raw_cap_mib=64)
    clean = run_and_fetch(client, g, saves, tmp_path)

    g = Graph()
    build(g, fault_key, **big, raw_cap_mib=1)
    data = failed(client, g.prompt, timeout=300)
    assert data["node_type"] == node_type and data["exception_type"] == "MemoryError", data
    assert names_input(data["exception_message"], "raw_cap_mib"), data["exception_message"]
    assert_nothing_left_behind(client, server, before)

    g = Graph()
    _, saves = build(g, next_key, **big, raw_cap_mib=65)
    assert_same_run(run_and_fetch(client, g, saves, tmp_path), clean)


# ---------------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------------

def set_fault(client, fault: str) -> None:
    """Inject or remove a fault; the prompt also uses the shared MODEL so ComfyUI keeps it cached."""
    g = Graph()
    g.node("CoSTestFault", fault=fault)
    inspect_shared_model(client, graph=g)


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def sampler_with_outputs(g: Graph, key: int, folder: str, what: str):
    """A CoS Sampler run and one of the pack's writers (trace, step videos, information-flow numbers)."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    latent = video_latent(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=latent,
                     **sampler_inputs(preview_frames=key, seed=31))
    if what == "trace":
        return g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"{folder}/trace")
    if what == "step videos":
        return g.node("CoSSaveStepVideos", trace=sampler.out(2), mode="latent2rgb (fast)", steps="all", fps=8.0,
                      filename_prefix=f"{folder}/steps")
    values = sampler_inputs(seed=31)
    for name in ("capture_steps", "stop_after_step", "preview_frames"):
        values.pop(name)
    return g.node("CoSInformationFlow", model_high=model, positive=pos, negative=neg, latent=latent, **values,
                  mode="step", injections=str(key % 3), strength=1.0, noise_seed=0,
                  filename_prefix=f"{folder}/flow")


@pytest.mark.parametrize("fault, what", [
    ("disk full on trace save", "trace"),
    ("disk full on fsync in the output folder", "trace"),
    ("disk full on fsync in the output folder", "step videos"),
    ("disk full on fsync in the output folder", "information flow"),
])
def test_full_disk_leaves_no_half_written_file(client, server, tmp_path, fault, what):
    folder = f"disk_{what.replace(' ', '_')}_{fault.split()[-1]}"
    out = server.output_dir / folder
    before = untouched_model(client)
    g = Graph()
    clean_node = sampler_with_outputs(g, 1, folder, what)
    clean = succeeded(client, g.prompt)
    written = files_under(out)
    assert written

    set_fault(client, fault)
    try:
        g = Graph()
        sampler_with_outputs(g, 2, folder, what)
        data = failed(client, g.prompt)
    finally:
        set_fault(client, "none")
    assert "No space left on device" in data["exception_message"], data
    assert files_under(out) == written, "a file was left behind by the failed write"
    assert_nothing_left_behind(client, server, before)

    g = Graph()
    node = sampler_with_outputs(g, 2, folder, what)
    history = succeeded(client, g.prompt)
    if what == "trace":
        assert same_trace(fetch_trace(client, history, node, tmp_path), fetch_trace(client, clean, clean_node,
                                                                                      tmp_path)) == []
    assert len(files_under(out)) == 2 * len(written)
