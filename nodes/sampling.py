"""Running Wan2.2's two experts (or one model) as ComfyUI's two-KSamplerAdvanced template does.

One model (Wan2.1, Wan2.2-5B, LTX-2) is a single stage. An LTX-2 audio-video LATENT (a
NestedTensor of video and audio) stays nested: ComfyUI's sampler packs and unpacks it itself.

Shared by the CoS Sampler and the sweeps (information flow). A :class:`Run` is planned once
(schedule, expert split, initial noise) and sampled by :func:`sample_run`, one sampler stage per
expert, through ``comfy.sample.sample_custom`` with explicit σ slices: the same arithmetic as
KSamplerAdvanced (stage 1: σ[0:k+1] with leftover noise; stage 2: σ[k:], no new noise).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from ..cos_core.perturb import NoiseInjection
from ..cos_core.schedule import plan_stages, switch_step
from .adapters import check_expert_pair, require_flow_model, require_video_latent, split_streams
from .noise import SegmentedSampler

SWITCH_MODES = ["boundary sigma", "step"]


def full_schedule(model, steps: int, sampler_name: str, scheduler: str) -> torch.Tensor:
    """The σ schedule ComfyUI's KSampler uses for ``model`` (S+1 values, last 0)."""
    return comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=1.0, model_options=model.model_options).sigmas.cpu()


@dataclass
class Run:
    """A planned sampling run: models per expert, conditioning, schedule and initial noise."""

    models: dict
    positive: list
    negative: list
    cfg: float
    sampler_name: str
    scheduler: str
    seed: int
    sigmas: torch.Tensor
    stages: list
    latent: dict
    latent_image: torch.Tensor
    noise: torch.Tensor
    switch: int | None
    meta: dict = field(default_factory=dict)
    sampler: object = None

    @property
    def total_steps(self) -> int:
        return len(self.sigmas) - 1

    def model_of(self, expert: str):
        return self.models[expert]


def plan_run(model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, switch_mode="step",
             boundary=0.9, switch_at=None, model_low=None, noise=None, sampler=None) -> Run:
    """Check the inputs and plan a run.

    Raises:
        ValueError: naming the input, for a model without an adapter, a non-flow model, a
            non-video latent, or a low-noise expert for a family without experts (LTX-2).
    """
    models = {"model_high": model_high} | ({"model_low": model_low} if model_low is not None else {})
    adapter = check_expert_pair(model_high, model_low)
    for name, model in models.items():
        require_flow_model(model, name)
    require_video_latent(latent, model_high, "latent", adapter)
    latent_image = comfy.sample.fix_empty_latent_channels(
        model_high, latent["samples"], latent.get("downscale_ratio_spacial"), latent.get("downscale_ratio_temporal"))
    if noise is not None:
        initial_noise, seed = noise.generate_noise({**latent, "samples": latent_image}), noise.seed
    else:
        initial_noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    streams = split_streams(latent_image)
    sigmas = full_schedule(model_high, steps, sampler_name, scheduler)
    two = model_low is not None
    if two:
        switch = switch_at if switch_mode == "step" else switch_step([float(s) for s in sigmas], boundary)
        if not 0 <= switch <= steps:
            raise ValueError(f"switch_step: {switch} is outside 0..{steps}")
    else:
        switch = None
    stages = plan_stages(steps, switch if two else steps, two)
    by_expert = {"single": model_high, "high": model_high, "low": model_low}
    info = adapter.latent_info(model_high)
    meta = {"latent_format": info.name, "latent_shape": list(streams[0].shape),
            "audio_latent_shape": list(streams[1].shape) if len(streams) > 1 else None,
            "sigmas": [float(s) for s in sigmas], "total_steps": steps, "seed": int(seed), "cfg": cfg,
            "sampler": sampler_name, "scheduler": scheduler, "experts": [e for e, _, _ in stages],
            "stage_starts": [a for _, a, _ in stages], "switch_step": switch,
            "boundary": boundary if two and switch_mode != "step" else None}
    return Run({e: by_expert[e] for e, _, _ in stages}, positive, negative, cfg, sampler_name, scheduler, int(seed),
               sigmas, stages, latent, latent_image, initial_noise, switch, meta, sampler)


@dataclass
class Stop:
    """Where a run stopped: resume at ``next_step`` from ``x`` (model space) or, at a stage start,
    from ``latent`` (latent space, what the stage returned, exactly as KSamplerAdvanced passes it on)."""

    next_step: int
    x: torch.Tensor | None
    latent: torch.Tensor


def sample_run(run: Run, stage_callback=None, injection: NoiseInjection | None = None, start_step: int = 0,
               start_x: torch.Tensor | None = None, start_latent: torch.Tensor | None = None,
               stop_after: int | None = None) -> tuple[torch.Tensor, Stop | None]:
    """Sample a planned run; returns (final latent in latent space like KSamplerAdvanced, stop or None).

    Args:
        stage_callback: ``fn(stage_index, expert, start, end, model) -> callback or None`` giving a
            ComfyUI sampler callback per stage (stage-local steps, as ComfyUI calls it).
        injection: noise injection applied on the trajectory itself (see :mod:`.noise`).
        start_step: resume at this global step, from ``start_x`` (the model-space latent entering it,
            when it lies inside a stage) or ``start_latent`` (a stage's output latent, when it is the
            first step of a stage). Earlier steps are not recomputed.
        stop_after: stop after this global step; the returned latent is the stage's output and the
            :class:`Stop` holds what resuming needs.
    """
    disable_pbar = not comfy.utils.PROGRESS_BAR_ENABLED
    samples = run.latent_image if start_latent is None else start_latent
    noise_mask = run.latent.get("noise_mask")
    last = run.total_steps - 1 if stop_after is None else min(stop_after, run.total_steps - 1)
    first, stop = True, None
    for index, (expert, start, end) in enumerate(run.stages):
        if end <= start_step or start > last:
            continue
        begin, finish = max(start, start_step), min(end, last + 1)
        model = run.model_of(expert)
        callback = stage_callback(index, expert, begin, finish, model) if stage_callback else None
        base = run.sampler if run.sampler is not None else comfy.samplers.sampler_object(run.sampler_name)
        resume = start_x if first else None
        sampler = base
        if injection is not None or resume is not None or finish < end:
            sampler = SegmentedSampler(base, injection, offset=begin, start_x=resume)
        noise = run.noise if (first and begin == 0) else comfy.sample.prepare_empty_noise(samples)
        samples = comfy.sample.sample_custom(model, noise, run.cfg, sampler, run.sigmas[begin:finish + 1],
                                             run.positive, run.negative, samples, noise_mask=noise_mask,
                                             callback=callback, disable_pbar=disable_pbar, seed=run.seed)
        first = False
        if finish < run.total_steps and finish == last + 1:
            inner = sampler.last_x if isinstance(sampler, SegmentedSampler) else None
            stop = Stop(finish, None if finish == end else inner.detach().to("cpu"), samples)
    return samples, stop
