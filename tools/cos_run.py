"""The main job: run a shipped Chain-of-Steps workflow headless against ComfyUI, outputs into a folder.

Usage (from the repository root, in ComfyUI's Python; ``bash tools/main.sh ...`` does this)::

    python -m tools.cos_run [--workflow workflows/wan22_i2v_chain_of_steps.json] [--image PATH]
        [--prompt TEXT] [--steps N] [--frames N] [--size WxH] [--seed N] [--tiny [toy|random]]
        [--task dot|maze|door] [--task-seed N] [--maze-rooms N]
        [--server URL | (COMFYUI_PATH env)] --out DIR

What it does:

1. **A server.** With ``--server URL`` it uses that ComfyUI (the pack must be installed there).
   Otherwise it starts the ComfyUI checkout named by ``COMFYUI_PATH`` as a subprocess on
   127.0.0.1 with the pack loaded from this repository and every folder it writes temporary, so
   the user's ComfyUI is not touched (``tools/comfy_server.py``); it is stopped at the end, also
   on Ctrl-C.
2. **The prompt.** The UI-format workflow is converted to API format with
   :func:`tools.workflow_api.ui_to_api` against the server's ``/object_info``. The start image is
   uploaded and set on LoadImage; ``--prompt`` sets the positive CLIPTextEncode, ``--steps`` the
   CoS Sampler's steps (step lists of CoS Decode Steps that name later steps are respread),
   ``--frames`` WanImageToVideo's length (4k+1), ``--size`` its width × height (multiples of 16),
   ``--seed`` the CoS Sampler's seed.
3. **Weights.** Without ``--tiny`` the files the loaders name must be in the server's models
   folders; otherwise it exits with code 2 naming each missing file, where to download it and
   where to put it. ``--tiny`` (= ``--tiny toy``, the embedded default) runs on CoS-Toy, the pack's
   small *trained* Wan I2V model (``TOY.md``, weights shipped in ``tools/toy/weights``), on a
   procedural puzzle chosen by ``--task``, ``--task-seed`` and ``--maze-rooms``, 96×96, 17 frames,
   10 steps, cfg 1, on a CPU; the CoS Toy Score of each final video goes into ``summary.json``
   (``toy_score``). Without ``--workflow`` that is ``workflows/cos_toy_chain_of_steps.json``; a
   CoS-Toy workflow (a CoS Toy Model node) runs as it is, and a Wan2.2 I2V workflow runs as its
   toy variant (:mod:`tools.toy_recipe`: the toy stands in for both experts, the VAE, the start
   image and the text conditioning; no model files needed). ``--tiny random`` keeps the Wan2.2 workflow and
   swaps in tiny random-weight stand-ins written by
   ``tools/tiny.py`` (cached in ``.cos_cache/``), and, as the umt5 and Gemma text encoders cannot be
   tiny, replaces CLIPTextEncode by the test stand-in ``CoSTinyTextEncode`` or ``CoSTinyLTXTextEncode``
   (``tools/tiny_nodes``) and drops CLIPLoader / LTXAVTextEncoderLoader; sizes default to 64x64,
   9 frames, 6 steps. The pictures are then noise, and are labelled so (console and ``summary.json``).
4. **Running.** One progress bar follows the nodes over the websocket; validation errors
   (HTTP 400) and execution errors are printed readably and give exit code 1.
5. **Results.** Every output file in ``/history`` (pictures, videos, the trace) is downloaded
   into ``--out`` keeping ComfyUI's subfolders (``chain_of_steps/...``), never overwriting: if
   ``--out`` exists and is not empty, a new ``--out/run_NNN`` is used. ``summary.json`` records the
   prompt id, timings, settings, the tiny mode, the CoS-Toy score (toy workflows) and the files.

Exit codes: 0 done, 1 the prompt failed, 2 bad arguments / missing ComfyUI or weights, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tools.comfy_server import (REPO_ROOT, ComfyClient, ComfyServer, Progress, PromptFailed, PromptRejected,
                                ServerError, comfy_python, exit_on_sigterm, write_tiny_models)
from tools.toy_recipe import apply_toy_variant, toy_blockers
from tools.workflow_api import WorkflowError, find_nodes, ui_to_api

DEFAULT_WORKFLOW = REPO_ROOT / "workflows" / "wan22_i2v_chain_of_steps.json"
TOY_WORKFLOW = REPO_ROOT / "workflows" / "cos_toy_chain_of_steps.json"
TOY_MODEL_NODE = "CoSToyModel"
DEFAULT_CACHE = REPO_ROOT / ".cos_cache"
TINY_DEFAULTS = {"size": (64, 64), "frames": 9, "steps": 6}
TINY_LABEL = ("made with TINY RANDOM-WEIGHT stand-in models (tools/tiny.py) and a random text-conditioning "
              "stand-in: the pictures are noise, not Wan2.2 output; this run checks the machinery only")
TOY_LABEL = ("made with CoS-Toy, the pack's small Wan I2V model trained on procedural puzzles (TOY.md), on a toy "
             "task: real output of a trained model, in miniature; not Wan2.2")
LOADERS = {  # class → (file input, ComfyUI models folder)
    "UNETLoader": ("unet_name", "diffusion_models"),
    "VAELoader": ("vae_name", "vae"),
    "CLIPLoader": ("clip_name", "text_encoders"),
    "CheckpointLoaderSimple": ("ckpt_name", "checkpoints"),
    "LoraLoaderModelOnly": ("lora_name", "loras"),
    "CLIPVisionLoader": ("clip_name", "clip_vision"),
    "LTXVAudioVAELoader": ("ckpt_name", "checkpoints"),
    "LatentUpscaleModelLoader": ("model_name", "latent_upscale_models"),
}
KINDS = {  # producing node class → how the summary names its files
    "SaveImage": "x0 grid",
    "CoSSaveStepVideos": "step videos",
    "SaveVideo": "final video",
    "CoSSaveTrace": "trace",
}
PICTURE_SOURCES = {  # the node feeding a Save Image → how the summary names the picture (default: x0 grid)
    "CoSInformationFlow": "information flow",
    "CoSEnergyMaps": "layer maps",
    "CoSLayerSwapSweep": "layer swap",
}


def default_image() -> Path:
    """matplotlib's bundled photograph of Grace Hopper (a real portrait, no download needed)."""
    try:
        import matplotlib.cbook

        return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except (ImportError, OSError, ValueError):
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec is None or not spec.origin:
            raise FileNotFoundError("matplotlib is not installed: pass --image PATH") from None
        return Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not match:
        raise argparse.ArgumentTypeError(f"--size: '{text}' is not WxH, e.g. 640x640")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 16 or height < 16 or width % 16 or height % 16:
        raise argparse.ArgumentTypeError(f"--size: {width}x{height}: width and height must be multiples of 16 "
                                         "(at least 16)")
    return width, height


