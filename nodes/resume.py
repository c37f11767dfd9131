"""Stop at step k, resume later: the state of a stopped run and CoS Resume.

A stopped CoS Sampler run keeps the noisy latent entering the next step (model space, exact) or,
when the next step starts an expert's stage, the latent the finished stage returned (what
KSamplerAdvanced hands to the second stage). Resuming from it with the same models, schedule and
settings gives bit-for-bit the uninterrupted result for single-step samplers (euler, heun, ...).
Multistep samplers (dpmpp_2m, deis, ipndm, res_multistep, uni_pc) restart their history at the
resume step, and SDE/ancestral samplers draw new noise after it, so their results differ slightly.

The state is a trace (kind "cos-state") with one record at the next step, saved and loaded like
any trace (one safetensors file, JSON metadata, no pickle). It remembers fingerprints of the
models and the conditioning, so resuming with other ones is refused with a clear error.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cos_core.steps import check_index
from ..cos_core.trace import StepRecord, Trace
from .adapters import nest, split_streams
from .live_preview import LivePreview
from .recorder import StepSelection, X0Recorder, as_trace
from .sampling import Run, Stop, plan_run, sample_run
from .types import CosTrace

STATE_KIND = "cos-state"


def model_fingerprint(model) -> list[float]:
    """A cheap identity of a model's weights: sums of its first and last layers, and its size."""
    diffusion = model.model.diffusion_model
    params = list(diffusion.parameters())
    picks = [params[0], params[-1]] if params else []
    return [float(p.detach().float().sum()) for p in picks] + [float(sum(p.numel() for p in params))]


def cond_fingerprint(conditioning) -> list[float]:
    """Shapes and sums of the conditioning tensors (text context and the I2V concat image)."""
    out = []
    for tensor, extra in conditioning:
        out += [float(tensor.detach().float().sum()), *map(float, tensor.shape)]
        image = extra.get("concat_latent_image") if isinstance(extra, dict) else None
        if isinstance(image, torch.Tensor):
            out.append(float(image.detach().float().sum()))
    return out


def stop_state(run: Run, stop: Stop, trace: Trace, settings: dict, positive, negative) -> Trace:
    """The state of a run stopped before ``stop.next_step``, as a trace of kind "cos-state"."""
    meta = dict(trace.meta) | settings | {
        "kind": STATE_KIND, "next_step": stop.next_step, "sampler": run.sampler_name,
        "models": {expert: model_fingerprint(model) for expert, model in run.models.items()},
        "positive": cond_fingerprint(positive), "negative": cond_fingerprint(negative)}
    state = Trace(meta)
    streams = split_streams(stop.latent)
    tensors = {name: t.detach().to("cpu") for name, t in zip(("latent", "latent_audio"), streams)}
    if stop.x is not None:
        tensors["x"] = stop.x.float()  # model space; an audio-video run's is packed (B, 1, N) as the sampler has it
    last = stop.next_step - 1
    if last in trace:
        tensors |= {k: v for k, v in trace[last].tensors.items() if k in ("x0_hat", "x0_hat_audio")}
    sigma = run.meta["sigmas"][stop.next_step]
    state.add(StepRecord(stop.next_step, sigma, 0, "", tensors))
    return state


def _same(a, b, tol=1e-4) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def check_state(state: Trace, run: Run, positive, negative) -> None:
    """Raise ValueError naming the input when the state does not belong to these models and settings."""
    meta = state.meta
    if not _same([float(s) for s in meta["sigmas"]], run.meta["sigmas"], 1e-6):
        raise ValueError("state: the σ schedule of these models and settings differs from the stopped run's")
    for expert, fingerprint in meta.get("models", {}).items():
        if expert not in run.models or not _same(fingerprint, model_fingerprint(run.models[expert])):
            name = "model_low" if expert == "low" else "model_high"
            raise ValueError(f"{name}: not the model the run was stopped with ({expert} expert differs)")
    for name, cond in (("positive", positive), ("negative", negative)):
        if not _same(meta.get(name, []), cond_fingerprint(cond)):
            raise ValueError(f"{name}: the conditioning differs from the stopped run's")


