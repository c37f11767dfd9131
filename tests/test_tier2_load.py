"""Tier 2: a queue of 20 prompts mixing every CoS node on tiny models, queued at once.

It must complete with no leak in host memory (the server's RSS after the queue against after a
warm-up round, plus the pack's live objects and threads counted inside the server by the test-only
``CoSTestInspectModel``) and no cross-talk between the traces of different prompts: each saved
trace carries its own prompt's seed, a trace recorded by a patched MODEL ends in its own prompt's
final latent, and re-queuing an earlier graph (same seed, another file name) after a run with another
seed saves the earlier trace again.

The server runs with ``--cache-lru 32``: ComfyUI's default cache drops every result the running
prompt does not use, so only a cache that keeps results across prompts (LRU, or RAM-pressure on a
machine with spare RAM) can hand a later prompt a node output that an earlier prompt filled. One
server per module, always stopped. Skips when COMFYUI_PATH is unset.
"""
from __future__ import annotations

import os

import pytest

from tier2_support import (TINY_HIGH, TINY_LOW, TINY_VAE, Graph, conditioning, fetch_trace, inspect_shared_model,
                           ksampler, module_server, same_trace, sampler_inputs, stray_files, ui_output,
                           video_latent, wait_all, wan_model)

pytestmark = [pytest.mark.server]

STEPS = 3
RSS_SLACK_MIB = 96  # allocator noise and the LRU cache filling (+22..36 MiB seen); a leaked tiny model copy
# per prompt (6 MiB × 20) would go past it; leaked traces are too small for RSS and show in the object counts


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from module_server(tmp_path_factory, extra_args=["--cache-lru", "32"])