def parse_frames(text: str) -> int:
    frames = int(text)
    if frames < 1 or (frames - 1) % 4:
        raise argparse.ArgumentTypeError(f"--frames: {frames} is not 4k+1 (Wan: 1, 5, 9, ..., 81)")
    return frames


def parse_steps(text: str) -> int:
    steps = int(text)
    if not 1 <= steps <= 10000:
        raise argparse.ArgumentTypeError(f"--steps: {steps} is outside 1..10000")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cos_run",
        description="Run a Chain-of-Steps workflow headless against ComfyUI and save its outputs "
                    "(x̂0 grids, per-step videos, final video, trace) into a folder.",
        epilog="ComfyUI: set COMFYUI_PATH to a ComfyUI checkout (started here with the pack loaded from this "
               "repository, in temporary folders; its Python: COMFYUI_PYTHON, else COMFYUI_PATH/.venv or /venv) "
               "or pass --server URL of a running ComfyUI that has the pack installed. Exit codes: 0 done, 1 the "
               "prompt failed, 2 bad arguments or missing ComfyUI/weights, 130 interrupted.")
    parser.add_argument("--workflow", type=Path, default=None,
                        help="UI-format workflow JSON (default: workflows/wan22_i2v_chain_of_steps.json; with "
                             "--tiny: workflows/cos_toy_chain_of_steps.json)")
    parser.add_argument("--image", type=Path, default=None,
                        help="start image (default: matplotlib's bundled photograph grace_hopper.jpg, from "
                             "matplotlib.cbook.get_sample_data)")
    parser.add_argument("--prompt", default=None, help="positive prompt (default: the workflow's)")
    parser.add_argument("--steps", type=parse_steps, default=None,
                        help="denoising steps of the CoS Sampler (default: the workflow's; Wan2.2 20, CoS-Toy 10; "
                             "--tiny random: 6)")
    parser.add_argument("--frames", type=parse_frames, default=None,
                        help="video length in frames, 4k+1 (default: the workflow's 81; --tiny random: 9; CoS-Toy: "
                             "always 17)")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="WxH, multiples of 16 (default: the workflow's 640x640; --tiny random: 64x64; CoS-Toy: "
                             "always 96x96)")
    parser.add_argument("--seed", type=int, default=None, help="sampler seed (default: the workflow's 42)")
    parser.add_argument("--tiny", nargs="?", const="toy", default=None, choices=("toy", "random"),
                        help="run on a CPU with no downloads. toy (the default of --tiny): CoS-Toy, the pack's small "
                             "trained Wan I2V model, on a procedural puzzle, scored (TOY.md): the CoS-Toy workflow, or "
                             "a Wan2.2 I2V --workflow in its toy variant. random: "
                             "the Wan2.2 workflow with tiny random-weight stand-in models and text conditioning, a "
                             "smoke test of the two-expert path whose outputs are noise and labelled so")
    parser.add_argument("--task", default=None,
                        help="CoS-Toy: the puzzle, dot, maze or door (default: the toy workflow's dot; a Wan2.2 "
                             "workflow's toy variant: maze)")
    parser.add_argument("--task-seed", type=int, default=None,
                        help="CoS-Toy: the task instance, 0..999999 (default 0; a second start image gets seed + 1)")
    parser.add_argument("--maze-rooms", type=int, default=None, help="CoS-Toy: maze size in rooms, 2..5")
    parser.add_argument("--server", default=None, help="URL of a running ComfyUI with the pack installed "
                        "(default: start COMFYUI_PATH's)")
    parser.add_argument("--cpu", action="store_true", default=None,
                        help="start ComfyUI with --cpu (default: only when torch sees no GPU)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where --tiny random keeps its model files (default: .cos_cache/ in the repo)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds of running")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder; if it exists and is not empty, a new run_NNN inside it is used")
    return parser


