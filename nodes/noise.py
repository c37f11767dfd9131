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
"""
from __future__ import annotations

import comfy.samplers

from ..cos_core.clock import StageClock
from ..cos_core.perturb import NoiseInjection


class SegmentedSampler(comfy.samplers.KSAMPLER):
    """A SAMPLER that runs ``base`` in segments, perturbing the latent where ``injection`` asks.

    Args:
        base: a ``comfy.samplers.KSAMPLER`` (what KSamplerSelect gives).
        injection: the perturbation, or None.
        offset: global step of the first σ this sampler gets; None to count across stages by σ.
        start_x: a model-space latent to start from instead of the sampler's initial latent
            (resuming a recorded run at a later step).

    Raises:
        ValueError: if ``base`` is not a k-diffusion sampler.
    """

    def __init__(self, base, injection: NoiseInjection | None, offset: int | None = None, start_x=None):
        if not isinstance(base, comfy.samplers.KSAMPLER):
            raise ValueError(f"sampler: {type(base).__name__} cannot be split into segments; use a k-diffusion "
                             "sampler from KSamplerSelect (euler, heun, dpmpp_2m, ...)")
        super().__init__(self._run, extra_options={}, inpaint_options=base.inpaint_options)
        self.base, self.injection, self.offset, self.start_x = base, injection, offset, start_x
        self.clock = StageClock()

    def _run(self, model, x, sigmas, extra_args=None, callback=None, disable=None, **_):
        offset = self.offset if self.offset is not None else self.clock.begin([float(s) for s in sigmas])[0]
        if self.start_x is not None:
            x = self.start_x.to(device=x.device, dtype=x.dtype)
        end = offset + len(sigmas) - 1
        segments = self.injection.segments(offset, end) if self.injection else [(offset, end)]
        for a, b in segments:
            if self.injection is not None:
                x = self.injection.apply(x, a)
            shifted = None if callback is None else (lambda d, k=a - offset: callback({**d, "i": d["i"] + k}))
            x = self.base.sampler_function(model, x, sigmas[a - offset:b - offset + 1], extra_args=extra_args,
                                           callback=shifted, disable=disable, **self.base.extra_options)
        return x
