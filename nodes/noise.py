"""Noise injection on the sampling trajectory itself (paper Sec. 3.2), as a ComfyUI SAMPLER.

:class:`SegmentedSampler` wraps any k-diffusion SAMPLER (``KSAMPLER``): it runs the base sampler
in segments and perturbs the model-space latent between them, so the perturbed latent is what
the sampler continues from (not only what the model sees). Global step numbers come from a
:class:`~cos_core.clock.StageClock` (or a fixed offset from the CoS Sampler), so a two-stage
Wan2.2 graph with SamplerCustomAdvanced counts steps across both stages.

Multistep samplers: a split restarts the base sampler, so dpmpp_2m, deis, ipndm, res_multistep
and uni_pc take their first step after a split as a first-order step, and ancestral/SDE samplers
draw fresh noise per segment. "Noise at step s" splits once (at s); "noise at frame f" splits at
every step. Single-step samplers (euler, heun, dpm_2) give exactly the unsplit trajectory when
λ = 0. The paper's Wan2.2 runs use a first-order flow-matching Euler sampler.

LTX-2 audio-video latents reach a SAMPLER packed into one (B, 1, N) tensor
(``comfy.utils.pack_latents``); the injection unpacks it with the sampler's ``latent_shapes`` and
perturbs the video stream only (frames are video latent frames, stride 8); the audio stream is left
as it is. Dropping ensemble members (``keep_first_after``) cuts the batch dimension, which the
packing keeps, so it acts on both streams together.
"""
from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..cos_core.clock import StageClock
from ..cos_core.perturb import MODES, NoiseInjection
from .adapters import nest, packed, split_streams
from .types import CosPerturb


def latent_shapes_of(model):
    """The stream shapes of the latent being sampled, from the k-diffusion model a sampler function
    gets (``KSamplerX0Inpaint`` → guider → BaseModel, set by ``CFGGuider.inner_sample``); None when
    unknown. More than one shape: an audio-video latent packed into (B, 1, N)."""
    guider = getattr(model, "inner_model", None)
    return getattr(getattr(guider, "inner_model", None), "latent_shapes", None)


def on_video(fn, x, shapes):
    """``fn`` applied to the video stream of the sampler's latent; an audio stream is left as it is.
    A packed audio-video latent is unpacked, changed and packed again (a new tensor)."""
    streams = split_streams(x, shapes)
    if len(streams) == 1:
        return fn(x)
    return packed(nest([fn(streams[0]), *streams[1:]]))


class SegmentedSampler(comfy.samplers.KSAMPLER):
    """A SAMPLER that runs ``base`` in segments, perturbing the latent where ``injection`` asks.

    Args:
        base: a ``comfy.samplers.KSAMPLER`` (what KSamplerSelect gives).
        injection: the perturbation, or None.
        offset: global step of the first σ this sampler gets; None to count across stages by σ.
        start_x: a model-space latent to start from instead of the sampler's initial latent
            (resuming a recorded run at a later step).
        keep_first_after: after this global step only batch item 0 continues (the seed
            ensemble's ``continue = primary``); None keeps the whole batch.

    Raises:
        ValueError: if ``base`` is not a k-diffusion sampler.
    """

    def __init__(self, base, injection: NoiseInjection | None, offset: int | None = None, start_x=None,
                 keep_first_after: int | None = None):
        if not isinstance(base, comfy.samplers.KSAMPLER):
            raise ValueError(f"sampler: {type(base).__name__} cannot be split into segments; use a k-diffusion "
                             "sampler from KSamplerSelect (euler, heun, dpmpp_2m, ...)")
        super().__init__(self._run, extra_options={}, inpaint_options=base.inpaint_options)
        self.base, self.injection, self.offset, self.start_x = base, injection, offset, start_x
        self.keep_first_after = keep_first_after
        self.clock = StageClock()
        self.last_x = None  # the model-space latent this sampler returned last (for stop/resume)

    def _run(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **_):
        offset = self.offset if self.offset is not None else self.clock.begin([float(s) for s in sigmas])[0]
        if self.start_x is not None:
            x = packed(self.start_x).to(device=x.device, dtype=x.dtype)
        end = offset + len(sigmas) - 1
        shapes = latent_shapes_of(model)
        if self.injection is not None:
            self._check(split_streams(x, shapes)[0], end if float(sigmas[-1]) == 0.0 else None)
        segments = self.injection.segments(offset, end) if self.injection else [(offset, end)]
        cut = self.keep_first_after
        if cut is not None and offset <= cut < end - 1:
            segments = [piece for a, b in segments for piece in ((a, min(b, cut + 1)), (max(a, cut + 1), b))
                        if piece[1] > piece[0]]
        for a, b in segments:
            if cut is not None and a > cut and x.shape[0] > 1:
                x = self._keep_first(model, x, extra_args)
            if self.injection is not None:
                x = on_video(lambda v, step=a: self.injection.apply(v, step), x, shapes)
            shifted = None if callback is None else (lambda d, k=a - offset: callback({**d, "i": d["i"] + k}))
            x = self.base.sampler_function(model, x, sigmas[a - offset:b - offset + 1], extra_args=extra_args,
                                           callback=shifted, disable=disable, **self.base.extra_options)
        self.last_x = x
        return x

    @staticmethod
    def _keep_first(model, x, extra_args):
        """Drop every batch item but the first, in the latent and the sampler's inpaint state."""
        for name in ("latent_image", "noise"):
            value = getattr(model, name, None)
            if value is not None and getattr(value, "shape", (0,))[0] == x.shape[0]:
                setattr(model, name, value[:1])
        mask = (extra_args or {}).get("denoise_mask")
        if mask is not None and mask.shape[0] == x.shape[0]:
            extra_args["denoise_mask"] = mask[:1]
        return x[:1]

    def _check(self, x, total_steps: int | None) -> None:
        """Fail before the model runs when the injection cannot apply to this latent or schedule."""
        frames = x.shape[2] if x.ndim == 5 else 1
        self.injection.validate(total_steps if total_steps is not None else self.injection.index + 1, frames)


