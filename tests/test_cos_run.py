"""Tier 0: the main-job runner's pure parts (tools/cos_run.py): settings, tiny rewrite, outputs."""
from __future__ import annotations

import argparse
import json

import pytest

from tools import cos_run
from tools.comfy_server import PromptRejected, _to_yaml, format_node_errors


def api_prompt():
    """The shipped workflow's API form, as ui_to_api gives it (ids and classes only matter here)."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                                                      "weight_dtype": "default"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
                                                      "weight_dtype": "default"}},
        "5": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                      "type": "wan", "device": "default"}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "positive text", "clip": ["5", 0]},
              "_meta": {"title": "Positive"}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "negative text", "clip": ["5", 0]}},
        "9": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "10": {"class_type": "WanImageToVideo", "inputs": {"width": 640, "height": 640, "length": 81, "batch_size": 1,
                                                           "positive": ["7", 0], "negative": ["8", 0]}},
        "11": {"class_type": "CoSSampler", "inputs": {"seed": 42, "steps": 20, "switch_step": 10,
                                                      "capture_steps": "all", "stop_after_step": 12,
                                                      "positive": ["10", 0]}},
        "17": {"class_type": "CoSDecodeSteps", "inputs": {"steps": "0,2,5,10,15,19"}},
        "19": {"class_type": "CoSSaveStepVideos", "inputs": {"steps": "all"}},
    }


def test_positive_prompt_is_found_through_the_links():
    assert cos_run.positive_text_nodes(api_prompt()) == ["7"]


def test_apply_settings_sets_every_override():
    prompt = api_prompt()
    notes = cos_run.apply_settings(prompt, "me.png", "she smiles", 6, 9, (64, 48), 7)
    assert prompt["9"]["inputs"]["image"] == "me.png"
    assert prompt["7"]["inputs"]["text"] == "she smiles" and prompt["8"]["inputs"]["text"] == "negative text"
    assert prompt["11"]["inputs"] == {"seed": 7, "steps": 6, "switch_step": 3, "capture_steps": "all",
                                      "stop_after_step": -1, "positive": ["10", 0]}
    assert prompt["10"]["inputs"]["length"] == 9
    assert (prompt["10"]["inputs"]["width"], prompt["10"]["inputs"]["height"]) == (64, 48)
    assert prompt["17"]["inputs"]["steps"] == "all"  # six picks of six steps: every step
    assert prompt["19"]["inputs"]["steps"] == "all"
    assert any("steps = 6" in n for n in notes)


def test_apply_settings_without_overrides_changes_nothing():
    prompt = api_prompt()
    assert cos_run.apply_settings(prompt, None, None, None, None, None, None) == []
    assert prompt == api_prompt()


@pytest.mark.parametrize("spec,steps,expected", [
    ("0,2,5,10,15,19", 20, "0,2,5,10,15,19"),
    ("0,2,5,10,15,19", 12, "0,2,4,7,9,11"),
    ("0,2,5,10,15,19", 6, "all"),
    ("0,2,5,10,15,19", 4, "all"),
    ("all", 3, "all"),
    ("0,-1", 3, "0,-1"),
    ("0-9", 20, "0-9"),
    ("0-30", 20, "all"),
    ("40", 20, "19"),
])
def test_respread_steps(spec, steps, expected):
    assert cos_run.respread_steps(spec, steps) == expected


def test_tiny_rewrite_swaps_files_and_the_text_encoder():
    prompt = api_prompt()
    notes = cos_run.tiny_rewrite(prompt)
    assert prompt["1"]["inputs"]["unet_name"] == "cos-tiny_wan2.2_i2v_high_noise.safetensors"
    assert prompt["2"]["inputs"]["unet_name"] == "cos-tiny_wan2.2_i2v_low_noise.safetensors"
    assert prompt["6"]["inputs"]["vae_name"] == "cos-tiny_wan_2.1_vae.safetensors"
    assert "5" not in prompt
    assert prompt["7"]["class_type"] == prompt["8"]["class_type"] == "CoSTinyTextEncode"
    assert prompt["7"]["inputs"] == {"text": "positive text"}
    assert any("CLIPLoader dropped" in n for n in notes)


def test_tiny_rewrite_refuses_other_clip_users():
    prompt = api_prompt()
    prompt["30"] = {"class_type": "SomethingWithClip", "inputs": {"clip": ["5", 0]}}
    with pytest.raises(ValueError, match="CLIPLoader still feeds"):
        cos_run.tiny_rewrite(prompt)


@pytest.mark.parametrize("text,ok", [("640x640", (640, 640)), ("64X48", (64, 48)), ("65x64", None), ("0x16", None),
                                     ("abc", None)])
def test_parse_size(text, ok):
    if ok:
        assert cos_run.parse_size(text) == ok
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            cos_run.parse_size(text)


@pytest.mark.parametrize("frames,ok", [(1, True), (9, True), (81, True), (80, False), (0, False)])
def test_parse_frames_needs_4k_plus_1(frames, ok):
    if ok:
        assert cos_run.parse_frames(str(frames)) == frames
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="4k\\+1"):
            cos_run.parse_frames(str(frames))


def test_new_out_dir_never_reuses_a_full_folder(tmp_path):
    out = tmp_path / "out"
    assert cos_run.new_out_dir(out) == out
    assert cos_run.new_out_dir(out) == out  # still empty
    (out / "summary.json").write_text("{}")
    assert cos_run.new_out_dir(out) == out / "run_001"
    assert cos_run.new_out_dir(out) == out / "run_002"


def test_output_files_reads_files_and_the_trace_entry():
    history = {"outputs": {
        "16": {"images": [{"filename": "g_00001_.png", "subfolder": "chain_of_steps", "type": "output"}]},
        "15": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]},
        "19": {"images": [{"filename": "step_000.mp4", "subfolder": "chain_of_steps/steps_00001_", "type": "output"}],
               "animated": [True]},
        "20": {"text": ["saved chain_of_steps/trace_00001_.safetensors: Trace(6 steps, ...)"],
               "cos_trace": [{"filename": "trace_00001_.safetensors", "subfolder": "chain_of_steps",
                              "type": "output"}]},
    }}
    files = cos_run.output_files(history)
    assert {(f["node"], f["subfolder"], f["filename"], f["type"]) for f in files} == {
        ("16", "chain_of_steps", "g_00001_.png", "output"), ("15", "", "p.png", "temp"),
        ("19", "chain_of_steps/steps_00001_", "step_000.mp4", "output"),
        ("20", "chain_of_steps", "trace_00001_.safetensors", "output")}


def test_node_errors_are_readable():
    body = {"error": {"message": "Prompt outputs failed validation"},
            "node_errors": {"11": {"class_type": "CoSSampler", "errors": [
                {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                 "details": "seed - capture_steps: '0-99' is out"},
                {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                 "details": "steps - capture_steps: '0-99' is out"}]}}}
    text = format_node_errors(body, {"11": {"_meta": {"title": "CoS Sampler"}}})
    assert "node 11 'CoSSampler' (CoS Sampler)" in text and text.count("capture_steps") == 1
    assert "capture_steps" in str(PromptRejected(body))


def test_a_prompt_accepted_with_node_errors_is_refused(monkeypatch):
    """ComfyUI answers 200 and queues a prompt without its invalid outputs; the client must not take that
    for success."""
    from tools.comfy_server import ComfyClient

    client = ComfyClient("http://127.0.0.1:1")
    answer = {"prompt_id": "p1", "number": 0, "node_errors": {"11": {"class_type": "CoSSampler", "errors": [
        {"type": "custom_validation_failed", "message": "bad", "details": "capture_steps: '0-99' is out"}]}}}
    monkeypatch.setattr(client, "request", lambda path, body=None, **_: answer)
    with pytest.raises(PromptRejected, match="capture_steps"):
        client.queue({"11": {"class_type": "CoSSampler", "inputs": {}}})
    monkeypatch.setattr(client, "request", lambda path, body=None, **_: {"prompt_id": "p2", "node_errors": {}})
    assert client.queue({}) == "p2"


def test_extra_model_paths_yaml_quotes_paths():
    text = _to_yaml({"a": {"custom_nodes": "/tmp/x y/custom_nodes"}})
    assert text == 'a:\n    custom_nodes: "/tmp/x y/custom_nodes"\n'
    assert json.loads(text.split(": ", 1)[1])  # a JSON string is a valid YAML scalar


def test_missing_comfyui_is_explained(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    assert cos_run.main(["--out", str(tmp_path / "o")]) == 2
    assert "COMFYUI_PATH" in capsys.readouterr().err


def test_default_image_is_matplotlibs_photo():
    pytest.importorskip("matplotlib")
    path = cos_run.default_image()
    assert path.name == "grace_hopper.jpg" and path.is_file()


# --- CoS-Toy: the embedded default of --tiny -----------------------------------------------------------------

def shipped_workflow(name: str) -> dict:
    return json.loads((cos_run.REPO_ROOT / "workflows" / f"{name}.json").read_text(encoding="utf-8"))


def test_toy_workflows_are_recognised():
    assert cos_run.TOY_WORKFLOW.is_file()
    assert cos_run.is_toy_workflow(shipped_workflow("cos_toy_chain_of_steps"))
    assert cos_run.is_toy_workflow(shipped_workflow("cos_toy_layer_energy"))
    assert not cos_run.is_toy_workflow(shipped_workflow("wan22_i2v_chain_of_steps"))
    muted = shipped_workflow("cos_toy_chain_of_steps")
    for node in muted["nodes"]:
        if node["type"] == "CoSToyModel":
            node["mode"] = 4
    assert not cos_run.is_toy_workflow(muted)


def test_tiny_recipe_leaves_toy_workflows_as_shipped():
    """Thumbnails and the browser tests make workflows tiny; the toy only works at its trained size."""
    from tools.tiny_recipe import tiny_blockers, tiny_overrides

    workflow = shipped_workflow("cos_toy_chain_of_steps")
    assert tiny_overrides(workflow, {}) == {} and tiny_blockers(workflow) == []


def toy_prompt():
    return {"3": {"class_type": "CoSToyTask", "inputs": {"kind": "dot", "seed": 0, "maze_rooms": 3}},
            "9": {"class_type": "CoSToyScore", "inputs": {"images": ["8", 0], "kind": "dot", "seed": 0,
                                                          "maze_rooms": 3, "frames": 17}},
            "5": {"class_type": "CoSSampler", "inputs": {"seed": 42, "steps": 10}}}


TOY_INFO = {"CoSToyTask": {"input": {"required": {"kind": ["COMBO", {"options": ["maze", "dot", "door"]}]}}}}


def test_toy_settings_set_task_and_score_alike():
    prompt = toy_prompt()
    notes = cos_run.apply_toy_settings(prompt, TOY_INFO, "maze", 12, 4)
    for node in ("3", "9"):
        assert {k: prompt[node]["inputs"][k] for k in ("kind", "seed", "maze_rooms")} == {
            "kind": "maze", "seed": 12, "maze_rooms": 4}
    assert prompt["5"]["inputs"] == {"seed": 42, "steps": 10}
    assert len(notes) == 6
    unchanged = toy_prompt()
    assert cos_run.apply_toy_settings(unchanged, TOY_INFO, None, None, None) == [] and unchanged == toy_prompt()


@pytest.mark.parametrize("kind,seed,rooms,message", [
    ("chess", None, None, "--task: 'chess' is not one of maze, dot, door"),
    (None, -1, None, "--task-seed: -1 is outside"),
    (None, 1_000_000, None, "training set"),
    (None, None, 6, "--maze-rooms: 6 is outside 2..5"),
])
def test_toy_settings_refuse_bad_values(kind, seed, rooms, message):
    with pytest.raises(ValueError, match=message):
        cos_run.apply_toy_settings(toy_prompt(), TOY_INFO, kind, seed, rooms)


def test_toy_scores_and_file_kinds_from_history():
    prompt = toy_prompt() | {"14": {"class_type": "SaveVideo", "inputs": {},
                                    "_meta": {"title": "Save Video (reference solution)"}},
                             "12": {"class_type": "SaveVideo", "inputs": {}, "_meta": {"title": "Save Video"}}}
    history = {"outputs": {"9": {"text": ["dot seed 0: 1/1 solved"],
                                 "cos_toy_score": [{"kind": "dot", "seed": 0, "success": 1.0, "solved": 1,
                                                    "videos": 1}]},
                           "3": {"cos_toy_score": [{"kind": "x"}]}}}  # not a score node: ignored
    assert cos_run.toy_scores(history, prompt) == [{"node": "9", "kind": "dot", "seed": 0, "success": 1.0,
                                                    "solved": 1, "videos": 1}]
    assert cos_run.toy_scores({"outputs": {}}, prompt) == []
    assert cos_run.file_kind(prompt["14"]) == "reference video"
    assert cos_run.file_kind(prompt["12"]) == "final video"
    assert cos_run.file_kind({"class_type": "CoSSaveTrace"}) == "trace"
    graph = {"1": {"class_type": "CoSInformationFlow", "inputs": {}},
             "2": {"class_type": "CoSDecodeSteps", "inputs": {}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}
    assert cos_run.file_kind(graph["3"], graph) == "information flow"
    assert cos_run.file_kind(graph["4"], graph) == cos_run.file_kind(graph["4"]) == "x0 grid"


@pytest.mark.parametrize("argv,message", [
    (["--tiny", "--workflow", "workflows/ltx23_i2v_chain_of_steps.json"], "cannot run on CoS-Toy"),
    (["--tiny", "--workflow", "workflows/wan22_i2v_chain_of_steps.json", "--image", "x.png"],
     "--image: not for the CoS-Toy workflow"),
    (["--tiny", "--size", "64x64"], "--size: not for the CoS-Toy workflow"),
    (["--tiny", "--prompt", "a cat"], "--prompt: not for the CoS-Toy workflow"),
    (["--task", "dot"], "--task: only for CoS-Toy workflows"),
    (["--tiny", "random", "--maze-rooms", "3"], "--maze-rooms: only for CoS-Toy workflows"),
    (["--tiny", "random", "--workflow", "workflows/cos_toy_chain_of_steps.json"], "--tiny random: not for"),
])
def test_toy_argument_errors_come_before_any_server(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(cos_run.REPO_ROOT)
    out = tmp_path / "o"
    assert cos_run.main(["--server", "http://127.0.0.1:1", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_tiny_means_toy_and_random_is_explicit():
    parser = cos_run.build_parser()
    assert parser.parse_args(["--tiny", "--out", "o"]).tiny == "toy"
    assert parser.parse_args(["--tiny", "random", "--out", "o"]).tiny == "random"
    assert parser.parse_args(["--out", "o"]).tiny is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--tiny", "wan", "--out", "o"])


def test_relative_paths_mean_the_callers_folder(tmp_path):
    """tools/main.sh runs from the repository root; a relative --out must still land where the user is."""
    args = cos_run.build_parser().parse_args(["--out", "out/run", "--image", "me.png", "--workflow",
                                              "workflows/cos_toy_chain_of_steps.json"])
    cos_run.caller_paths(args, str(tmp_path))
    assert args.out == tmp_path / "out" / "run" and args.image == tmp_path / "me.png"
    assert str(args.workflow) == "workflows/cos_toy_chain_of_steps.json"  # not in the caller's folder: the repo's
    (tmp_path / "mine.json").write_text("{}")
    args = cos_run.build_parser().parse_args(["--out", "/abs/o", "--workflow", "mine.json"])
    cos_run.caller_paths(args, str(tmp_path))
    assert str(args.out) == "/abs/o" and args.workflow == tmp_path / "mine.json"
    args = cos_run.build_parser().parse_args(["--out", "o"])
    cos_run.caller_paths(args, None)
    assert str(args.out) == "o"


def test_a_killed_runner_still_runs_its_cleanup():
    """SIGTERM (a CI timeout, ``kill``) becomes SystemExit(143): the runner's ``finally`` stops the ComfyUI it
    started instead of leaving it running in its own session."""
    import subprocess
    import sys

    code = ("import os, signal, time\n"
            "from tools.comfy_server import exit_on_sigterm\n"
            "exit_on_sigterm()\n"
            "try:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(30)\n"
            "finally:\n"
            "    print('server stopped', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=cos_run.REPO_ROOT, capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 143 and done.stdout == "server stopped\n", (done.returncode, done.stdout, done.stderr)
