"""CoS Sampler: Wan2.2 two-expert (or one-model) sampling that keeps x̂0 of every chosen step."""
from __future__ import annotations

import comfy.samplers
import torch
from comfy_api.latest import io

from ..cos_core.schedule import WAN22_I2V_BOUNDARY
from ..cos_core.steps import SpecError, parse_spec
from ..cos_core.trace import Trace
from .adapters import adapter_for, nest
from .live_preview import LivePreview
from .recorder import StepSelection, X0Recorder
from .resume import stop_state
from .sampling import SWITCH_MODES, full_schedule, plan_run, sample_run
from .types import CosPerturb, CosTrace

__all__ = ["CoSSampler", "full_schedule", "check_settings", "x0_latent", "step_latent"]


def check_settings(steps, capture_steps, switch_mode, boundary, switch_step_value) -> str | bool:
    """Validate widget values before anything runs; returns True or a message naming the input."""
    if steps is not None and not 1 <= steps <= 10000:
        return f"steps: {steps} is outside 1..10000"
    if capture_steps is not None and steps is not None:
        try:
            parse_spec(capture_steps, steps, name="capture_steps")
        except SpecError as err:
            return str(err)
    if switch_mode is not None and switch_mode not in SWITCH_MODES:
        return f"switch_mode: '{switch_mode}' is not one of {SWITCH_MODES}"
    if boundary is not None and not 0.0 < boundary < 1.0:
        return f"boundary: {boundary} must lie strictly between 0 and 1 (official Wan2.2: 0.900 I2V, 0.875 T2V)"
    if switch_step_value is not None and switch_step_value < 0:
        return f"switch_step: {switch_step_value} must be at least 0"
    if switch_mode == "step" and switch_step_value is not None and steps is not None \
            and not 0 <= switch_step_value <= steps:
        return f"switch_step: {switch_step_value} is outside 0..{steps}"
    return True


