"""Tiny settings for any shipped workflow: what to change so it runs in seconds on tiny stand-ins.

A shipped workflow names the real model files and real sizes (640×640, 81 frames, 20 steps, the
paper's layer windows). For a tiny random-weight run (thumbnails, tier-3 browser tests) its widget
values are changed, node by node, by widget name, so the same overrides can be applied to an API
prompt (:func:`apply_to_prompt`) or to the graph in the browser (``tests/browser/drive.mjs`` sets
``node.widgets[name].value``):

- loader file names → the tiny stand-ins of :data:`tools.tiny.TINY_FILES`;
- ``width``/``height``/``length`` of latent makers (WanImageToVideo, EmptyLTXVLatentVideo, ...) → ``size`` and
  ``frames``; LTXVEmptyLatentAudio's ``frames_number`` → ``frames``;
- ``steps`` → ``steps``, when the workflow samples with a node of ours that has ``steps`` (an LTX workflow's
  ManualSigmas schedules are kept, and so are its step indices); step-valued widgets (``switch_step``,
  ``stop_after_step``, ``swap_step``, noise ``index`` in step mode, Energy Maps / Decode Steps ``step``) and
  step specs (``capture_steps``, ``steps`` lists, ``injections``) are rescaled from the workflow's step count;
- latent-frame indices and specs (noise at a frame) are rescaled to the tiny frame count;
- layer specs that name blocks the tiny model lacks → ``all`` (the ensemble window → ``1-2``);
- with ``fast=True``, CoS Decode Steps / Save Step Videos decode with latent2rgb instead of the VAE, and
  an information-flow sweep in step mode injects at three steps, a layer swap sweep covers two layers
  (:func:`fast_unlinks` also takes its VAE away).

The text encoders cannot be tiny (COMFYUI_NOTES §8.1): swapping CLIPTextEncode for the stand-in
``CoSTinyTextEncode`` (Wan) or ``CoSTinyLTXTextEncode`` (LTX-2.3) is a graph edit, done by
:func:`tools.cos_run.tiny_rewrite` on API prompts and by the browser driver in the page.
"""
from __future__ import annotations

import re
from typing import Any

from tools.workflow_api import FRONTEND_ONLY, MUTED, BYPASSED, _assign_widgets, widget_slots

TINY_SIZE = (64, 64)
TINY_FRAMES = 9
TINY_STEPS = 6
TINY_LAYERS = 4  # blocks of the tiny Wan stand-ins (tools/tiny.py)
SAMPLING = ("CoSSampler", "CoSInformationFlow", "CoSLayerSwapSweep")
STEP_SPECS = {"CoSSampler": "capture_steps", "CoSResume": "capture_steps", "CoSCaptureX0": "capture_steps",
              "CoSDecodeSteps": "steps", "CoSSaveStepVideos": "steps", "CoSLayerProbe": "steps",
              "CoSSeedEnsemble": "steps"}
STEP_INTS = {"CoSSampler": ("switch_step", "stop_after_step"), "CoSInformationFlow": ("switch_step",),
             "CoSLayerSwapSweep": ("switch_step", "swap_step"), "CoSEnergyMaps": ("step",), "CoSDecodeSteps": ("step",)}
LAYER_SPECS = {"CoSLayerProbe": "layers", "CoSEnergyMaps": "layers", "CoSLayerSwapSweep": "layers",
               "CoSSeedEnsemble": "layers"}
DECODERS = ("CoSDecodeSteps", "CoSSaveStepVideos")
TOY_MODEL_NODE = "CoSToyModel"  # CoS-Toy workflows run as shipped (tools.cos_run.is_toy_workflow)


def widget_values(node: dict, object_info: dict) -> dict[str, Any]:
    """A UI node's widget values by name (``{}`` for unknown or frontend-only nodes)."""
    info = object_info.get(node.get("type"))
    values = node.get("widgets_values")
    if info is None or node.get("type") in FRONTEND_ONLY:
        return {}
    if isinstance(values, dict):
        return dict(values)
    out: dict[str, Any] = {}
    _assign_widgets(list(values or []), widget_slots(info), "", out, 0)
    return {k: (v["__value__"] if isinstance(v, dict) and "__value__" in v else v) for k, v in out.items()}


