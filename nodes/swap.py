"""CoS Layer Swap (paper Sec. 5.2, Fig. 6b): the causal test of layer specialisation.

At step s (default the first) and block k, the original run's block output is replaced by the one
recorded from an alternative run (another image or prompt, same shapes): Ũ⁽ᵏ⁾ ← U_alt⁽ᵏ⁾, inside
each CFG half, every other block untouched. Sweeping k shows the layer where the outcome flips
from the original to the alternative (the paper finds layer 20/21 for Wan2.2).

The sweep runs the alternative once with a raw-state probe on the swept blocks at step s, then the
original once, then one swapped original per layer: 2 + |layers| trajectories. The recorded
states take 2 halves × F·H·W × D × 2 bytes per layer (bf16): 671 MB per layer, 26.8 GB for all 40
layers of Wan2.2 A14B at 81 frames 480×832; they live in host memory and move to the GPU one
block at a time.
"""
from __future__ import annotations

import json

import torch
from comfy_api.latest import io, ui

from ..cos_core.clock import StageClock
from ..cos_core.render import pil_to_tensor
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from ..cos_core.swap_plots import swap_figure
from ..cos_core.trace import Trace
from .adapters import Adapter, adapter_for, call_sigma, cfg_halves
from .decode import StepDecoder
from .probe import ProbeState, patch_for_probe
from .patching import patched_clone
from .recorder import StepSelection, TraceHandle, X0Recorder
from .sampler import check_settings, run_inputs, run_optional_inputs
from .sampling import plan_run, sample_run

WRAPPER_KEY = "chain_of_steps.layer_swap"