def rss_mib(pid: int) -> float:
    """Resident memory of a process (psutil, else /proc)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        return kib / 1024


# ---------------------------------------------------------------------------------------------
# the prompt mix: every builder returns (graph, checks) where checks name what to verify
# ---------------------------------------------------------------------------------------------

def run_values(seed: int, **overrides) -> dict:
    values = sampler_inputs(seed=seed, **overrides)
    for name in ("capture_steps", "stop_after_step", "preview_frames"):
        values.pop(name)
    return values


def i2v(g: Graph, seed_text: str = "load"):
    high, low = wan_model(g, TINY_HIGH), wan_model(g, TINY_LOW)
    pos, neg = conditioning(g, seed_text)
    vae = g.node("VAELoader", vae_name=TINY_VAE)
    wan = g.node("WanImageToVideo", positive=pos, negative=neg, vae=vae, width=32, height=32, length=5,
                 batch_size=1, start_image=g.node("EmptyImage", width=32, height=32, batch_size=1, color=0x336699))
    return high, low, wan


def p_sampler(seed, tag):
    g = Graph()
    high, low, wan = i2v(g)
    sampler = g.node("CoSSampler", model_high=high, model_low=low, positive=wan.out(0), negative=wan.out(1),
                     latent=wan.out(2), **sampler_inputs(seed=seed, preview_frames=2))
    decode = g.node("CoSDecodeSteps", trace=sampler.out(2), mode="latent2rgb (fast)", layout="grid: steps × frames",
                    steps="all", frames=0, step=-1, batch_index=0)
    g.node("SaveImage", images=decode, filename_prefix=f"load/{tag}_grid")
    return g, {"seed": (g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"load/{tag}"), seed)}


def p_capture(seed, tag):
    g = Graph()
    high, low, wan = i2v(g)
    node = g.node("CoSCaptureX0", model=high, model_low=low, capture_steps="all")
    common = dict(noise_seed=seed, steps=4, cfg=3.5, sampler_name="euler", scheduler="simple", positive=wan.out(0),
                  negative=wan.out(1))
    first = g.node("KSamplerAdvanced", model=node.out(0), add_noise="enable", latent_image=wan.out(2), start_at_step=0,
                   end_at_step=2, return_with_leftover_noise="enable", **common)
    second = g.node("KSamplerAdvanced", model=node.out(1), add_noise="disable", latent_image=first, start_at_step=2,
                    end_at_step=10000, return_with_leftover_noise="disable", **common)
    save = g.node("CoSSaveTrace", trace=node.out(2), filename_prefix=f"load/{tag}", after=second)
    latent = g.node("SaveLatent", samples=second, filename_prefix=f"load/{tag}")
    return g, {"ends_in_latent": (save, latent), "same_as": ("capture", seed, save)}


def p_probe(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSLayerProbe", model=model, layers="all", steps="all", cfg_half="cond", energy=True, pca=True,
                  pca_basis="shared (first probed step)", raw_states=False, raw_cap_mib=64)
    ks = ksampler(g, node.out(0), pos, neg, video_latent(g), seed=seed, steps=STEPS)
    maps = g.node("CoSEnergyMaps", trace=node.out(2), after=ks, view="energy grid (layers × frames)", step=-1,
                  layers="all", normalise="global", frames=0, cfg_half="cond", batch_index=0)
    g.node("SaveImage", images=maps, filename_prefix=f"load/{tag}_energy")
    save = g.node("CoSSaveTrace", trace=node.out(2), filename_prefix=f"load/{tag}", after=ks)
    return g, {"same_as": ("probe", seed, save)}


def p_noise(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    injection = g.node("CoSNoiseInjection", mode="frame", index=1, strength=0.5, noise_seed=seed)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                     perturb=injection.out(0), **sampler_inputs(seed=seed))
    return g, {"seed": (g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"load/{tag}"), seed)}


def p_ensemble(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    node = g.node("CoSSeedEnsemble", model=model, latent=video_latent(g), members=2, seed=seed, steps="0", layers="1-2",
                  alpha=1.0, merge="window mean", continue_with="primary", seeds="")
    sampler = g.node("CoSSampler", model_high=node.out(0), positive=pos, negative=neg, latent=node.out(2),
                     noise=node.out(3), sampler=node.out(4), **sampler_inputs(seed=0))
    return g, {"seed": (g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"load/{tag}"), seed)}


def p_flow(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    g.node("CoSInformationFlow", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
           **run_values(seed), mode="step", injections="1", strength=1.0, noise_seed=seed,
           filename_prefix=f"load/{tag}")
    return g, {}


def p_swap(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    alt_pos, alt_neg = conditioning(g, "alternative")
    swap = g.node("CoSLayerSwapSweep", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                  alt_positive=alt_pos, alt_negative=alt_neg, **run_values(seed), swap_step=0, layers="1",
                  show_frame=-1)
    g.node("SaveImage", images=swap, filename_prefix=f"load/{tag}")
    return g, {}


def p_convergence(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=video_latent(g),
                     **sampler_inputs(seed=seed))
    conv = g.node("CoSConvergence", trace=sampler.out(2), threshold=0.1, grid=2, batch_index=0)
    g.node("SaveImage", images=conv, filename_prefix=f"load/{tag}")
    g.node("CoSSaveStepVideos", trace=sampler.out(2), mode="latent2rgb (fast)", steps="0,-1", fps=8.0,
           filename_prefix=f"load/{tag}_steps")
    return g, {"seed": (g.node("CoSSaveTrace", trace=sampler.out(2), filename_prefix=f"load/{tag}"), seed)}


def p_resume(seed, tag):
    g = Graph()
    model = wan_model(g)
    pos, neg = conditioning(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=video_latent(g, batch=2),
                     **sampler_inputs(seed=seed, stop_after_step=1))
    resume = g.node("CoSResume", model_high=model, positive=pos, negative=neg, state=sampler.out(3), pick=1,
                    capture_steps="all", preview_frames=0)
    state = g.node("CoSSaveTrace", trace=sampler.out(3), filename_prefix=f"load/{tag}_state")
    return g, {"seed": (g.node("CoSSaveTrace", trace=resume.out(2), filename_prefix=f"load/{tag}"), seed),
               "state_seed": (state, seed)}


def p_load(seed, tag, path="load/warm_sampler_00001_.safetensors"):
    g = Graph()
    loaded = g.node("CoSLoadTrace", path=path)
    decode = g.node("CoSDecodeSteps", trace=loaded, mode="latent2rgb (fast)", layout="frames of one step",
                    steps="all", frames=0, step=-1, batch_index=0)
    g.node("SaveImage", images=decode, filename_prefix=f"load/{tag}")
    return g, {}


KINDS = {"sampler": p_sampler, "capture": p_capture, "probe": p_probe, "noise": p_noise, "ensemble": p_ensemble,
         "flow": p_flow, "swap": p_swap, "convergence": p_convergence, "resume": p_resume, "load": p_load}

# The measured queue: 20 prompts, every kind, with the capture and probe graphs queued as
# seed a, seed b, seed a again (the third must save the first's trace, not the second's).
QUEUE = ["sampler", ("capture", 1), ("capture", 2), ("capture", 1), "noise", ("probe", 1), ("probe", 2), ("probe", 1),
         "ensemble", "flow", "swap", "convergence", "resume", "load", "sampler", "noise", "ensemble", "convergence",
         "resume", "load"]


def queue_all(client, items):
    """Queue every prompt before any finishes; returns [(kind, seed, prompt_id, checks)]."""
    queued = []
    for index, (kind, seed, tag) in enumerate(items):
        graph, checks = KINDS[kind](seed, tag)
        queued.append((kind, seed, client.queue(graph.prompt), checks))
    return queued


def check_results(client, queued, tmp_path) -> list[str]:
    """Every prompt succeeded, and no trace belongs to another prompt; returns the problems found."""
    import safetensors.torch

    histories = wait_all(client, [prompt_id for _, _, prompt_id, _ in queued], timeout=600)
    problems = [f"{kind} seed {seed}: {histories[prompt_id]['status']}" for kind, seed, prompt_id, _ in queued
                if histories[prompt_id]["status"]["status_str"] != "success"]
    if problems:
        return problems
    first = {}
    for kind, seed, prompt_id, checks in queued:
        history = histories[prompt_id]
        for key in ("seed", "state_seed"):
            if key in checks:
                save, want = checks[key]
                got = fetch_trace(client, history, save, tmp_path).meta["seed"]
                if got != want:
                    problems.append(f"{kind}: the trace of the prompt with seed {want} says seed {got}")
        if "ends_in_latent" in checks:
            save, latent_node = checks["ends_in_latent"]
            trace = fetch_trace(client, history, save, tmp_path)
            (entry,) = ui_output(history, latent_node, "latents")
            latent = safetensors.torch.load(client.view(entry["filename"], entry["subfolder"], entry["type"]))
            gap = float((latent["latent_tensor"].float() - trace[trace.steps[-1]].tensors["x0_hat"]).abs().max())
            if gap > 1e-4:
                problems.append(f"{kind} seed {seed}: its trace does not end in its own final latent "
                                f"(max gap {gap:.3g})")
        if "same_as" in checks:
            group, group_seed, save = checks["same_as"]
            trace = fetch_trace(client, history, save, tmp_path)
            if (group, group_seed) in first:
                if same_trace(trace, first[(group, group_seed)]):
                    problems.append(f"{group} seed {group_seed} queued again saved another prompt's trace")
            else:
                problems += [f"{group}: seeds {seed} and {other_seed} gave the same trace"
                             for (other_group, other_seed), other in first.items()
                             if other_group == group and not same_trace(trace, other)]
                first[(group, group_seed)] = trace
    return problems


def test_a_queue_of_20_mixed_prompts_no_leak_no_cross_talk(client, server, tmp_path):
    pid = server.proc.pid
    warm = [(kind, 500 + i, f"warm_{kind}") for i, kind in enumerate(KINDS)]
    problems = check_results(client, queue_all(client, warm), tmp_path)
    warm_report = inspect_shared_model(client)  # gc.collect() inside the server, then measure
    rss_warm = rss_mib(pid)

    items = []
    for i, entry in enumerate(QUEUE):
        kind, seed = (entry[0], 7000 + entry[1]) if isinstance(entry, tuple) else (entry, 1000 + i)
        items.append((kind, seed, f"q{i:02d}_{kind}"))
    assert len(items) == 20 and {kind for kind, _, _ in items} == set(KINDS)
    problems += check_results(client, queue_all(client, items), tmp_path)

    report = inspect_shared_model(client)
    rss_after = rss_mib(pid)
    print(f"\nserver RSS: {rss_warm:.0f} MiB after the warm-up, {rss_after:.0f} MiB after 20 prompts; "
          f"pack objects alive {warm_report['pack_objects']} → {report['pack_objects']}")
    assert not problems, "cross-talk or failures:\n  " + "\n  ".join(problems)
    assert rss_after - rss_warm < RSS_SLACK_MIB, f"RSS grew {rss_after - rss_warm:.0f} MiB over 20 prompts"
    for name, count in report["pack_objects"].items():
        # the LRU cache keeps up to 32 node results: a bounded number, not one per prompt run
        assert count <= warm_report["pack_objects"].get(name, 0) + 40, (name, count)
    assert report["pack_threads"] == [], "preview threads were left running"
    assert not report["patches_replace"] and not report["wrappers"] and not report["forward_hooks"]
    assert stray_files(server.output_dir) == []
    assert len(os.listdir(server.output_dir / "load")) > 40