def _scale(value: int, old: int, new: int) -> int:
    """An index into ``old`` items mapped onto ``new`` items (first stays first, last stays last)."""
    if old <= 1 or new <= 1:
        return 0
    return max(0, min(new - 1, round(value * (new - 1) / (old - 1))))


def scale_spec(spec: str, old: int, new: int) -> str:
    """A step/frame spec (``"all"``, ``"0,5,10"``, ``"0-9,15"``, negatives) moved from ``old`` to ``new`` items."""
    text = str(spec).strip()
    if text.lower() in ("all", ""):
        return text
    picked: list[str] = []
    for token in re.split(r"[,\s]+", text):
        if not token:
            continue
        match = re.fullmatch(r"(-?\d+)(?:-(-?\d+))?", token)
        if not match:
            return "all"
        a = int(match.group(1))
        b = int(match.group(2)) if match.group(2) is not None else None
        if a < 0 and b is None:
            token = str(max(a, -new))
        else:
            token = str(_scale(a, old, new)) if b is None else f"{_scale(a, old, new)}-{_scale(b, old, new)}"
        if token not in picked:
            picked.append(token)
    return ",".join(picked) or "all"


def _fits(spec: str, count: int) -> bool:
    """Whether every index of a layer spec is below ``count``."""
    numbers = [int(n) for n in re.findall(r"\d+", str(spec))]
    return all(n < count for n in numbers)