# ---------------------------------------------------------------------------------------------
# prompt edits
# ---------------------------------------------------------------------------------------------

def positive_text_nodes(prompt: dict) -> list[str]:
    """CLIPTextEncode nodes that feed an input named 'positive' (directly)."""
    found = []
    for entry in prompt.values():
        source = entry["inputs"].get("positive")
        if isinstance(source, list) and prompt.get(source[0], {}).get("class_type") == "CLIPTextEncode":
            found.append(source[0])
    return sorted(set(found), key=int)


def respread_steps(spec: str, steps: int) -> str:
    """A CoS Decode Steps list like "0,2,5,10,15,19" made to fit ``steps``.

    Unchanged when it already fits; else the same number of picks spread evenly over
    0..steps-1 (first and last included), or "all" when there are not fewer steps than picks.
    """
    text = (spec or "").strip()
    if text.lower() == "all":
        return text
    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    try:
        values = [int(t) for t in tokens]
    except ValueError:  # ranges etc.: check with the pack's own parser
        try:
            from cos_core.steps import parse_spec

            parse_spec(text, steps, name="steps")
            return text
        except Exception:  # noqa: BLE001 - any failure: fall back to every step
            return "all"
    if all(-steps <= v < steps for v in values):
        return text
    picks = len(values)
    if picks >= steps or picks < 2:
        return "all" if picks >= steps else str(steps - 1)
    spread = sorted({round(i * (steps - 1) / (picks - 1)) for i in range(picks)})
    return ",".join(str(v) for v in spread)


