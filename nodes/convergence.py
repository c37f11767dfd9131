"""CoS Convergence: when does the video's content settle along the steps?"""
from __future__ import annotations

import json

import torch
from comfy_api.latest import io, ui

from ..cos_core.convergence import DEFAULT_THRESHOLD, convergence_figure, distances, settle_step
from ..cos_core.render import pil_to_tensor
from ..cos_core.steps import check_index
from .recorder import as_trace
from .types import CosTrace


def _json_numbers(value):
    """Nested lists of floats with NaN → None, rounded for JSON."""
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    return None if value != value else round(float(value), 6)


class CoSConvergence(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSConvergence",
            display_name="CoS Convergence",
            category="Chain-of-Steps/visualise",
            description=("From the x̂0 of every step: the distance to the final x̂0 and the change per step, overall "
                         "and per frame, with the step where the content settles (the first step after which the "
                         "distance stays under the threshold). Tells within a few steps whether a run is worth "
                         "finishing."),
            inputs=[
                CosTrace.Input("trace", tooltip="A trace with x̂0 of consecutive steps up to the last one."),
                io.Float.Input("threshold", default=DEFAULT_THRESHOLD, min=0.001, max=1.0, step=0.01,
                               tooltip="Settled = distance to the final x̂0 stays ≤ this (relative L2)."),
                io.Int.Input("grid", default=2, min=1, max=16,
                             tooltip="Regional distances on a grid × grid split of the frame."),
                io.Int.Input("batch_index", default=0, min=0, max=4095, advanced=True,
                             tooltip="Which batch item to analyse."),
                io.Latent.Input("after", optional=True,
                                tooltip="Connect the sampler's LATENT when the trace comes from CoS Capture x̂0."),
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE"),
                io.Int.Output(display_name="settle_step", tooltip="The estimated settle step."),
                io.String.Output(display_name="numbers", tooltip="All distances as JSON."),
            ],
        )

    @classmethod
    def execute(cls, trace, threshold, grid, batch_index=0, after=None) -> io.NodeOutput:
        trace = as_trace(trace)
        steps = [s for s in trace.steps if "x0_hat" in trace[s].tensors]
        total = int(trace.meta.get("total_steps") or 0)
        if len(steps) < 2 or steps != list(range(steps[0], steps[-1] + 1)):
            raise ValueError(f"trace: needs x̂0 of consecutive steps (capture_steps 'all'); it has {steps}")
        if total and steps[-1] != total - 1:
            raise ValueError(f"trace: the last step {total - 1} was not captured, so there is no final x̂0")
        check_index(batch_index, min(trace[s].tensors["x0_hat"].shape[0] for s in steps), "batch_index")
        x0 = torch.stack([trace[s].tensors["x0_hat"][batch_index] for s in steps])
        dist = distances(x0, grid)
        settle = steps[0] + settle_step(dist["to_final"], threshold)
        starts = trace.meta.get("stage_starts") or []
        sigmas = [trace[s].sigma for s in steps]
        title = f"Convergence of x̂0: settles at step {settle} of {steps[-1] + 1} (threshold {threshold:g})"
        image = pil_to_tensor(convergence_figure(steps, dist, settle, threshold, title, sigmas,
                                                 starts[1] if len(starts) > 1 else None))
        numbers = {"steps": steps, "sigmas": sigmas, "threshold": threshold, "settle_step": settle,
                   "rule": "first step t with distance_to_final(t') <= threshold for all t' >= t",
                   **{k: _json_numbers(arr.tolist()) for k, arr in dist.items()}}
        return io.NodeOutput(image, settle, json.dumps(numbers), ui=ui.PreviewImage(image, cls=cls))