def tiny_overrides(workflow: dict, object_info: dict, steps: int = TINY_STEPS, frames: int = TINY_FRAMES,
                   size: tuple[int, int] = TINY_SIZE, layers: int = TINY_LAYERS, fast: bool = False,
                   tiny_files: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``{node id: {widget name: new value}}`` for a tiny run of a UI-format workflow (module docstring).

    A CoS-Toy workflow (a CoS Toy Model node) is already CPU-sized and its model works only at the size it was
    trained on (96×96, 17 frames): nothing is changed (``{}``)."""
    if tiny_files is None:
        from tools.tiny import TINY_FILES as tiny_files
    nodes = [n for n in workflow.get("nodes", []) if n.get("mode", 0) not in (MUTED, BYPASSED)]
    if any(n.get("type") == TOY_MODEL_NODE for n in nodes):
        return {}
    values = {str(n["id"]): widget_values(n, object_info) for n in nodes}
    kinds = {str(n["id"]): n.get("type") for n in nodes}
    sampled = [int(v["steps"]) for k, v in values.items() if kinds[k] in SAMPLING and isinstance(v.get("steps"), int)]
    # without a sampler of ours with 'steps' (LTX: SamplerCustomAdvanced on ManualSigmas) the schedules stay as
    # they are, and so do the step indices
    old_steps = max(sampled) if sampled else None
    lengths = [int(v["length"]) for v in values.values() if isinstance(v.get("length"), int)]
    old_frames = (max(lengths) - 1) // 4 + 1 if lengths else 21
    new_frames = (frames - 1) // 4 + 1
    out: dict[str, dict[str, Any]] = {}
    for node_id, widgets in values.items():
        kind, change = kinds[node_id], {}
        for name, value in widgets.items():
            if isinstance(value, str) and value in tiny_files:
                change[name] = tiny_files[value]
        if all(isinstance(widgets.get(k), int) for k in ("width", "height", "length")):
            change |= {"width": size[0], "height": size[1], "length": frames}
        if kind == "LTXVEmptyLatentAudio" and isinstance(widgets.get("frames_number"), int):
            change["frames_number"] = frames  # the audio as long as the tiny video
        if kind in SAMPLING and isinstance(widgets.get("steps"), int):
            change["steps"] = steps
        for name in STEP_INTS.get(kind, ()) if old_steps else ():
            value = widgets.get(name)
            if isinstance(value, int) and value >= 0:
                new = _scale(value, old_steps, steps)
                if name == "stop_after_step":
                    new = max(0, min(new, steps - 2))
                change[name] = new
        if old_steps and kind in STEP_SPECS and isinstance(widgets.get(STEP_SPECS[kind]), str):
            change[STEP_SPECS[kind]] = scale_spec(widgets[STEP_SPECS[kind]], old_steps, steps)
        if kind == "CoSInformationFlow" and isinstance(widgets.get("injections"), str):
            old, new = (old_steps or steps, steps) if widgets.get("mode") == "step" else (old_frames, new_frames)
            change["injections"] = scale_spec(widgets["injections"], old, new)
        if kind == "CoSNoiseInjection" and isinstance(widgets.get("index"), int):
            old, new = (old_steps or steps, steps) if widgets.get("mode") == "step" else (old_frames, new_frames)
            change["index"] = _scale(widgets["index"], old, new)
        if kind in LAYER_SPECS and isinstance(widgets.get(LAYER_SPECS[kind]), str):
            spec = widgets[LAYER_SPECS[kind]]
            if not _fits(spec, layers):
                change[LAYER_SPECS[kind]] = f"1-{min(2, layers - 1)}" if kind == "CoSSeedEnsemble" else "all"
        if fast and kind in DECODERS and widgets.get("mode") == "vae":
            change["mode"] = "latent2rgb (fast)"
        if fast and kind == "CoSInformationFlow" and widgets.get("mode") == "step":
            change["injections"] = f"0,{steps // 2},{steps - 1}"  # 1 + 3 trajectories
        if fast and kind == "CoSLayerSwapSweep":
            change["layers"] = f"1-{min(2, layers - 1)}"  # 2 + 2 trajectories
        change = {k: v for k, v in change.items() if widgets.get(k) != v}
        if change:
            out[node_id] = change
    return out


def fast_unlinks(workflow: dict) -> list[tuple[str, str]]:
    """Inputs to disconnect for a faster tiny run: ``(node id, input name)``. A layer swap sweep with a
    VAE decodes every trajectory's whole video; without one it shows latent2rgb frames."""
    out = []
    for node in workflow.get("nodes", []):
        if node.get("type") == "CoSLayerSwapSweep" and node.get("mode", 0) not in (MUTED, BYPASSED):
            out += [(str(node["id"]), i["name"]) for i in node.get("inputs") or []
                    if i.get("name") == "vae" and i.get("link") is not None]
    return out


MODEL_FILE = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$", re.IGNORECASE)
# dropped by the text-encoder swap (tools.cos_run.tiny_rewrite)
REMOVED_IN_TINY = ("CLIPLoader", "LTXAVTextEncoderLoader")


def tiny_blockers(workflow: dict, tiny_files: dict[str, str] | None = None) -> list[str]:
    """Model files a workflow loads that have no tiny stand-in (``node id type: file``); [] when it can run tiny."""
    if tiny_files is None:
        from tools.tiny import TINY_FILES as tiny_files
    missing = []
    for node in workflow.get("nodes", []):
        if node.get("mode", 0) in (MUTED, BYPASSED) or node.get("type") in REMOVED_IN_TINY:
            continue
        values = node.get("widgets_values") or []
        for value in values.values() if isinstance(values, dict) else values:
            if isinstance(value, str) and MODEL_FILE.search(value) and value not in tiny_files:
                missing.append(f"node {node['id']} {node['type']}: {value}")
    return missing


def apply_to_prompt(prompt: dict, overrides: dict[str, dict[str, Any]]) -> list[str]:
    """Apply :func:`tiny_overrides` to an API prompt (same node ids); returns notes of what changed."""
    notes = []
    for node_id, change in overrides.items():
        entry = prompt.get(node_id)
        if entry is None:
            continue
        for name, value in change.items():
            if name in entry["inputs"] and not isinstance(entry["inputs"][name], list):
                entry["inputs"][name] = value
                notes.append(f"node {node_id} {entry['class_type']}: {name} = {value!r}")
    return notes


__all__ = ["tiny_overrides", "tiny_blockers", "fast_unlinks", "apply_to_prompt", "scale_spec", "widget_values",
           "TINY_SIZE", "TINY_FRAMES", "TINY_STEPS", "TINY_LAYERS"]