def apply_settings(prompt: dict, image_name: str | None, text: str | None, steps: int | None,
                   frames: int | None, size: tuple[int, int] | None, seed: int | None) -> list[str]:
    """Edit the API prompt in place; returns a list of what was changed (for the summary)."""
    notes = []
    if image_name is not None:
        for node_id in find_nodes(prompt, "LoadImage"):
            prompt[node_id]["inputs"]["image"] = image_name
            notes.append(f"node {node_id} LoadImage: image = {image_name}")
    if text is not None:
        targets = positive_text_nodes(prompt)
        if not targets:
            raise WorkflowError("--prompt: no CLIPTextEncode feeds a 'positive' input in this workflow")
        for node_id in targets:
            prompt[node_id]["inputs"]["text"] = text
            notes.append(f"node {node_id} CLIPTextEncode (positive): text set")
    samplers = find_nodes(prompt, "CoSSampler")
    if steps is not None:
        for node_id in samplers:
            inputs = prompt[node_id]["inputs"]
            inputs["steps"] = steps
            notes.append(f"node {node_id} CoSSampler: steps = {steps}")
            if isinstance(inputs.get("switch_step"), int) and inputs["switch_step"] > steps:
                inputs["switch_step"] = steps // 2
                notes.append(f"node {node_id} CoSSampler: switch_step = {steps // 2}")
            if isinstance(inputs.get("stop_after_step"), int) and inputs["stop_after_step"] >= steps:
                inputs["stop_after_step"] = -1
                notes.append(f"node {node_id} CoSSampler: stop_after_step = -1")
            if isinstance(inputs.get("capture_steps"), str):
                new = respread_steps(inputs["capture_steps"], steps)
                if new != inputs["capture_steps"]:
                    inputs["capture_steps"] = new
                    notes.append(f"node {node_id} CoSSampler: capture_steps = {new}")
        for kind in ("CoSDecodeSteps", "CoSSaveStepVideos"):
            for node_id in find_nodes(prompt, kind):
                inputs = prompt[node_id]["inputs"]
                if isinstance(inputs.get("steps"), str):
                    new = respread_steps(inputs["steps"], steps)
                    if new != inputs["steps"]:
                        inputs["steps"] = new
                        notes.append(f"node {node_id} {kind}: steps = {new}")
    if seed is not None:
        for node_id in samplers:
            prompt[node_id]["inputs"]["seed"] = seed
            notes.append(f"node {node_id} CoSSampler: seed = {seed}")
    for node_id in find_nodes(prompt, "WanImageToVideo"):
        inputs = prompt[node_id]["inputs"]
        if frames is not None:
            inputs["length"] = frames
            notes.append(f"node {node_id} WanImageToVideo: length = {frames}")
        if size is not None:
            inputs["width"], inputs["height"] = size
            notes.append(f"node {node_id} WanImageToVideo: {size[0]}x{size[1]}")
    return notes


# text-encoder loader → the stand-in that replaces the CLIPTextEncode nodes it feeds (tools/tiny_nodes)
TINY_TEXT_ENCODERS = {"CLIPLoader": "CoSTinyTextEncode", "LTXAVTextEncoderLoader": "CoSTinyLTXTextEncode"}


def tiny_rewrite(prompt: dict) -> list[str]:
    """Swap the real weights for the tiny stand-ins, in place (see the module docstring)."""
    from tools.tiny import TINY_FILES

    notes = []
    for kind, (field, _folder) in LOADERS.items():
        for node_id in find_nodes(prompt, kind):
            name = prompt[node_id]["inputs"].get(field)
            if name in TINY_FILES:
                prompt[node_id]["inputs"][field] = TINY_FILES[name]
                notes.append(f"node {node_id} {kind}: {name} → {TINY_FILES[name]}")
    encoders = set(find_nodes(prompt, "CLIPLoader")) | set(find_nodes(prompt, "LTXAVTextEncoderLoader"))
    for node_id in find_nodes(prompt, "CLIPTextEncode"):
        text = prompt[node_id]["inputs"].get("text", "")
        if isinstance(text, list):
            raise WorkflowError(f"--tiny: node {node_id} CLIPTextEncode takes its text from another node")
        clip = prompt[node_id]["inputs"].get("clip")
        source = prompt.get(clip[0], {}).get("class_type") if isinstance(clip, list) else None
        stand_in = TINY_TEXT_ENCODERS.get(source, "CoSTinyTextEncode")
        title = prompt[node_id].get("_meta", {}).get("title", "text")
        prompt[node_id] = {"class_type": stand_in, "inputs": {"text": text},
                           "_meta": {"title": f"{title} (tiny stand-in)"}}
        notes.append(f"node {node_id} CLIPTextEncode → {stand_in} (test stand-in)")
    for node_id in sorted(encoders, key=int):
        kind = prompt[node_id]["class_type"]
        users = [k for k, v in prompt.items()
                 if any(isinstance(x, list) and x[:1] == [node_id] for x in v["inputs"].values())]
        if users:
            raise WorkflowError(f"--tiny: node {node_id} {kind} still feeds nodes {users}; only CLIPTextEncode "
                                "can be replaced by the tiny stand-in")
        del prompt[node_id]
        notes.append(f"node {node_id} {kind} dropped (its text encoder cannot be tiny)")
    return notes


