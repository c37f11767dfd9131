"""CoS Decode Steps: x̂0 trajectory → pictures (paper Fig. 2 grid, or one step's frames)."""
from __future__ import annotations

import os
import uuid

import comfy.latent_formats
import comfy.model_management
import folder_paths
import torch
from comfy_api.latest import io, ui
from PIL import Image

from ..cos_core.audio import audio_steps_figure, latent_map, spectrogram
from ..cos_core.latent_rgb import latent_to_rgb, pick_frames
from ..cos_core.render import pil_to_tensor, step_grid
from ..cos_core.steps import SpecError, check_index, parse_spec, spec_ranges
from ..cos_core.trace import Trace
from .adapters import LatentInfo
from .recorder import as_trace
from .types import CosTrace

MODES = ["latent2rgb (fast)", "vae"]
LAYOUTS = ["grid: steps × frames", "frames of one step", "grid: batch items × frames", "audio x̂0 per step (LTX-2)"]
AUDIO_LAYOUT = LAYOUTS[3]
SCRUB_HEIGHT = 160  # px: the scrubber's per-step strips are at most this tall


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


def column_labels(decoder: StepDecoder, frame_ids: list[int]) -> list[str]:
    if decoder.mode == "vae":
        return [f"frame {decoder.pixel_index(f)}" for f in frame_ids]
    return [f"f{f} · px {decoder.info.pixel_frames(f)[1]}" for f in frame_ids]


def grid_rows(trace: Trace, decoder: StepDecoder, steps: list[int], columns: int, batch_index: int):
    """The decoded grid: frames (R, K, H, W, 3) of the steps, and the K column labels."""
    x0_first = trace[steps[0]].tensors["x0_hat"]
    frame_ids = pick_frames(x0_first.shape[2], columns) if columns > 0 else list(range(x0_first.shape[2]))
    rows = torch.stack([decoder.decode(trace[s].tensors["x0_hat"][batch_index], frame_ids) for s in steps])
    return rows, column_labels(decoder, frame_ids)


def render_grid(trace: Trace, decoder: StepDecoder, steps: list[int], columns: int, batch_index: int,
                decoded=None):
    rows, cols = decoded if decoded is not None else grid_rows(trace, decoder, steps, columns, batch_index)
    switch = trace.meta.get("switch_step")
    highlight = [i for i, s in enumerate(steps) if switch is not None and s == switch]
    title = f"x̂0 per step ({decoder.mode.split()[0]}), {trace.meta.get('total_steps', '?')} steps"
    if switch is not None:
        title += f", low-noise expert from step {switch}"
    return step_grid(rows, [step_label(trace, s) for s in steps], cols, highlight, title=title)


def render_batch(trace: Trace, decoder: StepDecoder, step: int, columns: int):
    """One step's x̂0 for every batch item, items × frames (e.g. N seeds previewed at a stop step)."""
    x0 = trace[step].tensors["x0_hat"]
    frame_ids = pick_frames(x0.shape[2], columns) if columns > 0 else list(range(x0.shape[2]))
    rows = torch.stack([decoder.decode(x0[b], frame_ids) for b in range(x0.shape[0])])
    record = trace[step]
    title = (f"x̂0 of {x0.shape[0]} batch items at step {step} (σ={record.sigma:.3f}, "
             f"{decoder.mode.split()[0]}): CoS Resume's 'pick' finishes one")
    return step_grid(rows, [f"item {b}" for b in range(x0.shape[0])], column_labels(decoder, frame_ids), title=title)


def recorded_step(trace: Trace, step: int) -> int:
    """``step`` when it was recorded; a negative one counts back from the last recorded step."""
    recorded = [s for s in trace.steps if "x0_hat" in trace[s].tensors]
    if not recorded:
        raise ValueError("trace: it holds no steps; check capture_steps")
    if step < 0:
        if -step > len(recorded):
            raise ValueError(f"step: {step} is before the first of the {len(recorded)} recorded steps")
        return recorded[step]
    if step not in recorded:
        raise SpecError(f"step: {step} was not captured; the trace has steps {recorded}")
    return step


