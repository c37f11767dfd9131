"""CoS Decode Steps: x̂0 trajectory → pictures (paper Fig. 2 grid, or one step's frames)."""
from __future__ import annotations

import comfy.latent_formats
import comfy.model_management
import torch
from comfy_api.latest import io, ui

from ..cos_core.latent_rgb import latent_to_rgb, pick_frames
from ..cos_core.render import pil_to_tensor, step_grid
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from ..cos_core.trace import Trace
from .adapters import LatentInfo
from .recorder import as_trace
from .types import CosTrace

MODES = ["latent2rgb (fast)", "vae"]
LAYOUTS = ["grid: steps × frames", "frames of one step"]


def latent_format_of(trace: Trace):
    """ComfyUI's latent format object named by the trace (``meta["latent_format"]``)."""
    name = trace.meta.get("latent_format", "Wan21")
    fmt_cls = getattr(comfy.latent_formats, name, None)
    if not isinstance(fmt_cls, type) or not issubclass(fmt_cls, comfy.latent_formats.LatentFormat):
        raise ValueError(f"trace: unknown latent format '{name}'")
    return fmt_cls()


class StepDecoder:
    """Decodes one step's x̂0 (latent space, (C, F, H, W)) to pixel frames, one step at a time.

    ``latent2rgb`` projects every latent frame (fast, 1/8 resolution, upscaled for display);
    ``vae`` runs the full VAE on one step at a time so memory stays bounded.
    """

    def __init__(self, trace: Trace, mode: str, vae=None):
        if mode not in MODES:
            raise ValueError(f"mode: '{mode}' is not one of {MODES}")
        if mode == "vae" and vae is None:
            raise ValueError("vae: mode 'vae' needs a VAE connected (or choose 'latent2rgb (fast)')")
        self.fmt = latent_format_of(trace)
        self.info = LatentInfo.from_format(self.fmt)
        if mode != "vae" and self.info.rgb_factors is None:
            raise ValueError(f"mode: latent format {self.info.name} has no latent→RGB factors; use 'vae'")
        self.mode, self.vae = mode, vae

    def pixel_index(self, latent_frame: int) -> int:
        """Pixel frame shown for a latent frame: the last one it covers (VAE mode)."""
        return self.info.pixel_frames(latent_frame)[1]

    def decode(self, x0: torch.Tensor, latent_frames: list[int] | None = None) -> torch.Tensor:
        """Frames (K, H, W, 3) float in [0, 1]: the chosen latent frames (all if None)."""
        comfy.model_management.throw_exception_if_processing_interrupted()
        frames_total = x0.shape[1]
        chosen = list(range(frames_total)) if latent_frames is None else latent_frames
        if self.mode == "vae":
            with torch.no_grad():
                images = self.vae.decode(x0.unsqueeze(0)).detach()
            images = images.reshape(-1, *images.shape[-3:])
            if latent_frames is None:
                return images.float().cpu()
            return images[[self.pixel_index(f) for f in chosen]].float().cpu()
        model_space = self.fmt.process_in(x0[:, chosen].unsqueeze(0))
        scale = min(self.info.spatial_stride, max(1, 256 // max(1, x0.shape[-1])))
        return latent_to_rgb(model_space, self.info.rgb_factors, self.info.rgb_bias, scale=scale)[0].cpu()


def step_label(trace: Trace, step: int) -> str:
    record = trace[step]
    expert = {"high": "  high", "low": "  low"}.get(record.expert, "")
    return f"step {step}  σ={record.sigma:.3f}{expert}"


def render_grid(trace: Trace, decoder: StepDecoder, steps: list[int], columns: int, batch_index: int):
    x0_first = trace[steps[0]].tensors["x0_hat"]
    frame_ids = pick_frames(x0_first.shape[2], columns) if columns > 0 else list(range(x0_first.shape[2]))
    rows = torch.stack([decoder.decode(trace[s].tensors["x0_hat"][batch_index], frame_ids) for s in steps])
    if decoder.mode == "vae":
        cols = [f"frame {decoder.pixel_index(f)}" for f in frame_ids]
    else:
        cols = [f"f{f} · px {decoder.info.pixel_frames(f)[1]}" for f in frame_ids]
    switch = trace.meta.get("switch_step")
    highlight = [i for i, s in enumerate(steps) if switch is not None and s == switch]
    title = f"x̂0 per step ({decoder.mode.split()[0]}), {trace.meta.get('total_steps', '?')} steps"
    if switch is not None:
        title += f", low-noise expert from step {switch}"
    return step_grid(rows, [step_label(trace, s) for s in steps], cols, highlight, title=title)


def select_steps(trace: Trace, spec: str) -> list[int]:
    """Recorded steps picked by ``spec`` (indices into the full schedule)."""
    total = int(trace.meta.get("total_steps") or (max(trace.steps) + 1 if len(trace) else 0))
    if not len(trace):
        raise ValueError("trace: it holds no steps; check capture_steps")
    wanted = parse_spec(spec, total, name="steps")
    chosen = [s for s in wanted if s in trace and "x0_hat" in trace[s].tensors]
    if not chosen:
        raise SpecError(f"steps: none of '{spec}' was captured; the trace has steps {trace.steps}")
    return chosen


class CoSDecodeSteps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSDecodeSteps",
            display_name="CoS Decode Steps",
            category="Chain-of-Steps/visualise",
            description=("Turns the x̂0 trajectory of a trace into pictures: a grid of steps × frames labelled "
                         "with step and σ (paper Fig. 2), or every frame of one step for video nodes."),
            inputs=[
                CosTrace.Input("trace", tooltip="From CoS Sampler, CoS Capture x̂0 or CoS Load Trace."),
                io.Combo.Input("mode", options=MODES, default=MODES[0],
                               tooltip="latent2rgb: instant linear projection of every latent frame (1/8 "
                               "resolution); vae: the real decoder, one step at a time."),
                io.Combo.Input("layout", options=LAYOUTS, default=LAYOUTS[0],
                               tooltip="A steps × frames grid, or all frames of 'step' as an IMAGE batch "
                               "(for CreateVideo / Save Video)."),
                io.String.Input("steps", default="all",
                                tooltip="Which recorded steps go in the grid: 'all', '0,5,10', '0-9', '-1'."),
                io.Int.Input("frames", default=6, min=0, max=256,
                             tooltip="Grid columns: this many evenly spaced frames (0: every latent frame)."),
                io.Int.Input("step", default=-1, min=-10000, max=10000,
                             tooltip="The step for 'frames of one step' (negative counts from the end)."),
                io.Int.Input("batch_index", default=0, min=0, max=4095, advanced=True,
                             tooltip="Which batch item of the latent to show."),
                io.Vae.Input("vae", optional=True, tooltip="Needed for mode 'vae' (Wan2.1 VAE for Wan2.2 A14B)."),
                io.Latent.Input("after", optional=True,
                                tooltip="Connect the sampler's LATENT when the trace comes from CoS Capture x̂0, "
                                "so this node runs after sampling."),
            ],
            outputs=[io.Image.Output(display_name="IMAGE")],
        )

    @classmethod
    def validate_inputs(cls, mode=None, layout=None, steps=None):
        if mode is not None and mode not in MODES:
            return f"mode: '{mode}' is not one of {MODES}"
        if layout is not None and layout not in LAYOUTS:
            return f"layout: '{layout}' is not one of {LAYOUTS}"
        if steps is not None:
            try:
                spec_ranges(steps, "steps")
            except SpecError as err:
                return str(err)
        return True

    @classmethod
    def execute(cls, trace, mode, layout, steps, frames, step, batch_index=0, vae=None, after=None) -> io.NodeOutput:
        trace = as_trace(trace)
        decoder = StepDecoder(trace, mode, vae)
        if layout == LAYOUTS[0]:
            chosen = select_steps(trace, steps)
            batch = trace[chosen[0]].tensors["x0_hat"].shape[0]
            if batch_index >= batch:
                raise ValueError(f"batch_index: {batch_index} is outside 0..{batch - 1}")
            image = pil_to_tensor(render_grid(trace, decoder, chosen, frames, batch_index))
            return io.NodeOutput(image, ui=ui.PreviewImage(image, cls=cls))
        (one,) = select_steps(trace, str(step))
        image = decoder.decode(trace[one].tensors["x0_hat"][batch_index])
        return io.NodeOutput(image)