def is_toy_workflow(workflow: dict) -> bool:
    """Whether a UI-format workflow runs the CoS-Toy model (a CoS Toy Model node that is not muted/bypassed)."""
    return any(n.get("type") == TOY_MODEL_NODE and n.get("mode", 0) not in (2, 4) for n in workflow.get("nodes", []))


def check_toy_args(object_info: dict, kind: str | None, seed: int | None, rooms: int | None) -> None:
    """Check ``--task``/``--task-seed``/``--maze-rooms`` against the server's CoS Toy Task.

    Raises:
        WorkflowError: a kind the server's CoS Toy Task does not offer, or a seed / room count out of range.
    """
    spec = (((object_info.get("CoSToyTask") or {}).get("input") or {}).get("required") or {}).get("kind")
    kinds = spec[0] if spec and isinstance(spec[0], list) else (spec[1].get("options", []) if spec else [])
    if kind is not None and kinds and kind not in kinds:
        raise WorkflowError(f"--task: '{kind}' is not one of {', '.join(kinds)}")
    if seed is not None and not 0 <= seed <= 999_999:
        raise WorkflowError(f"--task-seed: {seed} is outside 0..999999 (seeds of 1000000 and more are the toy's "
                            "training set)")
    if rooms is not None and not 2 <= rooms <= 5:
        raise WorkflowError(f"--maze-rooms: {rooms} is outside 2..5")


def apply_toy_settings(prompt: dict, object_info: dict, kind: str | None, seed: int | None,
                       rooms: int | None) -> list[str]:
    """Set the toy task on every CoS Toy Task and CoS Toy Score (they must agree); returns notes.

    Raises:
        WorkflowError: as :func:`check_toy_args`.
    """
    check_toy_args(object_info, kind, seed, rooms)
    notes = []
    for cls in ("CoSToyTask", "CoSToyScore"):
        for node_id in find_nodes(prompt, cls):
            inputs = prompt[node_id]["inputs"]
            for name, value in (("kind", kind), ("seed", seed), ("maze_rooms", rooms)):
                if value is not None and not isinstance(inputs.get(name), list):
                    inputs[name] = value
                    notes.append(f"node {node_id} {cls}: {name} = {value}")
    return notes


def toy_scores(history: dict, prompt: dict) -> list[dict]:
    """What every CoS Toy Score node reported (its ``cos_toy_score`` UI entry), with its node id."""
    found = []
    for node_id, outputs in (history.get("outputs") or {}).items():
        if prompt.get(node_id, {}).get("class_type") != "CoSToyScore":
            continue
        for entry in (outputs or {}).get("cos_toy_score") or []:
            if isinstance(entry, dict):
                found.append({"node": node_id, **entry})
    return sorted(found, key=lambda e: (len(e["node"]), e["node"]))


def missing_weights(client: ComfyClient, prompt: dict, workflow: dict) -> list[dict]:
    """Files the prompt's loaders name that the server does not have."""
    ui_nodes = {str(n["id"]): n for n in workflow.get("nodes", [])}
    listed: dict[str, list[str]] = {}
    missing = []
    for kind, (field, folder) in LOADERS.items():
        for node_id in find_nodes(prompt, kind):
            name = prompt[node_id]["inputs"].get(field)
            if not isinstance(name, str):
                continue
            if folder not in listed:
                listed[folder] = client.models(folder)
            if name in listed[folder]:
                continue
            source = next((m for m in (ui_nodes.get(node_id, {}).get("properties") or {}).get("models", [])
                           if m.get("name") == name), {})
            url = source.get("url", "")
            match = re.match(r"https://huggingface\.co/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", url)
            missing.append({"node": node_id, "class_type": kind, "file": name,
                            "folder": source.get("directory") or folder, "url": url,
                            "hf_repo": match.group(1) if match else None, "hf_path": match.group(2) if match else None})
    return missing


