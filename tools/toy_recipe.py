"""The CoS-Toy variant of a shipped Wan2.2 I2V workflow: the pack's *trained* toy model in place of the real one.

With random-weight stand-ins (:mod:`tools.tiny_recipe`) a tiny run shows the layout but every picture is
noise. The toy variant runs the same graph on CoS-Toy (``TOY.md``: a 30-block Wan I2V model trained on
procedural puzzles, shipped with the pack), so on a CPU the x̂0 grids, energy maps, noise sweeps and
ensembles show a maze or a dot task being solved. ``tools/cos_run.py --tiny`` (the default ``toy``) uses it
for every Wan2.2 I2V workflow, and so do the Templates-browser thumbnails and the tier-2 tests.

It is the tiny recipe at the toy's own size (96×96, 17 frames, 10 steps, 30 blocks; step indices and step
specs rescaled from the workflow's 20 steps, the paper's layer windows such as ``20-29`` kept) plus a graph
edit of the API prompt (:func:`toy_rewrite`):

- every UNETLoader of a Wan2.2 I2V expert → **CoS Toy Model** (both experts are the one toy model; the
  workflow's ModelSamplingSD3 after it still sets the shift);
- VAELoader → **CoS Toy VAE** (the toy's weight-free latent mapping);
- the k-th LoadImage → **CoS Toy Task** (its start frame; seed + k, so a layer swap gets two puzzles);
- every CLIPTextEncode → the task's conditioning (the toy has no text encoder: its context is fixed), and
  CLIPLoader is dropped;
- CoS Decode Steps / Save Step Videos in ``latent2rgb (fast)`` mode → ``vae`` mode on the toy VAE: Wan's
  latent→RGB factors do not fit the toy's latent mapping, and the toy VAE decodes exactly at no cost;
- with one task, a **CoS Toy Score** on every VAEDecode, so the run says whether each video solved it
  (cos_run puts the scores into ``summary.json``);
- the samplers' ``cfg`` → 1: cond and uncond are the same fixed context, so CFG would only double the cost.
"""
from __future__ import annotations

from typing import Any

from tools.tiny_recipe import DECODERS, MODEL_FILE, SAMPLING, apply_to_prompt, tiny_overrides, widget_values
from tools.workflow_api import BYPASSED, MUTED, WorkflowError, find_nodes

