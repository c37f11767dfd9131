"""CoS Seed Ensemble: K seeds sample as one batch and share their mid-layer states at early steps.

See :mod:`cos_core.ensemble` for the definition and its two readings. The node patches clones of
the experts with ``patches_replace`` on the window's blocks (active only at the ensemble steps,
found by σ through a :class:`~cos_core.clock.StageClock`), repeats the latent K times, gives a
NOISE whose item k is exactly what seed k alone would give, and a SAMPLER that, with
``continue = primary``, drops members 1…K−1 after the last ensemble step, so the cost is about
1 + (K − 1)·|steps| / S baseline runs.

LTX-2: the merge acts on the video stream's tokens (all of them, guide tokens included); an
audio-video model's audio stream is left as each member has it, and its members' audio noise is
also each seed's own. Dropping members cuts both streams (the batch dimension).
"""
from __future__ import annotations

import comfy.nested_tensor
import comfy.sample
import comfy.samplers
import torch
from comfy_api.latest import io

from ..cos_core.clock import StageClock
from ..cos_core.ensemble import MERGES, member_seeds, primary_cost, pull_to_mean
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from .adapters import Adapter, call_sigma, cfg_halves, check_expert_pair, nest, require_flow_model, split_streams
from .noise import SegmentedSampler
from .patching import patched_clone
from .recorder import StepSelection

WRAPPER_KEY = "chain_of_steps.seed_ensemble"
CONTINUE = ["primary", "all"]


class MemberNoise:
    """A NOISE whose batch item k is ``comfy.sample.prepare_noise(latent[k:k+1], seeds[k])``."""

    def __init__(self, seeds: list[int]):
        self.seeds = list(seeds)
        self.seed = self.seeds[0]

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        if samples.shape[0] != len(self.seeds):
            raise ValueError(f"noise: {len(self.seeds)} member seeds for a latent batch of {samples.shape[0]}; "
                             "use the LATENT from CoS Seed Ensemble")
        members = [comfy.sample.prepare_noise(samples[k:k + 1], s) for k, s in enumerate(self.seeds)]
        if getattr(samples, "is_nested", False):  # LTX-2 audio-video: each member's video and audio noise
            return comfy.nested_tensor.cat_nested(members)
        return torch.cat(members)