def format_missing(missing: list[dict]) -> str:
    lines = ["The workflow needs model files this ComfyUI does not have:"]
    for m in missing:
        lines.append(f"  - {m['file']}  (node {m['node']} {m['class_type']})")
        lines.append(f"      put it in:  ComfyUI/models/{m['folder']}/")
        if m["hf_repo"]:
            lines.append(f"      download:   Hugging Face {m['hf_repo']}, file {m['hf_path']}")
            lines.append(f"                  {m['url']}")
    lines.append("Or try the machinery first without any download: add --tiny (tiny random-weight stand-ins).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------

def new_out_dir(out: Path) -> Path:
    """``out`` if it is missing or empty, else a new ``out/run_NNN`` (created atomically)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        out.mkdir(parents=True, exist_ok=True)
        return out
    if not out.is_dir():
        raise FileExistsError(f"--out: {out} exists and is not a folder")
    for number in range(1, 10000):
        candidate = out / f"run_{number:03d}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"--out: no free run_NNN folder in {out}")


def output_files(history: dict) -> list[dict]:
    """Every file a finished prompt produced: ``{node, filename, subfolder, type}``."""
    found = []
    for node_id, outputs in (history.get("outputs") or {}).items():
        for key, values in (outputs or {}).items():
            for value in values if isinstance(values, (list, tuple)) else []:
                if isinstance(value, dict) and "filename" in value:
                    found.append({"node": node_id, "filename": value["filename"],
                                  "subfolder": value.get("subfolder", ""), "type": value.get("type", "output")})
    return found


def file_kind(entry: dict, prompt: dict | None = None) -> str:
    """How the summary names a file, from its node (a Save Video titled '... reference ...' is not the result)
    and, for a Save Image, the node that feeds it (``prompt``: an information-flow heatmap is no x̂0 grid)."""
    kind = entry.get("class_type", "?")
    if kind == "SaveVideo" and "reference" in str(entry.get("_meta", {}).get("title", "")).lower():
        return "reference video"
    source = entry.get("inputs", {}).get("images")
    if kind == "SaveImage" and prompt and isinstance(source, list) and source:
        return PICTURE_SOURCES.get(prompt.get(source[0], {}).get("class_type"), KINDS[kind])
    return KINDS.get(kind, "other")


def download_outputs(client: ComfyClient, history: dict, prompt: dict, out_dir: Path) -> list[dict]:
    """Fetch output files through /view into ``out_dir`` (subfolders kept, nothing overwritten)."""
    files = []
    for item in output_files(history):
        if item["type"] != "output":
            continue  # temp previews (e.g. CoS Decode Steps' own preview) duplicate saved files
        parts = [p for p in item["subfolder"].replace("\\", "/").split("/") if p not in ("", ".", "..")]
        target = out_dir.joinpath(*parts, os.path.basename(item["filename"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        data = client.view(item["filename"], item["subfolder"], item["type"])
        with open(target, "xb") as fh:  # never overwrite
            fh.write(data)
        entry = prompt.get(item["node"], {})
        files.append({"path": target.relative_to(out_dir).as_posix(), "bytes": len(data), "node": item["node"],
                      "class_type": entry.get("class_type", "?"), "kind": file_kind(entry, prompt)})
    return files


def print_summary(out_dir: Path, files: list[dict], tiny: bool | str | None, seconds: float, stream=None,
                  scores: list[dict] | None = None) -> None:
    stream = stream or sys.stdout
    print(f"\nChain-of-Steps run finished in {seconds:.1f} s; outputs in {out_dir}", file=stream)
    if tiny == "toy":
        print(f"NOTE: {TOY_LABEL}.", file=stream)
    elif tiny:
        print(f"NOTE: {TINY_LABEL}.", file=stream)
    for score in scores or []:
        verdict = {1.0: "SOLVED", 0.0: "not solved"}.get(score.get("success"), f"{score.get('success', 0):.0%} solved")
        print(f"  CoS-Toy score (node {score['node']}): {score.get('kind')} seed {score.get('seed')}: {verdict} "
              f"({score.get('solved')}/{score.get('videos')} videos)", file=stream)
        if score.get("warning"):
            print(f"  WARNING: {score['warning']}", file=stream)
    for kind in ("x0 grid", *PICTURE_SOURCES.values(), "step videos", "final video", "reference video", "trace",
                 "other"):
        chosen = [f for f in files if f["kind"] == kind]
        if not chosen:
            continue
        if kind == "step videos":
            folders = sorted({str(Path(f["path"]).parent) for f in chosen})
            print(f"  {kind}: {len(chosen)} files in {', '.join(folders)}", file=stream)
            continue
        for f in chosen:
            print(f"  {kind}: {f['path']}", file=stream)
    print(f"  summary: {out_dir / 'summary.json'}", file=stream)


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def _fail(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


def caller_paths(args: argparse.Namespace, caller: str | None) -> None:
    """Relative ``--out``, ``--image`` and ``--workflow`` made relative to the folder ``tools/main.sh`` was started
    in (``COS_RUN_CWD``; the script itself runs from the repository root). A relative ``--workflow`` that is not
    there but is in the repository (``workflows/...``) is kept as it is."""
    if not caller:
        return
    base = Path(caller)
    for name in ("out", "image", "workflow"):
        value = getattr(args, name)
        if value is None or Path(value).is_absolute():
            continue
        candidate = base / value
        if name != "workflow" or candidate.exists():
            setattr(args, name, candidate)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_on_sigterm()  # killed: the finally below still stops the ComfyUI started here
    caller_paths(args, os.environ.get("COS_RUN_CWD"))
    started = time.monotonic()
    comfy_path = os.environ.get("COMFYUI_PATH")
    if not args.server and not comfy_path:
        return _fail("ComfyUI is needed: set COMFYUI_PATH to a ComfyUI checkout (it is started here with the pack "
                     "loaded from this repository), or pass --server http://HOST:PORT of a running ComfyUI that has "
                     "the pack installed.", 2)
    workflow_path = args.workflow or (TOY_WORKFLOW if args.tiny == "toy" else DEFAULT_WORKFLOW)
    try:
        workflow = json.loads(Path(workflow_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return _fail(f"--workflow: cannot read {workflow_path}: {err}", 2)
    toy = is_toy_workflow(workflow)
    toy_variant = args.tiny == "toy" and not toy  # a Wan2.2 I2V workflow run on CoS-Toy (tools/toy_recipe.py)
    toy_args = {"--task": args.task, "--task-seed": args.task_seed, "--maze-rooms": args.maze_rooms}
    blockers = toy_blockers(workflow) if toy_variant else []
    if blockers:
        return _fail(f"--tiny (toy): {workflow_path} cannot run on CoS-Toy:\n"
                     + "\n".join(f"  - {b}" for b in blockers)
                     + "\nFor tiny random-weight stand-ins of its models, use --tiny random.", 2)
    if toy or toy_variant:
        unused = {"--image": args.image, "--prompt": args.prompt, "--frames": args.frames, "--size": args.size,
                  "--tiny random": args.tiny if args.tiny == "random" else None}
        given = [name for name, value in unused.items() if value is not None]
        if given:
            return _fail(f"{', '.join(given)}: not for the CoS-Toy workflow (its start frame comes from CoS Toy Task, "
                         "its text conditioning is fixed, the toy model works at 96x96, 17 frames, and it needs no "
                         "stand-ins); choose the puzzle with --task, --task-seed, --maze-rooms", 2)
    elif any(v is not None for v in toy_args.values()):
        return _fail(f"{', '.join(k for k, v in toy_args.items() if v is not None)}: only for CoS-Toy workflows "
                     "(--tiny)", 2)
    image = None if toy or toy_variant else (args.image or default_image())
    if image is not None and not Path(image).is_file():
        return _fail(f"--image: {image} does not exist", 2)
    steps, frames, size = args.steps, args.frames, args.size
    mode = "toy" if toy or toy_variant else args.tiny  # None (the workflow's own model files), "toy" or "random"
    if mode == "random":
        steps = steps or TINY_DEFAULTS["steps"]
        frames = frames or TINY_DEFAULTS["frames"]
        size = size or TINY_DEFAULTS["size"]
        print(f"[cos] --tiny random: {TINY_LABEL}")
    elif mode == "toy":
        print(f"[cos] CoS-Toy: {TOY_LABEL}")

    server = None
    client = None
    timings = {}
    try:
        if args.server:
            client = ComfyClient(args.server)
        else:
            python = comfy_python(comfy_path)
            tiny_models = None
            if mode == "random":
                t0 = time.monotonic()
                tiny_models = write_tiny_models(python, comfy_path, Path(args.cache) / "tiny_models")
                timings["tiny_models_s"] = round(time.monotonic() - t0, 2)
            server = ComfyServer(comfy_path, python=python, cpu=args.cpu, tiny_models=tiny_models)
            server.start()
            timings["server_start_s"] = round(server.startup_seconds, 2)
            client = ComfyClient(server.url)

        object_info = client.object_info()
        missing_nodes = [n for n in ("CoSSampler", "CoSSaveTrace") if n not in object_info]
        if missing_nodes:
            return _fail(f"the server at {client.url} lacks the pack's nodes ({', '.join(missing_nodes)}): install "
                         "the Chain-of-Steps pack there, or use COMFYUI_PATH instead of --server", 2)
        prompt = ui_to_api(workflow, object_info)
        notes = []
        if mode == "random":
            if "CoSTinyTextEncode" not in object_info:
                return _fail("--tiny random with --server needs a server started with the tiny stand-ins "
                             "(tools.comfy_server.ComfyServer(tiny_models=...)); use COMFYUI_PATH instead", 2)
            notes += tiny_rewrite(prompt)
        if toy_variant:
            check_toy_args(object_info, args.task, args.task_seed, args.maze_rooms)
            notes += apply_toy_variant(prompt, workflow, object_info, args.task, args.task_seed, args.maze_rooms)
        missing = missing_weights(client, prompt, workflow)
        if missing:
            if mode == "random":
                return _fail("--tiny random: the server lacks the tiny model files:\n"
                             + "\n".join(f"  - {m['file']} in models/{m['folder']}" for m in missing), 2)
            return _fail(format_missing(missing), 2)

        if toy:
            notes += apply_toy_settings(prompt, object_info, args.task, args.task_seed, args.maze_rooms)
        image_name = client.upload_image(image) if image is not None and find_nodes(prompt, "LoadImage") else None
        notes += apply_settings(prompt, image_name, args.prompt, steps, frames, size, args.seed)

        progress = Progress(enabled=not args.no_progress)
        t0 = time.monotonic()
        try:
            history = client.run(prompt, progress=progress, timeout=args.timeout)
        finally:
            progress.close()
        timings["run_s"] = round(time.monotonic() - t0, 2)
        prompt_id = client.last_prompt_id

        t0 = time.monotonic()
        out_dir = new_out_dir(Path(args.out))
        files = download_outputs(client, history, prompt, out_dir)
        timings["download_s"] = round(time.monotonic() - t0, 2)
        timings["total_s"] = round(time.monotonic() - started, 2)
        stats = client.system_stats().get("system", {})
        scores = toy_scores(history, prompt)
        label = {"toy": TOY_LABEL, "random": TINY_LABEL}.get(mode, "made with the workflow's model files")
        summary = {
            "prompt_id": prompt_id,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "server": "started from COMFYUI_PATH" if server else args.server,
            "comfyui_version": stats.get("comfyui_version"),
            "timings": timings,
            "tiny": mode in ("toy", "random"),
            "mode": {"toy": "cos-toy", "random": "tiny random-weight stand-ins"}.get(mode, "workflow model files"),
            "label": label,
            "settings": {"workflow": str(workflow_path), "image": str(image) if image is not None else None,
                         "prompt": args.prompt, "steps": steps, "frames": frames,
                         "size": list(size) if size else None, "seed": args.seed, "task": args.task,
                         "task_seed": args.task_seed, "maze_rooms": args.maze_rooms},
            "changes": notes,
            "files": files,
        }
        if scores:
            summary["toy_score"] = scores[0] if len(scores) == 1 else scores
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
        print_summary(out_dir, files, mode, timings["total_s"], scores=scores)
        return 0
    except PromptRejected as err:
        return _fail(str(err), 1)
    except PromptFailed as err:
        tb = "".join(err.data.get("traceback") or [])
        return _fail(f"ComfyUI: {err}" + (f"\n{tb.rstrip()}" if tb and not err.interrupted else ""), 1)
    except (WorkflowError, ServerError) as err:
        return _fail(f"{type(err).__name__}: {err}", 2)
    except KeyboardInterrupt:
        if client is not None and getattr(client, "last_prompt_id", None):
            try:
                client.delete_queued(client.last_prompt_id)
                client.interrupt(client.last_prompt_id)
            except OSError:
                pass
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
