"""Tier 2: the shipped CoS-Toy workflows on a real ComfyUI server, on a CPU, as a user runs them.

One server per module (tools.comfy_server.ComfyServer, ``--cpu``, the pack, no tiny stand-ins: the toy
needs none), always stopped. The workflows go through the same UI→API conversion as the main job
(tools.workflow_api.ui_to_api, strict). Skips when COMFYUI_PATH is unset.

What is checked is behaviour a user sees: the main job's default (``--tiny``) solves its dot task and
writes a readable x̂0 grid, the settings flags reach the graph, the layer-energy workflow draws its maps,
and CoS Toy Score refuses / warns on a video that is not the task's. The sampler runs are 10 steps at
96×96 × 17 frames (the toy's size); each takes a few seconds on the CPU.
"""
from __future__ import annotations

import json

import pytest

from comfy_fixtures import REPO_ROOT, SKIP_REASON, comfy_path

pytestmark = pytest.mark.server

WORKFLOWS = REPO_ROOT / "workflows"


@pytest.fixture(scope="module")
def server():
    root = comfy_path()
    if root is None:
        pytest.skip(SKIP_REASON)
    from tools.comfy_server import ComfyServer, comfy_python

    srv = ComfyServer(root, python=comfy_python(root), cpu=True, log=lambda *_: None)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def api_prompt(server, name: str) -> dict:
    from tools.workflow_api import ui_to_api

    return ui_to_api(json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8")), server.object_info,
                     strict=True)


def picture(client, history: dict, node: str):
    """The picture a node saved, as an (H, W, 3) uint8 array."""
    import io

    import numpy as np
    from PIL import Image

    from tools.cos_run import output_files

    (item,) = [f for f in output_files(history) if f["node"] == node and f["type"] == "output"]
    with Image.open(io.BytesIO(client.view(item["filename"], item["subfolder"], item["type"]))) as im:
        return np.asarray(im.convert("RGB"))