TOY_SIZE = (96, 96)
TOY_FRAMES = 17
TOY_STEPS = 10
TOY_LAYERS = 30
TOY_SHIFT = 5.0
DEFAULT_TASK = ("maze", 0, 3)  # kind, seed, maze rooms
# the files a Wan2.2 I2V workflow may load for the toy to stand in for them (loader → accepted file names)
WAN_I2V_EXPERTS = ("wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                   "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors")
STAND_INS = {"UNETLoader": WAN_I2V_EXPERTS, "VAELoader": ("wan_2.1_vae.safetensors",),
             "CLIPLoader": ("umt5_xxl_fp8_e4m3fn_scaled.safetensors",)}
TOY_MODEL, TOY_VAE, TOY_TASK, TOY_SCORE = "CoSToyModel", "CoSToyVAE", "CoSToyTask", "CoSToyScore"


def toy_blockers(workflow: dict) -> list[str]:
    """Why a UI-format workflow cannot run on CoS-Toy (``node id type: reason``); [] when it can.

    The toy stands in for the Wan2.2 I2V experts, the Wan VAE and the umt5 text encoder of an I2V graph with
    at least one LoadImage; any other model file (LTX, Wan 5B, a LoRA) or a text-to-video graph blocks it."""
    out, images = [], 0
    for node in workflow.get("nodes", []):
        if node.get("mode", 0) in (MUTED, BYPASSED):
            continue
        kind = node.get("type")
        images += kind == "LoadImage"
        values = node.get("widgets_values") or []
        files = [v for v in (values.values() if isinstance(values, dict) else values)
                 if isinstance(v, str) and MODEL_FILE.search(v)]
        for name in files:
            if name not in STAND_INS.get(kind, ()):
                out.append(f"node {node['id']} {kind}: {name} (CoS-Toy stands in for the Wan2.2 I2V experts, "
                           "the Wan 2.1 VAE and umt5 only)")
    if not images and not out:
        out.append("no LoadImage: CoS-Toy is an image-to-video model (its start frame is the puzzle)")
    return out


def toy_overrides(workflow: dict, object_info: dict, fast: bool = False) -> dict[str, dict[str, Any]]:
    """``{node id: {widget: value}}`` for the toy variant: the tiny recipe at the toy's size, and cfg 1."""
    out = tiny_overrides(workflow, object_info, steps=TOY_STEPS, frames=TOY_FRAMES, size=TOY_SIZE,
                         layers=TOY_LAYERS, fast=fast, tiny_files={})
    for node in workflow.get("nodes", []):
        if node.get("type") in SAMPLING and node.get("mode", 0) not in (MUTED, BYPASSED):
            if widget_values(node, object_info).get("cfg") not in (None, 1, 1.0):
                out.setdefault(str(node["id"]), {})["cfg"] = 1.0
    return out


def _users(prompt: dict, node_id: str, slot: int | None = None) -> list[tuple[str, str]]:
    """(node id, input name) of every input linked to ``node_id`` (output ``slot``, or any)."""
    return [(k, name) for k, v in prompt.items() for name, x in v["inputs"].items()
            if isinstance(x, list) and len(x) == 2 and x[0] == node_id and (slot is None or x[1] == slot)]


def _new_id(prompt: dict) -> str:
    return str(max((int(k) for k in prompt if str(k).isdigit()), default=0) + 1)


def toy_rewrite(prompt: dict, kind: str | None = None, seed: int | None = None,
                rooms: int | None = None) -> list[str]:
    """Turn a Wan2.2 I2V API prompt into its CoS-Toy variant, in place (module docstring); returns notes.

    ``kind``/``seed``/``rooms`` choose the puzzle (default maze, seed 0, 3 rooms); the k-th LoadImage gets
    ``seed + k``.

    Raises:
        WorkflowError: no LoadImage, a LoadImage whose MASK is used, or a CLIPTextEncode/loader still feeding
            a node the toy cannot stand in for.
    """
    kind = kind or DEFAULT_TASK[0]
    seed = DEFAULT_TASK[1] if seed is None else int(seed)
    rooms = DEFAULT_TASK[2] if rooms is None else int(rooms)
    notes: list[str] = []
    images = find_nodes(prompt, "LoadImage")
    if not images:
        raise WorkflowError("--tiny toy: the workflow has no LoadImage; CoS-Toy is an image-to-video model")
    for k, node_id in enumerate(images):
        if _users(prompt, node_id, 1):
            raise WorkflowError(f"--tiny toy: node {node_id} LoadImage's MASK is used; the toy task has no mask")
        prompt[node_id] = {"class_type": TOY_TASK, "inputs": {"kind": kind, "seed": seed + k, "maze_rooms": rooms},
                           "_meta": {"title": f"CoS Toy Task (stands in for LoadImage {node_id})"}}
        notes.append(f"node {node_id} LoadImage → {TOY_TASK} {kind} seed {seed + k}")
    for node_id in find_nodes(prompt, "UNETLoader"):
        name = prompt[node_id]["inputs"].get("unet_name")
        if name in WAN_I2V_EXPERTS:
            prompt[node_id] = {"class_type": TOY_MODEL, "inputs": {"shift": TOY_SHIFT},
                               "_meta": {"title": f"CoS Toy Model (stands in for {name})"}}
            notes.append(f"node {node_id} UNETLoader {name} → {TOY_MODEL}")
    vaes = find_nodes(prompt, "VAELoader")
    for node_id in vaes:
        prompt[node_id] = {"class_type": TOY_VAE, "inputs": {}, "_meta": {"title": "CoS Toy VAE"}}
        notes.append(f"node {node_id} VAELoader → {TOY_VAE}")
    for node_id in [k for cls in DECODERS for k in find_nodes(prompt, cls)] if vaes else []:
        inputs = prompt[node_id]["inputs"]
        if str(inputs.get("mode", "")).startswith("latent2rgb"):
            inputs["mode"], inputs["vae"] = "vae", [vaes[0], 0]
            notes.append(f"node {node_id} {prompt[node_id]['class_type']}: mode = 'vae' on the toy VAE")
    conditioning = [images[0], 2]
    for node_id in find_nodes(prompt, "CLIPTextEncode"):
        for user, name in _users(prompt, node_id, 0):
            prompt[user]["inputs"][name] = list(conditioning)
        del prompt[node_id]
        notes.append(f"node {node_id} CLIPTextEncode → the toy task's fixed conditioning")
    for node_id in find_nodes(prompt, "CLIPLoader"):
        if _users(prompt, node_id):
            raise WorkflowError(f"--tiny toy: node {node_id} CLIPLoader still feeds {_users(prompt, node_id)}")
        del prompt[node_id]
        notes.append(f"node {node_id} CLIPLoader dropped (the toy has no text encoder)")
    if len(images) == 1:
        for node_id in find_nodes(prompt, "VAEDecode"):
            score = _new_id(prompt)
            prompt[score] = {"class_type": TOY_SCORE, "_meta": {"title": f"CoS Toy Score of VAEDecode {node_id}"},
                             "inputs": {"images": [node_id, 0], "kind": kind, "seed": seed, "maze_rooms": rooms,
                                        "frames": TOY_FRAMES}}
            notes.append(f"node {score} {TOY_SCORE} added on VAEDecode {node_id}")
    return notes


def apply_toy_variant(prompt: dict, workflow: dict, object_info: dict, kind: str | None = None,
                      seed: int | None = None, rooms: int | None = None, fast: bool = False) -> list[str]:
    """The whole toy variant on ``prompt`` (the API form of the UI ``workflow``), in place: the widget overrides
    of :func:`toy_overrides`, then :func:`toy_rewrite`; returns the notes of both.

    Raises:
        WorkflowError: as :func:`toy_rewrite`.
    """
    notes = apply_to_prompt(prompt, toy_overrides(workflow, object_info, fast=fast))
    return notes + toy_rewrite(prompt, kind, seed, rooms)


__all__ = ["apply_toy_variant", "toy_blockers", "toy_overrides", "toy_rewrite", "TOY_SIZE", "TOY_FRAMES", "TOY_STEPS",
           "TOY_LAYERS"]