def scrubber_payload(trace: Trace, steps: list[int], rows: torch.Tensor, cols: list[str], mode: str,
                     batch_index: int) -> dict:
    """The web extension's step scrubber data: one small JPEG strip (the grid row) per step, in the
    temp folder like ComfyUI's previews, with the step, σ and expert of each."""
    frames = (rows.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()  # (R, K, H, W, 3)
    r, k, h, w, _ = frames.shape
    scale = min(1.0, SCRUB_HEIGHT / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    folder = folder_paths.get_temp_directory()
    sub = "chain_of_steps"
    os.makedirs(os.path.join(folder, sub), exist_ok=True)
    tag = uuid.uuid4().hex[:10]
    entries = []
    for i, s in enumerate(steps):
        strip = Image.new("RGB", (size[0] * k, size[1]))
        for j in range(k):
            strip.paste(Image.fromarray(frames[i, j]).resize(size, Image.NEAREST if scale == 1 else Image.BILINEAR),
                        (j * size[0], 0))
        name = f"cos_scrub_{tag}_{s:05d}.jpg"
        strip.save(os.path.join(folder, sub, name), quality=88)
        record = trace[s]
        entries.append({"step": s, "sigma": float(record.sigma), "expert": record.expert,
                        "image": {"filename": name, "subfolder": sub, "type": "temp"}})
    return {"steps": entries, "frame_labels": cols, "frame_width": size[0], "frame_height": size[1],
            "total_steps": int(trace.meta.get("total_steps") or 0), "switch_step": trace.meta.get("switch_step"),
            "mode": mode, "batch_index": batch_index}


def render_audio(trace: Trace, steps: list[int], batch_index: int, audio_vae=None):
    """The audio x̂0 of ``steps`` (LTX-2 audio-video runs), one row per step: the decoded waveform's
    spectrogram when ``audio_vae`` is given, else the audio latent itself."""
    have = [s for s in steps if "x0_hat_audio" in trace[s].tensors]
    if not have:
        raise ValueError("layout: the trace holds no audio x̂0; the audio layout needs an LTX-2 audio-video run "
                         "(LTXVConcatAVLatent), not a video-only model such as Wan or LTXV")
    check_index(batch_index, trace[have[0]].tensors["x0_hat_audio"].shape[0], "batch_index")
    labels = [step_label(trace, s) for s in have]
    total = trace.meta.get("total_steps", "?")
    if audio_vae is None:
        latents = [trace[s].tensors["x0_hat_audio"][batch_index] for s in have]
        return audio_steps_figure([latent_map(a) for a in latents], labels,
                                  f"Audio x̂0 per step (latent: {latents[0].shape[0]} channels × "
                                  f"{latents[0].shape[2]} bins), {total} steps", kind="latent",
                                  channels=latents[0].shape[0])
    rate = getattr(getattr(audio_vae, "first_stage_model", None), "output_sample_rate", None)
    if rate is None:
        raise ValueError("audio_vae: not an audio VAE (connect LTXVAudioVAELoader's output)")
    rows, duration, nyquist = [], None, None
    for s in have:
        comfy.model_management.throw_exception_if_processing_interrupted()
        with torch.no_grad():
            wave = audio_vae.decode(trace[s].tensors["x0_hat_audio"][batch_index:batch_index + 1])
        wave = wave.movedim(-1, 1)[0]  # (channels, samples), as LTXVAudioVAEDecode gives it
        db, duration, nyquist = spectrogram(wave, int(rate))
        rows.append(db)
    return audio_steps_figure(rows, labels, f"Audio x̂0 per step (decoded, spectrogram), {total} steps",
                              kind="spectrogram", duration=duration, max_hz=nyquist)


def select_steps(trace: Trace, spec: str) -> list[int]:
    """Recorded steps picked by ``spec`` (indices into the full schedule)."""
    total = int(trace.meta.get("total_steps") or (max(trace.steps) + 1 if len(trace) else 0))
    if not len(trace):
        raise ValueError("trace: it holds no steps; check capture_steps")
    if not any("x0_hat" in trace[s].tensors for s in trace.steps):
        raise ValueError("trace: it holds no x̂0 (a CoS Layer Probe trace?); decode a trace of CoS Sampler, "
                         "CoS Capture x̂0 or CoS Load Trace, and draw probe traces with CoS Energy Maps")
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
                         "with step and σ (paper Fig. 2), every frame of one step for video nodes, or the batch "
                         "items side by side at one step. The grid comes with a step scrubber in the node."),
            inputs=[
                CosTrace.Input("trace", tooltip="From CoS Sampler, CoS Capture x̂0 or CoS Load Trace."),
                io.Combo.Input("mode", options=MODES, default=MODES[0],
                               tooltip="latent2rgb: instant linear projection of every latent frame (1/8 "
                               "resolution); vae: the real decoder, one step at a time."),
                io.Combo.Input("layout", options=LAYOUTS, default=LAYOUTS[0],
                               tooltip="A steps × frames grid, all frames of 'step' as an IMAGE batch "
                               "(for CreateVideo / Save Video), or a batch items × frames grid at 'step' (e.g. N "
                               "seeds previewed at a stop step, to pick one for CoS Resume), or the audio x̂0 of "
                               "'steps' (LTX-2 audio-video runs; a spectrogram with 'audio_vae')."),
                io.String.Input("steps", default="all",
                                tooltip="Which recorded steps go in the grid: 'all', '0,5,10', '0-9', '-1'."),
                io.Int.Input("frames", default=6, min=0, max=256,
                             tooltip="Grid columns: this many evenly spaced frames (0: every latent frame)."),
                io.Int.Input("step", default=-1, min=-10000, max=10000,
                             tooltip="The step for 'frames of one step' (negative counts from the end) and for "
                             "'batch items' (negative counts back from the last recorded step, e.g. where a "
                             "stopped run stopped)."),
                io.Int.Input("batch_index", default=0, min=0, max=4095, advanced=True,
                             tooltip="Which batch item of the latent to show."),
                io.Vae.Input("vae", optional=True, tooltip="Needed for mode 'vae' (Wan2.1 VAE for Wan2.2 A14B)."),
                io.Vae.Input("audio_vae", optional=True,
                             tooltip="LTX-2's audio VAE (LTXVAudioVAELoader), for the 'audio x̂0' layout: each step's "
                             "audio x̂0 is decoded and shown as a spectrogram. Without it the audio latent itself "
                             "is shown."),
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
    def execute(cls, trace, mode, layout, steps, frames, step, batch_index=0, vae=None, after=None,
                audio_vae=None) -> io.NodeOutput:
        trace = as_trace(trace)
        if layout == AUDIO_LAYOUT:
            image = pil_to_tensor(render_audio(trace, select_steps(trace, steps), batch_index, audio_vae))
            return io.NodeOutput(image, ui=ui.PreviewImage(image, cls=cls))
        decoder = StepDecoder(trace, mode, vae)
        if layout == LAYOUTS[0]:
            chosen = select_steps(trace, steps)
            check_index(batch_index, trace[chosen[0]].tensors["x0_hat"].shape[0], "batch_index")
            decoded = grid_rows(trace, decoder, chosen, frames, batch_index)
            image = pil_to_tensor(render_grid(trace, decoder, chosen, frames, batch_index, decoded))
            preview = ui.PreviewImage(image, cls=cls).as_dict()
            scrub = scrubber_payload(trace, chosen, decoded[0], decoded[1], mode, batch_index)
            return io.NodeOutput(image, ui=preview | {"cos_steps": [scrub]})
        if layout == LAYOUTS[2]:
            image = pil_to_tensor(render_batch(trace, decoder, recorded_step(trace, step), frames))
            return io.NodeOutput(image, ui=ui.PreviewImage(image, cls=cls))
        (one,) = select_steps(trace, str(step))
        x0 = trace[one].tensors["x0_hat"]
        image = decoder.decode(x0[check_index(batch_index, x0.shape[0], "batch_index")])
        return io.NodeOutput(image)