def test_main_job_default_is_the_toy_and_solves_its_task(server, tmp_path, capsys):
    """``tools/main.sh --tiny`` (the README's command) runs CoS-Toy: the dot task of seed 0 is solved, and the
    summary, the x̂0 grid, the step videos, both videos and the trace are there."""
    import numpy as np
    from PIL import Image

    from cos_core.trace import Trace
    from tools import cos_run

    out = tmp_path / "out"
    assert cos_run.main(["--server", server.url, "--tiny", "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "CoS-Toy score (node 9): dot seed 0: SOLVED (1/1 videos)" in printed
    assert "RANDOM-WEIGHT" not in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiny"] is True and summary["mode"] == "cos-toy" and "CoS-Toy" in summary["label"]
    assert summary["settings"]["image"] is None
    score = summary["toy_score"]
    assert (score["kind"], score["seed"], score["success"], score["solved"], score["videos"]) == ("dot", 0, 1.0, 1, 1)
    assert "warning" not in score

    kinds = {}
    for f in summary["files"]:
        assert (out / f["path"]).stat().st_size == f["bytes"] > 0
        kinds.setdefault(f["kind"], []).append(out / f["path"])
    assert sorted(kinds) == ["final video", "reference video", "step videos", "trace", "x0 grid"]
    assert [p.name for p in sorted(kinds["step videos"])] == [f"step_{s:03d}.mp4" for s in range(10)]

    trace = Trace.load(kinds["trace"][0])
    assert trace.steps == list(range(10)) and trace.meta["total_steps"] == 10
    assert trace[9].tensors["x0_hat"].shape[-3:] == (5, 12, 12)  # 17 frames → 5 latent frames of 12×12 cells

    (grid,) = kinds["x0 grid"]
    with Image.open(grid) as im:
        pixels = np.asarray(im.convert("RGB")).astype(np.int16)
    # 10 step rows of 96-pixel frames, 5 frame columns (plus labels)
    assert pixels.shape[0] >= 10 * 96 and pixels.shape[1] >= 5 * 96
    # the task's colours, not noise: a 2×2-cell dot or marker is 16×16 = 256 pixels per frame; the blue dot is in
    # frame 0 of all 10 rows and more (the moving / arrived dot), the yellow marker in several frames of each row
    blue = (pixels[..., 2] > 180) & (pixels[..., 0] < 80) & (pixels[..., 1] < 80)
    yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 150) & (pixels[..., 2] < 80)
    assert blue.sum() > 1.25 * 10 * 256 and yellow.sum() > 2 * 10 * 256, (blue.sum(), yellow.sum())


def test_main_job_flags_choose_the_puzzle_and_steps(server, tmp_path, capsys):
    from tools import cos_run

    out = tmp_path / "out"
    argv = ["--server", server.url, "--tiny", "--task", "maze", "--task-seed", "1", "--maze-rooms", "3",
            "--steps", "4", "--seed", "7", "--no-progress", "--out", str(out)]
    assert cos_run.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    score = summary["toy_score"]
    assert (score["kind"], score["seed"], score["maze_rooms"], score["videos"]) == ("maze", 1, 3, 1)
    assert score["success"] in (0.0, 1.0) and "warning" not in score
    changes = "\n".join(summary["changes"])
    for text in ("CoSToyTask: kind = maze", "CoSToyScore: kind = maze", "CoSToyTask: seed = 1",
                 "CoSToyScore: seed = 1", "CoSSampler: steps = 4", "CoSSampler: seed = 7"):
        assert text in changes, (text, changes)
    assert len([f for f in summary["files"] if f["kind"] == "step videos"]) == 4


@pytest.mark.parametrize("argv,message", [
    (["--tiny", "--image", "x.png"], "--image: not for the CoS-Toy workflow"),
    (["--tiny", "--task", "chess"], "--task: 'chess' is not one of maze, dot"),
    (["--tiny", "--task-seed", "1000000"], "--task-seed: 1000000 is outside 0..999999"),
    (["--tiny", "--workflow", str(WORKFLOWS / "ltx23_i2v_chain_of_steps.json")], "use --tiny random"),
    (["--tiny", "random", "--task", "dot"], "--task: only for CoS-Toy workflows"),
])
def test_main_job_refuses_what_the_toy_cannot_do(server, tmp_path, capsys, argv, message):
    from tools import cos_run

    assert cos_run.main(["--server", server.url, "--no-progress", "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_layer_energy_workflow_draws_its_maps(server, client):
    """The second toy workflow: a probe on every block, energy/PCA grids, energy across steps, x̂0 grid."""
    import numpy as np

    prompt = api_prompt(server, "cos_toy_layer_energy")
    history = client.run(prompt, timeout=600)
    assert history["status"]["status_str"] == "success"
    for node in ("8", "10", "12", "14"):
        pixels = picture(client, history, node).astype(np.int16)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200, (node, pixels.shape)
        assert pixels.reshape(-1, 3).std(axis=0).max() > 10, f"node {node}: a flat picture"
    (score,) = history["outputs"]["16"]["cos_toy_score"]
    assert (score["kind"], score["seed"], score["videos"]) == ("maze", 1, 1) and "warning" not in score


def test_toy_score_through_the_server_scores_the_reference_and_flags_another_task(client):
    """CoS Toy Score on the task's own reference video: solved, no warning; scored as another seed's task: a
    warning naming the inputs; a video whose length is not a multiple of 'frames': a clear error."""
    from tools.comfy_server import PromptFailed

    def run(score_seed, frames=17):
        prompt = {
            "1": {"class_type": "CoSToyTask", "inputs": {"kind": "dot", "seed": 3, "maze_rooms": 3}},
            "2": {"class_type": "CoSToyScore", "inputs": {"images": ["1", 1], "kind": "dot", "seed": score_seed,
                                                          "maze_rooms": 3, "frames": frames}},
        }
        return client.run(prompt, timeout=120)["outputs"]["2"]

    own = run(3)
    (entry,) = own["cos_toy_score"]
    assert entry["success"] == 1.0 and "warning" not in entry
    assert own["text"] == ["dot seed 3: 1/1 solved"]

    other = run(4)
    (entry,) = other["cos_toy_score"]
    assert "warning" in entry and "same kind, seed and maze_rooms" in entry["warning"]
    assert "WARNING" in other["text"][0]

    with pytest.raises(PromptFailed, match="frames"):
        run(3, frames=5)


def test_main_job_runs_a_wan22_workflow_on_the_toy(server, tmp_path, capsys):
    """``--tiny --workflow wan22_i2v_chain_of_steps.json``: the Wan2.2 two-expert graph with CoS-Toy in place of
    both experts, the VAE, the start image and the text; it solves the maze it is given, its x̂0 grids are
    decoded by the toy VAE (Wan's latent2rgb factors would misdraw the toy's latents), and nothing is noise."""
    import numpy as np
    from PIL import Image

    from tools import cos_run

    out = tmp_path / "out"
    argv = ["--server", server.url, "--tiny", "--workflow", str(WORKFLOWS / "wan22_i2v_chain_of_steps.json"),
            "--no-progress", "--out", str(out)]
    assert cos_run.main(argv) == 0
    assert "CoS-Toy score (node 21): maze seed 0: SOLVED (1/1 videos)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cos-toy" and summary["settings"]["image"] is None
    assert (summary["toy_score"]["kind"], summary["toy_score"]["success"]) == ("maze", 1.0)
    changes = "\n".join(summary["changes"])
    for text in ("node 1 UNETLoader wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors → CoSToyModel",
                 "node 2 UNETLoader wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors → CoSToyModel",
                 "node 9 LoadImage → CoSToyTask maze seed 0", "node 11 CoSSampler: cfg = 1.0",
                 "node 11 CoSSampler: switch_step = 5", "node 15 CoSDecodeSteps: mode = 'vae' on the toy VAE"):
        assert text in changes, (text, changes)
    grids = [out / f["path"] for f in summary["files"] if f["kind"] == "x0 grid"]
    assert len(grids) == 2
    for grid in grids:
        with Image.open(grid) as im:
            pixels = np.asarray(im.convert("RGB")).astype(np.int16)
        # the maze's white floor and the drawn blue path, in the task's exact colours
        white = (pixels.min(axis=-1) > 225).sum()
        blue = ((pixels[..., 2] > 180) & (pixels[..., 0] < 80) & (pixels[..., 1] < 80)).sum()
        assert white > 6 * 5 * 64 and blue > 6 * 64, (grid.name, white, blue)


TOY_VARIANTS = ["wan22_i2v_layer_energy_pca", "wan22_i2v_layer_swap", "wan22_i2v_noise_step_vs_frame",
                "wan22_i2v_preview_pick_finish", "wan22_i2v_seed_ensemble_vs_baseline"]


@pytest.mark.parametrize("name", TOY_VARIANTS)
def test_every_wan22_workflow_runs_as_its_toy_variant(server, client, name):
    """Each other shipped Wan2.2 I2V workflow runs on CoS-Toy (fast recipe) and scores what it decodes; the
    ensemble workflow scores its baseline and its ensemble video side by side."""
    import numpy as np

    from tools.cos_run import output_files
    from tools.toy_recipe import apply_toy_variant

    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))
    prompt = api_prompt(server, name)
    apply_toy_variant(prompt, workflow, server.object_info, fast=True)
    history = client.run(prompt, timeout=900)
    assert history["status"]["status_str"] == "success"
    pictures = [f for f in output_files(history) if f["filename"].endswith(".png") and f["type"] == "output"]
    assert pictures, name
    for item in pictures:
        pixels = picture(client, history, item["node"]).astype(np.int16)
        assert pixels.reshape(-1, 3).std(axis=0).max() > 10, f"{name} node {item['node']}: a flat picture"
    scores = {k: v["cos_toy_score"][0] for k, v in history["outputs"].items() if "cos_toy_score" in v}
    decoders = [k for k, v in prompt.items() if v["class_type"] == "VAEDecode"]
    assert len(scores) == len(decoders) == (2 if name.endswith("ensemble_vs_baseline") else
                                            0 if name.endswith("layer_swap") else 1), (name, scores)
    for score in scores.values():
        assert (score["kind"], score["seed"], score["videos"]) == ("maze", 0, 1) and "warning" not in score