class EnsembleState:
    """The merge applied inside the window's blocks at the ensemble steps."""

    def __init__(self, adapter: Adapter, members: int, steps: StepSelection, layers: list[int], alpha: float,
                 merge: str):
        self.adapter, self.members, self.steps = adapter, members, steps
        self.layers, self.alpha, self.merge = list(layers), float(alpha), merge
        self.clock = StageClock()
        self.window_sum: dict[str, torch.Tensor] = {}
        self.merged_calls = 0

    def block_hook(self, layer: int):
        def hook(out, options):
            step = self.clock.step_of(call_sigma(options))
            if step is None or not self.steps.may_need(step) or self.alpha == 0.0 or self.members == 1:
                return out
            merged = self._merge(layer, self.adapter.video_hidden(out), options)
            return self.adapter.with_video(out, merged)

        return hook

    def _merge(self, layer: int, hidden: torch.Tensor, options: dict) -> torch.Tensor:
        pieces = []
        for half, rows in cfg_halves(options.get("cond_or_uncond"), hidden.shape[0]):
            members = hidden[rows]
            if members.shape[0] != self.members:
                return hidden  # not the ensemble batch (e.g. after the primary member continued alone)
            if self.merge == MERGES[0]:
                pieces.append(pull_to_mean(members, self.alpha))
                continue
            total = self.window_sum.get(half) if layer != self.layers[0] else None
            total = members.float().mean(dim=0) + (total if total is not None else 0)
            self.window_sum[half] = total
            if layer == self.layers[-1]:
                pieces.append(pull_to_mean(members, self.alpha, total / len(self.layers)))
            else:
                pieces.append(members)
        self.merged_calls += 1
        return torch.cat(pieces)

    def outer_sample(self):
        def wrapper(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
            self.clock.begin([float(s) for s in sigmas])
            if float(sigmas[-1]) == 0.0:  # this stage ends the run: its length is known now
                self.steps.resolve(self.clock.total_steps)  # SpecError names 'steps' if past the end
            self.window_sum.clear()
            return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

        return wrapper


def patch_for_ensemble(model, state: EnsembleState):
    return patched_clone(model, WRAPPER_KEY, state.outer_sample(), state.adapter,
                         {layer: state.block_hook(layer) for layer in state.layers})


def _repeat(x, members: int):
    """``x`` repeated ``members`` times along the batch; each stream of an audio-video NestedTensor."""
    streams = [t.repeat(members, *([1] * (t.ndim - 1))) for t in split_streams(x)]
    return nest(streams)


def repeat_latent(latent: dict, members: int) -> dict:
    samples = latent["samples"]
    if samples.shape[0] != 1:
        raise ValueError(f"latent: the ensemble builds its own batch of K members from a batch of 1, "
                         f"got a batch of {samples.shape[0]}")
    out = {k: v for k, v in latent.items() if k != "batch_index"}
    out["samples"] = _repeat(samples, members)
    mask = latent.get("noise_mask")
    if (isinstance(mask, torch.Tensor) or getattr(mask, "is_nested", False)) and mask.shape[0] == 1:
        out["noise_mask"] = _repeat(mask, members)
    return out


class CoSSeedEnsemble(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSSeedEnsemble",
            display_name="CoS Seed Ensemble",
            category="Chain-of-Steps/ensemble",
            description=("The paper's training-free ensemble (Sec. 6): K seeds run as one batch; at the first "
                         "step their block outputs in the reasoning layers 20-29 are averaged (VBVR-Bench "
                         "0.685 → 0.716 for Wan2.2). Feed model, latent, noise and sampler to the CoS Sampler "
                         "(or SamplerCustomAdvanced)."),
            inputs=[
                io.Model.Input("model", tooltip="The model (Wan2.2's high-noise expert: step 0 runs there)."),
                io.Latent.Input("latent", tooltip="A video latent with batch 1; it is repeated for the K members."),
                io.Int.Input("members", default=3, min=1, max=16, tooltip="K, the number of seeds (paper: 3)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Base seed: member k uses seed + k (unless 'seeds' lists them)."),
                io.String.Input("steps", default="0", tooltip="Ensemble steps (global, 0 = first; paper: 0)."),
                io.String.Input("layers", default="20-29", tooltip="The layer window (paper: 20-29; Tab. 2 compares "
                                "0-9 and 0-39)."),
                io.Float.Input("alpha", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="α: 1 replaces each member's output by the mean; 0 turns the ensemble off."),
                io.Combo.Input("merge", options=list(MERGES), default=MERGES[0],
                               tooltip="per layer: average the members at every layer of the window; window mean: "
                               "average once at the window's last layer over members and layers."),
                io.Combo.Input("continue_with", options=CONTINUE, default="primary",
                               tooltip="primary: after the last ensemble step only member 0 continues (one video, "
                               "cost ≈ 1 + (K-1)·|steps|/S runs); all: every member continues (K videos)."),
                io.String.Input("seeds", default="", advanced=True,
                                tooltip="Explicit member seeds, e.g. '11, 42, 7' (K of them)."),
                io.Model.Input("model_low", optional=True, tooltip="Wan2.2's low-noise expert."),
                io.Sampler.Input("sampler", optional=True, tooltip="The SAMPLER to run (euler when empty)."),
            ],
            outputs=[
                io.Model.Output(display_name="model"),
                io.Model.Output(display_name="model_low", tooltip="Patched copy of 'model_low', or of 'model' when "
                                "model_low is not connected."),
                io.Latent.Output(display_name="latent", tooltip="The latent repeated for the K members."),
                io.Noise.Output(display_name="noise", tooltip="Member k's noise is exactly what its seed alone gives."),
                io.Sampler.Output(display_name="sampler", tooltip="Drops members 1..K-1 after the last ensemble step "
                                  "when continue_with is primary."),
            ],
        )

    @classmethod
    def validate_inputs(cls, steps=None, layers=None, alpha=None, merge=None, continue_with=None):
        try:
            if steps is not None:
                ranges = spec_ranges(steps, "steps")
                if ranges is None or any(a < 0 or b < 0 for a, b in ranges):
                    return "steps: list the ensemble steps counted from 0, e.g. '0' or '0-2' (not 'all' or negatives)"
            if layers is not None:
                spec_ranges(layers, "layers")
        except SpecError as err:
            return str(err)
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            return f"alpha: α = {alpha} must lie in [0, 1]"
        if merge is not None and merge not in MERGES:
            return f"merge: '{merge}' is not one of {list(MERGES)}"
        if continue_with is not None and continue_with not in CONTINUE:
            return f"continue_with: '{continue_with}' is not one of {CONTINUE}"
        return True

    @classmethod
    def execute(cls, model, latent, members, seed, steps, layers, alpha, merge, continue_with, seeds="",
                model_low=None, sampler=None) -> io.NodeOutput:
        message = cls.validate_inputs(steps=steps, layers=layers, alpha=alpha, merge=merge,
                                      continue_with=continue_with)
        if message is not True:
            raise ValueError(message)
        adapter = check_expert_pair(model, model_low, "model_low", "model")
        require_flow_model(model, "model")
        window = parse_spec(layers, adapter.num_blocks(model), name="layers")
        chosen_steps = StepSelection(steps, "steps")
        seed_list = member_seeds(seed, members, seeds)
        state = EnsembleState(adapter, members, chosen_steps, window, alpha, merge)
        high = patch_for_ensemble(model, state)
        low = patch_for_ensemble(model_low if model_low is not None else model, state)
        base = sampler if sampler is not None else comfy.samplers.sampler_object("euler")
        last_step = max(b for _, b in spec_ranges(steps, "steps"))
        keep = last_step if continue_with == "primary" and members > 1 else None
        out_sampler = SegmentedSampler(base, None, keep_first_after=keep) if keep is not None else base
        return io.NodeOutput(high, low, repeat_latent(latent, members), MemberNoise(seed_list), out_sampler)


__all__ = ["CoSSeedEnsemble", "MemberNoise", "EnsembleState", "primary_cost"]
