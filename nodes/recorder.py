"""Recording x̂0 at every chosen step, with global step numbers across sampler stages.

Used by the CoS Sampler (which calls ComfyUI's sampler itself, one stage per expert) and by
CoS Capture x̂0 (an OUTER_SAMPLE wrapper on cloned MODELs, for the stock two-KSamplerAdvanced
Wan2.2 graph). ComfyUI's sampler callback gives the stage-local step and x0 = x − σ·v in model
space (paper Eq. 2); the recorder adds the stage's global offset and stores x̂0 after
``process_latent_out``, on the CPU.
"""
from __future__ import annotations

import torch

from ..cos_core.clock import StageClock
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from ..cos_core.trace import StepRecord, Trace
from .adapters import latent_out, split_streams

# Trace names of the streams of a latent: video first, then audio (LTX-2 audio-video models).
STREAM_NAMES = {"x0_hat": ("x0_hat", "x0_hat_audio"), "x": ("x", "x_audio")}


class StepSelection:
    """A step spec that may be applied before the schedule length is known.

    Specs of non-negative indices filter while recording; specs with negative indices or "all"
    record every step and are resolved once the schedule length S is known.
    """

    def __init__(self, spec: str, input_name: str = "capture_steps"):
        self.spec = spec
        self.input_name = input_name
        ranges = spec_ranges(spec, input_name)
        self._ranges = None if ranges is None or any(a < 0 or b < 0 for a, b in ranges) else ranges

    def may_need(self, step: int) -> bool:
        return self._ranges is None or any(a <= step <= b for a, b in self._ranges)

    def resolve(self, total_steps: int) -> list[int]:
        """The chosen steps for a schedule of ``total_steps``; SpecError names the input if out of range."""
        return parse_spec(self.spec, total_steps, name=self.input_name)


class X0Recorder:
    """Turns sampler callbacks into trace records.

    Args:
        trace: the trace to fill.
        selection: which global steps to keep.
        on_step: optional ``fn(global_step, sigma, expert, x0_model_space)`` for progress/preview
            (the video stream).
        record_noisy: also keep the noisy state x_σ (latent space) as ``"x"``.
        always: global steps recorded whatever the selection says (e.g. the step a run stops at).
    """

    def __init__(self, trace: Trace, selection: StepSelection, on_step=None, record_noisy: bool = False,
                 always: set[int] = frozenset()):
        self.trace = trace
        self.selection = selection
        self.on_step = on_step
        self.record_noisy = record_noisy
        self.always = set(always)

    def stage_callback(self, sigmas: torch.Tensor, offset: int, stage: int, expert: str, process_out, chain=None,
                       latent_shapes=None):
        """A ComfyUI sampler callback ``(step, x0, x, total_steps)`` for one stage.

        Audio-video latents (LTX-2) arrive as a NestedTensor (through ``comfy.sample``) or packed
        (B, 1, N) (inside an OUTER_SAMPLE wrapper, with ``latent_shapes``); the video x̂0 is stored as
        ``"x0_hat"`` and the audio x̂0 as ``"x0_hat_audio"``, both after ``process_latent_out``.

        Args:
            sigmas: the stage's schedule (local step i has σ = sigmas[i]).
            offset: global index of the stage's local step 0.
            process_out: the model's ``process_latent_out``.
            chain: a callback to call afterwards (e.g. ComfyUI's own preview), or None; it gets the
                sampler's own arguments.
            latent_shapes: the stream shapes when the callback receives packed latents.
        """
        sigma_list = [float(s) for s in sigmas]

        def callback(step, x0, x, total_steps):
            g = offset + step
            sigma = sigma_list[step] if step < len(sigma_list) else float("nan")
            streams = split_streams(x0, latent_shapes)
            if self.selection.may_need(g) or g in self.always:
                tensors = dict(zip(STREAM_NAMES["x0_hat"], latent_out(process_out, streams)))
                if self.record_noisy:
                    tensors |= dict(zip(STREAM_NAMES["x"], latent_out(process_out, split_streams(x, latent_shapes))))
                self.trace.add(StepRecord(g, sigma, stage, expert, tensors))
            if self.on_step is not None:
                self.on_step(g, sigma, expert, streams[0])
            if chain is not None:
                chain(step, x0, x, total_steps)

        return callback

    def finish(self, total_steps: int) -> Trace:
        """Drop records the spec did not ask for, once S is known; returns the trace."""
        return self.trace.filtered(set(self.selection.resolve(total_steps)) | self.always)


class TraceHandle:
    """The COS_TRACE of the patch nodes (CoS Capture x̂0, CoS Layer Probe): filled while the patched
    models sample, with global steps kept by a :class:`~cos_core.clock.StageClock`. A stage that
    starts a new run clears the trace, so runs are never mixed. Heun-like samplers call the model
    at the next step's σ for their second evaluation; that record is replaced when the next step
    runs, since the later write wins.
    """

    def __init__(self, selection: StepSelection):
        self.selection = selection
        self.trace = Trace()
        self.clock = StageClock()
        self.expert = "single"

    @property
    def stage(self) -> int:
        return self.clock.stage

    def begin_stage(self, sigmas: torch.Tensor, expert: str) -> tuple[int, int]:
        """Register a stage about to sample; returns (global offset, stage index)."""
        offset, new_run = self.clock.begin([float(s) for s in sigmas])
        if new_run:
            self.trace.clear()
        self.expert = expert
        meta = self.trace.meta
        meta["sigmas"] = list(self.clock.schedule)
        meta["total_steps"] = self.clock.total_steps
        meta["experts"] = meta.get("experts", [])[: self.clock.stage] + [expert]
        meta["stage_starts"] = list(self.clock.stage_starts)
        return offset, self.clock.stage

    def step_of(self, sigma: float) -> int | None:
        return self.clock.step_of(sigma)

    def snapshot(self) -> Trace:
        """The recorded run, filtered by the step spec.

        Raises:
            ValueError: if nothing was recorded yet (the consumer ran before sampling).
            SpecError: if the spec names steps outside the recorded schedule.
        """
        if not self.clock.schedule:
            raise ValueError("trace: nothing recorded yet; connect the sampler's LATENT output to this node's "
                             "'after' input so it runs after sampling")
        return self.trace.filtered(self.selection.resolve(self.clock.total_steps)).copy()


def as_trace(obj, input_name: str = "trace") -> Trace:
    """A Trace from a COS_TRACE input (a Trace or a live TraceHandle)."""
    if isinstance(obj, TraceHandle):
        return obj.snapshot()
    if isinstance(obj, Trace):
        return obj
    raise ValueError(f"{input_name}: expected a COS_TRACE, got {type(obj).__name__}")


__all__ = ["StepSelection", "X0Recorder", "TraceHandle", "as_trace", "SpecError"]
