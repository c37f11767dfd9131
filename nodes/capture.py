"""CoS Capture x̂0: record x̂0 per step with ComfyUI's own samplers (e.g. the two-KSamplerAdvanced
Wan2.2 template), through an OUTER_SAMPLE wrapper on cloned MODELs."""
from __future__ import annotations

from comfy_api.latest import io

from .adapters import check_expert_pair, require_flow_model
from .patching import patched_clone
from .recorder import StepSelection, TraceHandle, X0Recorder
from .types import CosTrace

WRAPPER_KEY = "chain_of_steps.capture_x0"


def _capture_wrapper(handle: TraceHandle, expert: str):
    recorder = X0Recorder(handle.trace, handle.selection)

    def outer_sample(executor, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
                     disable_pbar=False, seed=None, **kwargs):
        offset, stage = handle.begin_stage(sigmas, expert)
        model = executor.class_obj.model_patcher.model
        # the decoders read the latent format from the trace (an LTX trace decoded as Wan's would fail)
        handle.trace.meta["latent_format"] = type(model.latent_format).__name__
        callback = recorder.stage_callback(sigmas, offset, stage, expert, model.process_latent_out,
                                           chain=callback, latent_shapes=kwargs.get("latent_shapes"))
        return executor(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, **kwargs)

    return outer_sample


def patch_for_capture(model, handle: TraceHandle, expert: str):
    """A clone of ``model`` that records x̂0 into ``handle``; the input MODEL is left untouched."""
    return patched_clone(model, WRAPPER_KEY, _capture_wrapper(handle, expert))


class CoSCaptureX0(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSCaptureX0",
            display_name="CoS Capture x̂0",
            category="Chain-of-Steps/sampling",
            description=("Patches copies of the model(s) so any ComfyUI sampler records the x̂0 prediction of "
                         "each step (paper Eq. 2). For the Wan2.2 A14B template, connect both experts: the "
                         "two KSamplerAdvanced stages then give one trace with global step numbers."),
            inputs=[
                io.Model.Input("model", tooltip="The model to sample with: the high-noise expert of Wan2.2 A14B "
                               "or a single model."),
                io.String.Input("capture_steps", default="all",
                                tooltip="Global steps whose x̂0 is kept: 'all', '0,10,20', '0-19,45-49'; "
                                "negatives count from the end."),
                io.Model.Input("model_low", optional=True,
                               tooltip="The low-noise expert of Wan2.2 A14B, if you sample it in a second stage."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="Patched copy of 'model': feed it to the sampler."),
                io.Model.Output(display_name="model_low", tooltip="Patched copy of 'model_low', or of 'model' when "
                                "model_low is not connected (for a two-stage graph of one model)."),
                CosTrace.Output(display_name="trace", tooltip="Filled while sampling. Consumers need the "
                                "sampler's LATENT on their 'after' input so they run after it."),
            ],
            not_idempotent=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **_inputs):
        """Always re-run (NaN never equals itself), and so does the sampler below: the trace handle is
        filled while that sampler runs, so a cached sampler result would leave it holding another
        prompt's steps (seen with --cache-lru)."""
        return float("nan")

    @classmethod
    def validate_inputs(cls, capture_steps=None):
        if capture_steps is not None:
            try:
                StepSelection(capture_steps)
            except ValueError as err:
                return str(err)
        return True

    @classmethod
    def execute(cls, model, capture_steps, model_low=None) -> io.NodeOutput:
        check_expert_pair(model, model_low, "model_low", "model")
        for name, m in {"model": model, "model_low": model_low}.items():
            if m is not None:
                require_flow_model(m, name)
        handle = TraceHandle(StepSelection(capture_steps))
        two = model_low is not None
        high = patch_for_capture(model, handle, "high" if two else "single")
        # without model_low, the second output is another patched copy of 'model', so a two-stage
        # graph of one model (both KSamplerAdvanced on it) records every step in one trace
        low = patch_for_capture(model_low, handle, "low") if two else patch_for_capture(model, handle, "single")
        return io.NodeOutput(high, low, handle)
