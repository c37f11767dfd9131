"""CoS Energy Maps: pictures of what CoS Layer Probe recorded (paper Sec. 5.1, Fig. 6a, App. D)."""
from __future__ import annotations

from comfy_api.latest import io, ui

from ..cos_core import energy_plots
from ..cos_core.energy import frame_profile
from ..cos_core.latent_rgb import pick_frames
from ..cos_core.render import pil_to_tensor
from ..cos_core.steps import SpecError, check_index, parse_spec, spec_ranges
from ..cos_core.trace import Trace
from .recorder import as_trace
from .types import CosTrace

VIEWS = ["energy grid (layers × frames)", "PCA grid (layers × frames)", "temporal energy curves",
         "mean energy across steps"]
NORMS = ["global", "per layer"]


def half_not_run(trace: Trace, halves) -> str | None:
    """Why a probe trace lacks the CFG ``halves`` (e.g. cfg = 1 runs the cond half only), or None."""
    ran = trace.meta.get("cfg_halves_run")
    if not ran or set(halves) & set(ran):
        return None
    return (f"cfg_half: {'/'.join(halves)} was asked for, but the sampler ran only the {'/'.join(ran)} half "
            "(with cfg = 1 ComfyUI skips the negative prompt); set cfg_half to 'cond' in CoS Layer Probe and "
            "here, or sample with cfg above 1")


def probed_layers(trace: Trace, kind: str, half: str, spec: str) -> list[int]:
    """Layers picked by ``spec`` among those the trace holds ``kind`` maps of, for CFG ``half``."""
    layers = [int(layer) for layer in trace.meta.get("layers", [])]
    have = [layer for layer in layers if any(f"{kind}/L{layer:02d}/{half}" in r.tensors for r in trace.records())]
    if not have:
        reason = half_not_run(trace, [half])
        if reason:
            raise ValueError(reason)
        raise ValueError(f"trace: no {kind} maps for the {half} half; turn '{kind}' on in CoS Layer Probe "
                         f"(and check its cfg_half)")
    wanted = set(parse_spec(spec, max(layers) + 1, name="layers"))
    chosen = [layer for layer in have if layer in wanted]
    if not chosen:
        raise SpecError(f"layers: none of '{spec}' was probed; the trace has layers {have}")
    return chosen


def frame_labels(trace: Trace, frame_ids: list[int]) -> list[str]:
    stride = int(trace.meta.get("temporal_stride") or 0)
    if stride > 1:
        return [f"f{f} · px {f * stride}" for f in frame_ids]
    return [f"f{f}" for f in frame_ids]


def step_title(trace: Trace, step: int, what: str) -> str:
    record = trace[step]
    expert = {"high": ", high-noise expert", "low": ", low-noise expert"}.get(record.expert, "")
    return f"{what} at step {step} (σ={record.sigma:.3f}{expert})"


class CoSEnergyMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSEnergyMaps",
            display_name="CoS Energy Maps",
            category="Chain-of-Steps/visualise",
            description=("Draws a CoS Layer Probe trace: token-energy heatmaps (layers × frames) with a colour bar, "
                         "PCA colour maps, per-frame energy curves per layer, or each layer's mean energy across "
                         "the denoising steps."),
            inputs=[
                CosTrace.Input("trace", tooltip="From CoS Layer Probe."),
                io.Combo.Input("view", options=VIEWS, default=VIEWS[0], tooltip="What to draw."),
                io.Int.Input("step", default=0, min=-10000, max=10000,
                             tooltip="The probed step for the grids and temporal curves (negative: from the end)."),
                io.String.Input("layers", default="all", tooltip="Which probed layers to show: 'all', '20-29'."),
                io.Combo.Input("normalise", options=NORMS, default=NORMS[0],
                               tooltip="global: one scale for every layer, so layers compare; per layer: each row "
                               "(or curve) scaled to itself, so patterns inside a layer show."),
                io.Int.Input("frames", default=0, min=0, max=1024,
                             tooltip="Grid columns: this many evenly spaced latent frames (0: all)."),
                io.Combo.Input("cfg_half", options=["cond", "uncond"], default="cond",
                               tooltip="Which CFG half to draw (the probe must have recorded it)."),
                io.Int.Input("batch_index", default=0, min=0, max=4095, advanced=True,
                             tooltip="Which batch item to draw."),
                io.Latent.Input("after", optional=True,
                                tooltip="Connect the sampler's LATENT so this node runs after sampling."),
            ],
            outputs=[io.Image.Output(display_name="IMAGE")],
        )

    @classmethod
    def validate_inputs(cls, view=None, normalise=None, layers=None):
        if view is not None and view not in VIEWS:
            return f"view: '{view}' is not one of {VIEWS}"
        if normalise is not None and normalise not in NORMS:
            return f"normalise: '{normalise}' is not one of {NORMS}"
        try:
            if layers is not None:
                spec_ranges(layers, "layers")
        except SpecError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, trace, view, step, layers, normalise, frames, cfg_half, batch_index=0,
                after=None) -> io.NodeOutput:
        trace = as_trace(trace)
        if not len(trace):
            reason = half_not_run(trace, trace.meta.get("probe", {}).get("halves", ()))
            raise ValueError(reason or "trace: it holds no probed steps; check the probe's 'steps'")
        image, viewer = render_with_viewer(trace, view, step, layers, normalise, frames, cfg_half, batch_index)
        tensor = pil_to_tensor(image)
        preview = ui.PreviewImage(tensor, cls=cls).as_dict()
        if viewer is None:
            return io.NodeOutput(tensor, ui=preview)
        # grid views: the web extension's energy viewer shows the picture (hover, click to enlarge)
        viewer["image"] = dict(preview["images"][0])
        return io.NodeOutput(tensor, ui={"cos_energy": [viewer]})