class SwapState:
    """Replaces block ``layer``'s output at global ``step`` with states recorded from another run."""

    def __init__(self, adapter: Adapter, alternative: Trace, step: int, layer: int):
        self.adapter, self.alternative, self.step, self.layer = adapter, alternative, step, layer
        self.clock = StageClock()
        self.swaps = 0

    def block_hook(self):
        def hook(out, options):
            if self.clock.step_of(call_sigma(options)) != self.step:
                return out
            return self.adapter.with_video(out, self.swapped(self.adapter.video_hidden(out), options))

        return hook

    def swapped(self, hidden: torch.Tensor, options: dict) -> torch.Tensor:
        offset, grid = self.adapter.token_grid(options, hidden)
        count = grid[0] * grid[1] * grid[2]
        record = self.alternative[self.step] if self.step in self.alternative else None
        pieces = []
        for half, rows in cfg_halves(options.get("cond_or_uncond"), hidden.shape[0]):
            name = f"raw/L{self.layer:02d}/{half}"
            if record is None or name not in record.tensors:
                raise ValueError(f"alternative: no recorded {half} states of layer {self.layer} at step {self.step}; "
                                 "record the alternative with the same cfg (both CFG halves)")
            alt = record.tensors[name]
            mine = hidden[rows]
            if alt.shape[0] != mine.shape[0] or alt.shape[1:-1] != tuple(grid) or alt.shape[-1] != mine.shape[-1]:
                raise ValueError(f"alternative: its states {tuple(alt.shape)} do not match this run's "
                                 f"(batch {mine.shape[0]}, grid {tuple(grid)}, width {mine.shape[-1]}); use latents "
                                 "of the same size and batch")
            piece = mine.clone()
            piece[:, offset:offset + count] = alt.reshape(mine.shape[0], count, -1).to(mine.device, mine.dtype)
            pieces.append(piece)
        self.swaps += 1
        return torch.cat(pieces)

    def outer_sample(self):
        def wrapper(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
            self.clock.begin([float(s) for s in sigmas])
            return executor(noise, latent_image, sampler, sigmas, *args, **kwargs)

        return wrapper


def patch_for_swap(model, state: SwapState):
    return patched_clone(model, WRAPPER_KEY, state.outer_sample(), state.adapter, {state.layer: state.block_hook()})


def record_alternative(run, adapter: Adapter, layers: list[int], step: int) -> Trace:
    """Run the alternative once, keeping the raw block outputs of ``layers`` at ``step`` (both halves)."""
    handle = TraceHandle(StepSelection(str(step)))
    probe = ProbeState(handle, adapter, layers, ("cond", "uncond"), energy=False, pca=False, raw=True,
                       raw_cap_mib=1 << 30, shared_basis=True)
    patched = {expert: patch_for_probe(model, probe, layers, expert) for expert, model in run.models.items()}
    original = run.models
    run.models = patched
    try:
        sample_run(run)
    finally:
        run.models = original
    return handle.snapshot()


class CoSLayerSwapSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSLayerSwapSweep",
            display_name="CoS Layer Swap Sweep",
            category="Chain-of-Steps/probe",
            description=("The paper's causal test of layer specialisation (Sec. 5.2, Fig. 6b): at one step, replace "
                         "one block's output of the original run by the alternative run's, for each chosen block, "
                         "and show every outcome beside the original and the alternative, with the distance of "
                         "each to both. The layer where the outcome flips is where the decision is carried."),
            inputs=[
                *run_inputs(),
                io.Conditioning.Input("alt_positive", tooltip="The alternative run's positive conditioning (another "
                                      "image or prompt, e.g. a second WanImageToVideo)."),
                io.Conditioning.Input("alt_negative", tooltip="The alternative run's negative conditioning."),
                io.Int.Input("swap_step", default=0, min=0, max=10000,
                             tooltip="The global step where the swap happens (paper: the first, 0)."),
                io.String.Input("layers", default="all", tooltip="Blocks to sweep: 'all', '0-39', '15-25'."),
                io.Int.Input("show_frame", default=-1, min=-1024, max=1024,
                             tooltip="Which latent frame of each final x̂0 to show (-1: the last)."),
                *run_optional_inputs(),
                io.Vae.Input("vae", optional=True, tooltip="Decode the shown frames with the VAE (else latent2rgb)."),
                io.Latent.Input("alt_latent", optional=True,
                                tooltip="The alternative's latent (default: the original's); same size and batch."),
            ],
            outputs=[
                io.Image.Output(display_name="IMAGE", tooltip="Original, alternative and every swapped outcome, "
                                "with the distance curves."),
                io.String.Output(display_name="numbers", tooltip="Distances per layer and the sweep's cost, JSON."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, steps=None, switch_mode=None, boundary=None, switch_step=None, swap_step=None,
                        layers=None):
        message = check_settings(steps, "all", switch_mode, boundary, switch_step)
        if message is not True:
            return message
        if swap_step is not None and steps is not None and not 0 <= swap_step < steps:
            return f"swap_step: {swap_step} is outside 0..{steps - 1}"
        try:
            if layers is not None:
                spec_ranges(layers, "layers")
        except SpecError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, switch_mode,
                boundary, switch_step, alt_positive, alt_negative, swap_step, layers, show_frame, model_low=None,
                noise=None, sampler=None, vae=None, alt_latent=None) -> io.NodeOutput:
        message = cls.validate_inputs(steps=steps, swap_step=swap_step, layers=layers)
        if message is not True:
            raise ValueError(message)
        adapter = adapter_for(model_high, "model_high")
        chosen = parse_spec(layers, adapter.num_blocks(model_high), name="layers")

        def plan(pos, neg, lat):
            return plan_run(model_high, pos, neg, lat, seed, steps, cfg, sampler_name, scheduler, switch_mode,
                            boundary, switch_step, model_low=model_low, noise=noise, sampler=sampler)

        original = plan(positive, negative, latent)
        alt_run = plan(alt_positive, alt_negative, alt_latent if alt_latent is not None else latent)
        if tuple(alt_run.latent_image.shape) != tuple(original.latent_image.shape):
            raise ValueError(f"alt_latent: shape {tuple(alt_run.latent_image.shape)} differs from the original's "
                             f"{tuple(original.latent_image.shape)}")
        recorded = record_alternative(alt_run, adapter, chosen, swap_step)

        def final_x0(run) -> torch.Tensor:
            trace = Trace(dict(run.meta))
            recorder = X0Recorder(trace, StepSelection("-1"))
            sample_run(run, lambda i, e, a, b, m: recorder.stage_callback(run.sigmas[a:b + 1], a, i, e,
                                                                         m.model.process_latent_out))
            return recorder.finish(run.total_steps)[run.total_steps - 1].tensors["x0_hat"]

        outcomes = {"original": final_x0(original), "alternative": final_x0(alt_run)}
        models = original.models
        for layer in chosen:
            state = SwapState(adapter, recorded, swap_step, layer)
            original.models = {expert: patch_for_swap(model, state) for expert, model in models.items()}
            outcomes[layer] = final_x0(original)
        original.models = models

        def distance(a, b):
            return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))

        to_original = [distance(outcomes[k], outcomes["original"]) for k in chosen]
        to_alternative = [distance(outcomes[k], outcomes["alternative"]) for k in chosen]
        decoder = StepDecoder(Trace({"latent_format": original.meta["latent_format"]}),
                              "vae" if vae is not None else "latent2rgb (fast)", vae)
        frame = show_frame % outcomes["original"].shape[2]
        frames = {key: decoder.decode(x0[0], [frame])[0] for key, x0 in outcomes.items()}
        bytes_per_layer = sum(t.numel() * t.element_size() for t in recorded.records()[0].tensors.values()) \
            / max(1, len(chosen))
        numbers = {"swap_step": swap_step, "layers": chosen, "distance_to_original": to_original,
                   "distance_to_alternative": to_alternative, "trajectories": 2 + len(chosen),
                   "recorded_bytes_per_layer": bytes_per_layer,
                   "measure": "relative L2 of the final x̂0 (latent space)"}
        title = (f"Layer swap at step {swap_step}: block k's output ← the alternative's "
                 f"({2 + len(chosen)} trajectories)")
        image = pil_to_tensor(swap_figure(frames, chosen, to_original, to_alternative, title))
        return io.NodeOutput(image, json.dumps(numbers), ui=ui.PreviewImage(image, cls=cls))