class CoSNoiseInjection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSNoiseInjection",
            display_name="CoS Noise Injection",
            category="Chain-of-Steps/perturb",
            description=("Breaks the denoising trajectory (paper Sec. 3.2, Fig. 3a). 'noise at step' replaces the "
                         "latent of every frame entering step s by N(0, I); 'noise at frame' replaces latent frame f "
                         "before every step. The paper finds step noise far more damaging: reasoning runs along "
                         "the steps (Chain-of-Steps), not along the frames."),
            inputs=[
                io.Combo.Input("mode", options=["step", "frame"], default="step",
                               tooltip="step: all frames at one step; frame: one latent frame at every step."),
                io.Int.Input("index", default=10, min=0, max=10000,
                             tooltip="The global step s (mode step, 0 = noisiest) or the latent frame f (mode "
                             "frame). Wan latent frame f covers pixel frames 4f-3..4f (LTX-2: 8f-7..8f); frame 0 is "
                             "pixel frame 0. With LTX-2 audio-video latents only the video is perturbed."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="λ: 1 replaces the latent by noise; smaller values blend (1-λ)·x + λ·ε."),
                io.Int.Input("noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the injected noise (each step gets its own draw)."),
                io.Sampler.Input("sampler", optional=True,
                                 tooltip="The SAMPLER to wrap for SamplerCustomAdvanced (from KSamplerSelect); "
                                 "euler when empty."),
            ],
            outputs=[
                CosPerturb.Output(display_name="perturb", tooltip="For the CoS Sampler's 'perturb' input."),
                io.Sampler.Output(display_name="sampler", tooltip="A SAMPLER for SamplerCustomAdvanced that applies "
                                  "the injection; steps are counted across a two-stage graph by σ."),
            ],
        )

    @classmethod
    def validate_inputs(cls, mode=None, strength=None):
        if mode is not None and mode not in MODES:
            return f"mode: '{mode}' is not one of {list(MODES)}"
        if strength is not None and not 0.0 <= strength <= 1.0:
            return f"strength: λ = {strength} must lie in [0, 1]"
        return True

    @classmethod
    def execute(cls, mode, index, strength, noise_seed, sampler=None) -> io.NodeOutput:
        injection = NoiseInjection(mode, int(index), float(strength), int(noise_seed))
        if not 0.0 <= injection.strength <= 1.0:
            raise ValueError(f"strength: λ = {strength} must lie in [0, 1]")
        base = sampler if sampler is not None else comfy.samplers.sampler_object("euler")
        return io.NodeOutput(injection, SegmentedSampler(base, injection))