def render(trace: Trace, view: str, step: int, layers: str, norm: str, frames: int, half: str, batch: int):
    return render_with_viewer(trace, view, step, layers, norm, frames, half, batch)[0]


def viewer_payload(trace: Trace, kind: str, picked: int, half: str, norm: str, layout, labels: list[str],
                   energy: dict) -> dict:
    """What the web extension's energy viewer needs: every cell's pixel box with its layer, frame and
    energy (mean, min, max over the cell's tokens, when the probe recorded energy at that step)."""
    record = trace[picked]
    cells = []
    for (layer, column), box in sorted(layout.cells.items()):
        cell = {"layer": layer, "column": column, "frame": labels[column], "box": [int(v) for v in box]}
        values = energy.get(layer)
        if values is not None:
            plane = values[column]
            cell |= {"mean": float(plane.mean()), "min": float(plane.min()), "max": float(plane.max())}
        cells.append(cell)
    return {"kind": kind, "size": list(layout.size), "step": picked, "sigma": float(record.sigma),
            "expert": record.expert, "half": half, "norm": norm, "unit": energy_plots.ENERGY_UNIT,
            "frame_labels": labels, "layers": sorted({c["layer"] for c in cells}), "cells": cells}


def render_with_viewer(trace: Trace, view: str, step: int, layers: str, norm: str, frames: int, half: str,
                       batch: int):
    """The picture, and for the grid views the energy viewer's payload (None for the curves)."""
    kind = "pca" if view == VIEWS[1] else "energy"
    chosen = probed_layers(trace, kind, half, layers)
    first = next(r for r in trace.records() if f"{kind}/L{chosen[0]:02d}/{half}" in r.tensors)
    check_index(batch, first.tensors[f"{kind}/L{chosen[0]:02d}/{half}"].shape[0], "batch_index")
    if view == VIEWS[3]:
        steps = [s for s in trace.steps if f"energy/L{chosen[0]:02d}/{half}" in trace[s].tensors]
        means = {layer: [float(trace[s].tensors[f"energy/L{layer:02d}/{half}"][batch].mean()) for s in steps]
                 for layer in chosen}
        starts = trace.meta.get("stage_starts") or []
        switch = starts[1] if len(starts) > 1 else None
        return energy_plots.cross_step_curves(steps, means, f"Mean token energy per layer across steps ({half})",
                                              sigmas=[trace[s].sigma for s in steps], switch_step=switch,
                                              norm=norm), None
    (picked,) = parse_spec(str(step), int(trace.meta.get("total_steps") or max(trace.steps) + 1), name="step")
    if picked not in trace:
        raise ValueError(f"step: {picked} was not probed; the trace has steps {trace.steps}")
    record = trace[picked]
    maps = {layer: record.tensors[f"{kind}/L{layer:02d}/{half}"][batch].float() for layer in chosen}
    total_frames = next(iter(maps.values())).shape[0]
    frame_ids = pick_frames(total_frames, frames) if frames > 0 else list(range(total_frames))
    maps = {layer: m[frame_ids] for layer, m in maps.items()}
    labels = frame_labels(trace, frame_ids)
    if view in VIEWS[:2]:
        if view == VIEWS[0]:
            image, layout = energy_plots.energy_grid(
                maps, labels, step_title(trace, picked, f"Token energy ‖U‖₂ ({half})"), norm=norm, return_layout=True)
        else:
            image, layout = energy_plots.pca_grid(
                maps, labels, step_title(trace, picked, f"PCA of block outputs ({half})"), return_layout=True)
        energy = {layer: record.tensors[f"energy/L{layer:02d}/{half}"][batch].float()[frame_ids]
                  for layer in chosen if f"energy/L{layer:02d}/{half}" in record.tensors}
        return image, viewer_payload(trace, kind, picked, half, norm, layout, labels, energy)
    profiles = {layer: frame_profile(m) for layer, m in maps.items()}
    return energy_plots.temporal_curves(profiles, step_title(trace, picked, f"Mean energy per frame ({half})"),
                                        frame_labels=labels, norm=norm), None