class CoSResume(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSResume",
            display_name="CoS Resume",
            category="Chain-of-Steps/sampling",
            description=("Finishes a run that the CoS Sampler stopped early (its 'state' output, or a state file "
                         "loaded with CoS Load Trace), with the same schedule, experts and settings: stop + "
                         "resume equals one uninterrupted run. 'pick' finishes one batch item only, e.g. the "
                         "best of N seeds previewed at step k."),
            inputs=[
                io.Model.Input("model_high",
                               tooltip="The same high-noise expert (or single model) as the stopped run."),
                io.Conditioning.Input("positive", tooltip="The same positive conditioning as the stopped run."),
                io.Conditioning.Input("negative", tooltip="The same negative conditioning as the stopped run."),
                CosTrace.Input("state", tooltip="The CoS Sampler's 'state' output, or CoS Load Trace of a saved one."),
                io.Int.Input("pick", default=-1, min=-1, max=4095,
                             tooltip="Finish only this batch item (-1: all of them)."),
                io.String.Input("capture_steps", default="all", tooltip="Steps whose x̂0 is kept (of the rest)."),
                io.Int.Input("preview_frames", default=4, min=0, max=16, advanced=True,
                             tooltip="Frames shown in the live preview (0: off)."),
                io.Model.Input("model_low", optional=True, tooltip="The same low-noise expert, if the run had one."),
                io.Sampler.Input("sampler", optional=True, tooltip="The same SAMPLER, if the run used one."),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The final sample."),
                io.Latent.Output(display_name="x0_hat_steps", tooltip="x̂0 of the captured remaining steps."),
                CosTrace.Output(display_name="trace", tooltip="The remaining steps' trace."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model_high, positive, negative, state, pick, capture_steps, preview_frames=4, model_low=None,
                sampler=None) -> io.NodeOutput:
        from .sampler import x0_latent  # the sampler module imports this one

        state = as_trace(state, "state")
        meta = state.meta
        if meta.get("kind") != STATE_KIND or len(state) != 1:
            raise ValueError("state: not the state of a stopped run (connect the CoS Sampler's 'state' output, "
                             "with stop_after_step set)")
        record = state.records()[0]
        streams = [record.tensors[k] for k in ("latent", "latent_audio") if k in record.tensors]
        x = record.tensors.get("x")
        if pick >= 0:
            check_index(pick, streams[0].shape[0], "pick")
            streams = [t[pick:pick + 1] for t in streams]
            x = x[pick:pick + 1] if x is not None else None
        batch = streams[0].shape[0]
        shapes = [meta["latent_shape"]] + ([meta["audio_latent_shape"]] if len(streams) > 1 else [])
        empty = nest([torch.zeros([batch, *shape[1:]]) for shape in shapes])
        latent = nest(streams)
        run = plan_run(model_high, positive, negative, {"samples": empty}, meta["seed"],
                       meta["total_steps"], meta["cfg"], meta["sampler"], meta["scheduler"], meta["switch_mode"],
                       meta["boundary_setting"], meta["switch_step_setting"], model_low=model_low, sampler=sampler)
        check_state(state, run, positive, negative)
        start = record.step
        trace = Trace(run.meta | {"source": "CoSResume", "resumed_at": start, "pick": pick})
        live = LivePreview(run.total_steps, cls.hidden.unique_id, None, frames=0)
        recorder = X0Recorder(trace, StepSelection(capture_steps))

        def stage_callback(index, expert, begin, end, model):
            return recorder.stage_callback(run.sigmas[begin:end + 1], begin, index, expert,
                                           model.model.process_latent_out)

        try:
            samples, _ = sample_run(run, stage_callback, start_step=start, start_x=x, start_latent=latent)
        finally:
            live.close()
        trace = recorder.finish(run.total_steps)
        return io.NodeOutput({"samples": samples}, x0_latent(trace), trace)