def run_inputs() -> list:
    """The inputs that plan a sampling run, shared by the CoS Sampler and the sweeps."""
    return [
        io.Model.Input("model_high", tooltip="The high-noise expert (Wan2.2 A14B), or the only model "
                       "(Wan2.1, Wan2.2-5B, LTX-2 / 2.3). Must be a flow model (Wan: after ModelSamplingSD3)."),
        io.Conditioning.Input("positive", tooltip="Positive conditioning (e.g. from WanImageToVideo)."),
        io.Conditioning.Input("negative", tooltip="Negative conditioning."),
        io.Latent.Input("latent", tooltip="The video latent to denoise (B, C, F, H, W), or LTX-2's audio-video "
                        "latent (LTXVConcatAVLatent)."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Seed of the initial noise (ignored when a NOISE is connected)."),
        io.Int.Input("steps", default=20, min=1, max=10000,
                     tooltip="Total denoising steps S, across both experts."),
        io.Float.Input("cfg", default=3.5, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale (official Wan2.2 I2V: 3.5)."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler",
                       tooltip="ComfyUI sampler. Multi-evaluation samplers (heun, dpmpp_2s) are fine: "
                       "x̂0 is recorded once per step."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="simple",
                       tooltip="ComfyUI scheduler."),
        io.Combo.Input("switch_mode", options=SWITCH_MODES, default="boundary sigma",
                       tooltip="When the low-noise expert takes over: at the first step whose σ is "
                       "below 'boundary' (official Wan2.2), or at 'switch_step'."),
        io.Float.Input("boundary", default=WAN22_I2V_BOUNDARY, min=0.001, max=0.999, step=0.005,
                       round=0.001, tooltip="σ boundary of the expert switch (official Wan2.2: 0.900 "
                       "for I2V, 0.875 for T2V). Used when switch_mode is 'boundary sigma'."),
        io.Int.Input("switch_step", default=10, min=0, max=10000,
                     tooltip="Global step where the low-noise expert starts, when switch_mode is 'step' "
                     "(ComfyUI's template: 10 of 20)."),
    ]


def run_optional_inputs() -> list:
    return [
        io.Model.Input("model_low", optional=True,
                       tooltip="The low-noise expert of Wan2.2 A14B. Leave empty for one-model sampling."),
        io.Noise.Input("noise", optional=True,
                       tooltip="A NOISE (e.g. RandomNoise, or CoS Seed Ensemble's per-member seeds) to use "
                       "instead of 'seed'."),
        io.Sampler.Input("sampler", optional=True,
                         tooltip="A SAMPLER (KSamplerSelect, CoS Seed Ensemble, CoS Noise Injection) used instead "
                         "of sampler_name; the σ schedule still comes from sampler_name and scheduler."),
    ]


class CoSSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSSampler",
            display_name="CoS Sampler (x̂0 per step)",
            category="Chain-of-Steps/sampling",
            description=("Samples a Wan2.2 A14B video with its two experts (or one model: Wan2.1, Wan2.2-5B, "
                         "LTX-2 / 2.3) exactly like two KSamplerAdvanced nodes, and keeps the x̂0 prediction of "
                         "every chosen step (paper Sec. 3, Eq. 2) with a live multi-frame preview. LTX-2 audio-video "
                         "runs keep the audio x̂0 too."),
            inputs=[
                *run_inputs(),
                io.String.Input("capture_steps", default="all",
                                tooltip="Steps whose x̂0 is kept: 'all', '0,10,20', '0-19,45-49' (the official "
                                "--vis_steps syntax), negatives count from the end."),
                io.Int.Input("stop_after_step", default=-1, min=-1, max=10000,
                             tooltip="Stop after this global step (-1: run to the end). The LATENT output is then "
                             "the clean x̂0 of that step, and 'state' holds what CoS Resume needs to finish."),
                io.Int.Input("preview_frames", default=4, min=0, max=16, advanced=True,
                             tooltip="Frames shown in the live preview (0: off)."),
                *run_optional_inputs(),
                CosPerturb.Input("perturb", optional=True,
                                 tooltip="A noise injection from CoS Noise Injection (paper Sec. 3.2), applied "
                                 "to the trajectory itself."),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The final sample, as KSamplerAdvanced returns it."),
                io.Latent.Output(display_name="x0_hat_steps",
                                 tooltip="x̂0 of the captured steps as one LATENT batch (steps × batch), "
                                 "decodable with VAE Decode."),
                CosTrace.Output(display_name="trace", tooltip="The run's trace: x̂0 per step with σ, step, expert."),
                CosTrace.Output(display_name="state", tooltip="When stopped early: the noisy state, schedule and "
                                "settings to finish the run with CoS Resume (save it with CoS Save Trace)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, steps=None, capture_steps=None, switch_mode=None, boundary=None, switch_step=None,
                        stop_after_step=None):
        if stop_after_step is not None and steps is not None and not -1 <= stop_after_step < steps:
            return f"stop_after_step: {stop_after_step} is outside 0..{steps - 1} (or -1 to run to the end)"
        return check_settings(steps, capture_steps, switch_mode, boundary, switch_step)

    @classmethod
    def execute(cls, model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler,
                switch_mode, boundary, switch_step, capture_steps, stop_after_step=-1, preview_frames=4,
                model_low=None, noise=None, sampler=None, perturb=None) -> io.NodeOutput:
        message = cls.validate_inputs(steps=steps, capture_steps=capture_steps, switch_mode=switch_mode,
                                      boundary=boundary, switch_step=switch_step, stop_after_step=stop_after_step)
        if message is not True:
            raise ValueError(message)
        run = plan_run(model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler,
                       switch_mode, boundary, switch_step, model_low=model_low, noise=noise, sampler=sampler)
        if perturb is not None:
            perturb.validate(run.total_steps, run.latent_image.shape[2])
        stop_after = stop_after_step if 0 <= stop_after_step < steps - 1 else None
        settings = {"switch_mode": switch_mode, "boundary_setting": boundary, "switch_step_setting": switch_step}
        trace = Trace(run.meta | settings | {"source": "CoSSampler", "capture_steps": capture_steps,
                                             "perturbation": perturb.describe() if perturb is not None else None})
        info = adapter_for(model_high).latent_info(model_high)
        live = LivePreview(steps if stop_after is None else stop_after + 1, cls.hidden.unique_id, info,
                           frames=preview_frames)
        keep = {stop_after} if stop_after is not None else set()
        recorder = X0Recorder(trace, StepSelection(capture_steps), on_step=live.on_step, always=keep)

        def stage_callback(index, expert, start, end, model):
            return recorder.stage_callback(run.sigmas[start:end + 1], start, index, expert,
                                           model.model.process_latent_out)

        try:
            samples, stop = sample_run(run, stage_callback, injection=perturb, stop_after=stop_after)
        finally:
            live.close()
        trace = recorder.finish(steps)
        out = {k: v for k, v in latent.items() if k not in ("downscale_ratio_spacial", "downscale_ratio_temporal")}
        out["samples"] = samples
        state = None
        if stop is not None:
            out["samples"] = step_latent(trace[stop_after].tensors)
            state = stop_state(run, stop, trace, settings, positive, negative)
        return io.NodeOutput(out, x0_latent(trace), trace, state)


def step_latent(tensors: dict):
    """One step's x̂0 as LATENT samples: the video x̂0, or for an LTX-2 audio-video run a NestedTensor
    (video, audio) as ComfyUI's own AV latents are."""
    if "x0_hat_audio" in tensors:
        return nest([tensors["x0_hat"], tensors["x0_hat_audio"]])
    return tensors["x0_hat"]


def x0_latent(trace: Trace) -> dict:
    """The captured x̂0 as one LATENT: the steps' batches concatenated, step-major, (Σ B_s, C, F, H, W).

    ``cos_steps`` names the step of every batch row (an ensemble with ``continue = primary`` has K
    rows at its ensemble steps and one afterwards). An LTX-2 audio-video run gives a NestedTensor
    (video, audio) like its sampler's LATENT; LTXVSeparateAVLatent splits it for the decoders.
    """
    if not len(trace):
        return {"samples": torch.zeros((0,)), "cos_steps": []}
    steps = [s for s in trace.steps if "x0_hat" in trace[s].tensors]
    rows = [s for s in steps for _ in range(trace[s].tensors["x0_hat"].shape[0])]
    video = torch.cat([trace[s].tensors["x0_hat"] for s in steps])
    if all("x0_hat_audio" in trace[s].tensors for s in steps):
        audio = torch.cat([trace[s].tensors["x0_hat_audio"] for s in steps])
        return {"samples": nest([video, audio]), "cos_steps": rows}
    return {"samples": video, "cos_steps": rows}
