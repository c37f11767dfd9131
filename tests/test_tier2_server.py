"""Tier 2: a real ComfyUI server (subprocess, tiny random-weight models) running the shipped workflow.

One server per module, started by the runner's own helper (tools.comfy_server.ComfyServer) with
the pack and the tiny stand-ins loaded; it is always stopped. Skips when COMFYUI_PATH is unset.
"""
from __future__ import annotations

import json
import threading

import pytest

from comfy_fixtures import SKIP_REASON, comfy_path

pytestmark = pytest.mark.server

TRACE_NODE, SAMPLER_NODE = "20", "11"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = comfy_path()
    if root is None:
        pytest.skip(SKIP_REASON)
    from tools.comfy_server import ComfyServer, comfy_python, write_tiny_models

    python = comfy_python(root)
    models = write_tiny_models(python, root, tmp_path_factory.mktemp("tiny_models"))
    srv = ComfyServer(root, python=python, cpu=True, tiny_models=models, log=lambda *_: None)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def image_name(client):
    from tools.cos_run import default_image

    return client.upload_image(default_image())


def tiny_prompt(server, image_name, steps=6, frames=9, size=(64, 64)):
    """The shipped workflow in API form, tiny models, small sizes (as ``cos_run --tiny random`` builds it)."""
    from tools.cos_run import DEFAULT_WORKFLOW, apply_settings, tiny_rewrite
    from tools.workflow_api import ui_to_api

    prompt = ui_to_api(json.loads(DEFAULT_WORKFLOW.read_text(encoding="utf-8")), server.object_info)
    tiny_rewrite(prompt)
    apply_settings(prompt, image_name, None, steps, frames, size, None)
    return prompt


def fetch_trace(client, history, tmp_path):
    from cos_core.trace import Trace
    from tools.cos_run import output_files

    (item,) = [f for f in output_files(history) if f["node"] == TRACE_NODE]
    path = tmp_path / item["filename"]
    path.write_bytes(client.view(item["filename"], item["subfolder"], item["type"]))
    return Trace.load(path)


def test_shipped_workflow_matches_the_servers_nodes(server):
    """Every node type exists and every widgets_values list has exactly its widgets' values."""
    from tools.cos_run import DEFAULT_WORKFLOW
    from tools.workflow_api import ui_to_api

    prompt = ui_to_api(json.loads(DEFAULT_WORKFLOW.read_text(encoding="utf-8")), server.object_info, strict=True)
    assert prompt[SAMPLER_NODE]["inputs"]["seed"] == 42 and prompt[SAMPLER_NODE]["inputs"]["steps"] == 20
    assert prompt["14"]["inputs"]["format"] == "auto"


def test_main_job_tiny_random_end_to_end(server, tmp_path, capsys):
    """``--tiny random``: the Wan2.2 workflow with both experts on tiny random-weight stand-ins (``--tiny`` alone
    runs CoS-Toy: tests/test_tier2_toy.py)."""
    import numpy as np
    from PIL import Image

    from cos_core.trace import Trace
    from tools import cos_run

    out = tmp_path / "out"
    assert cos_run.main(["--server", server.url, "--tiny", "random", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "TINY RANDOM-WEIGHT" in printed and "x0 grid" in printed and "CoS-Toy score" not in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiny"] is True and "random-weight" in summary["label"].lower()
    assert summary["mode"] == "tiny random-weight stand-ins" and "toy_score" not in summary
    assert summary["settings"]["workflow"].endswith("wan22_i2v_chain_of_steps.json")
    assert summary["settings"]["image"].endswith("grace_hopper.jpg")
    kinds = {}
    for f in summary["files"]:
        assert (out / f["path"]).stat().st_size == f["bytes"] > 0
        kinds.setdefault(f["kind"], []).append(out / f["path"])

    grids = kinds["x0 grid"]
    assert len(grids) == 2 and all(p.suffix == ".png" for p in grids)
    for grid in grids:
        with Image.open(grid) as im:
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape[0] > 0 and pixels.shape[1] > 0
        assert pixels.reshape(-1, 3).std(axis=0).max() > 5, f"{grid.name} is a flat colour"

    steps = sorted(kinds["step videos"])
    assert [p.name for p in steps] == [f"step_{s:03d}.mp4" for s in range(6)]
    assert len({p.parent for p in steps}) == 1
    (final,) = kinds["final video"]
    assert final.suffix == ".mp4"

    (trace_path,) = kinds["trace"]
    trace = Trace.load(trace_path)
    assert trace.steps == list(range(6)) and trace.meta["total_steps"] == 6
    assert trace[5].tensors["x0_hat"].shape[2] == 3  # 9 frames → 3 latent frames


@pytest.mark.parametrize("field,value", [("capture_steps", "0-99"), ("boundary", 1.0)])
def test_validation_errors_name_the_input(server, client, image_name, field, value):
    from tools.comfy_server import PromptRejected

    prompt = tiny_prompt(server, image_name)
    prompt[SAMPLER_NODE]["inputs"][field] = value
    with pytest.raises(PromptRejected) as caught:
        client.queue(prompt)
    errors = caught.value.body["node_errors"][SAMPLER_NODE]["errors"]
    assert errors and any(field in (e.get("details") or "") for e in errors), errors
    assert field in str(caught.value)

    # the server is fine afterwards
    history = client.run(tiny_prompt(server, image_name), targets=[TRACE_NODE], timeout=120)
    assert history["status"]["status_str"] == "success"


def test_interrupt_leaves_no_hook_behind(server, client, image_name, tmp_path):
    """Interrupt the sampler mid-run, then the same settings again must give the clean run's trace."""
    from tools.comfy_server import PromptFailed

    steps = 40

    def prompt_with(preview_frames):
        # preview_frames changes the node's cache key but not the numbers
        prompt = tiny_prompt(server, image_name, steps=steps)
        prompt[SAMPLER_NODE]["inputs"]["preview_frames"] = preview_frames
        return prompt

    clean = fetch_trace(client, client.run(prompt_with(4), targets=[TRACE_NODE], timeout=120), tmp_path)
    assert clean.steps == list(range(steps))

    seen, sent = [], threading.Event()

    def interrupt_on_first_step(c, prompt_id, kind, data):
        if kind == "progress" and str(data.get("node")) == SAMPLER_NODE:
            seen.append(data.get("value"))
            if not sent.is_set():
                sent.set()
                c.interrupt(prompt_id)

    with pytest.raises(PromptFailed) as caught:
        client.run(prompt_with(3), on_event=interrupt_on_first_step, targets=[TRACE_NODE], timeout=120)
    assert caught.value.interrupted
    assert seen and max(seen) < steps, f"the interrupt came too late: progress {seen}"

    again = fetch_trace(client, client.run(prompt_with(2), targets=[TRACE_NODE], timeout=120), tmp_path)
    assert again.steps == clean.steps
    assert again.meta["sigmas"] == clean.meta["sigmas"]
    for s in clean.steps:
        assert again[s].sigma == clean[s].sigma and again[s].expert == clean[s].expert
        for name, tensor in clean[s].tensors.items():
            assert again[s].tensors[name].equal(tensor), f"step {s} {name} differs after the interrupt"
