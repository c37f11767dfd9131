"""CoS Layer Probe: hooks chosen DiT blocks at chosen steps and keeps small per-layer summaries.

A ``patches_replace["dit"][("double_block", i)]`` function on a *clone* of the model runs the
real block, then reduces its output on the device: layer energy (paper Sec. 5.1), PCA colours,
or (capped) raw states. Results stay on the device until the step is over and then move to the
CPU in one go. An OUTER_SAMPLE wrapper gives every stage its global step offset and flushes or
drops pending results in ``finally``, so an error or an interrupt leaves nothing behind; the
user's MODEL is never modified.

LTX-2: the probe reads the video stream of the block output (LTXAV blocks return a (video,
audio) tuple) on the token grid the LTX adapter records; LTX blocks update their input in place,
so everything kept is reduced or copied before the next block runs.
"""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..cos_core.energy import token_energy
from ..cos_core.pca import fit_basis, project_rgb
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from ..cos_core.transfer import to_cpu_grouped
from .adapters import CFG_HALF_NAMES, Adapter, call_sigma, cfg_halves, check_expert_pair, require_flow_model
from .patching import patched_clone
from .recorder import StepSelection, TraceHandle
from .types import CosTrace

WRAPPER_KEY = "chain_of_steps.layer_probe"
HALVES = {"cond": ("cond",), "uncond": ("uncond",), "both": ("cond", "uncond")}
PCA_BASES = ["shared (first probed step)", "per step"]


class ProbeState:
    """What one CoS Layer Probe node records, shared by the patched experts."""

    def __init__(self, handle: TraceHandle, adapter: Adapter, layers: list[int], halves, energy: bool, pca: bool,
                 raw: bool, raw_cap_mib: int, shared_basis: bool):
        self.handle, self.adapter, self.layers = handle, adapter, list(layers)
        self.temporal_stride = 1
        self.halves, self.energy, self.pca, self.raw = set(halves), energy, pca, raw
        self.raw_cap = int(raw_cap_mib) * 2**20
        self.shared_basis = shared_basis
        self.bases = {}
        self.pending: dict[tuple[int, str], torch.Tensor] = {}
        self.pending_meta: dict[int, tuple[float, int, str]] = {}
        self.raw_bytes = 0
        self.evaluations = 0
        self.chunks_run: set[int] = set()  # CFG chunks the sampler evaluated (0 cond, 1 uncond)

    def reset(self):
        self.chunks_run.clear()
        self.bases.clear()
        self.pending.clear()
        self.pending_meta.clear()
        self.raw_bytes = 0

    def observe(self, layer: int, out: dict, transformer_options: dict) -> None:
        """Reduce one block output; called inside the sampler, must stay cheap."""
        self.chunks_run.update(transformer_options.get("cond_or_uncond") or (0,))
        sigma = call_sigma(transformer_options)
        step = self.handle.step_of(sigma)
        if step is None or not self.handle.selection.may_need(step):
            return
        self.evaluations += 1
        if self.pending_meta and step not in self.pending_meta:
            self.flush()
        self.pending_meta[step] = (sigma, self.handle.stage, self.handle.expert)
        hidden = self.adapter.video_hidden(out)
        offset, grid = self.adapter.token_grid(transformer_options, hidden)
        count = grid[0] * grid[1] * grid[2]
        for half, rows in cfg_halves(transformer_options.get("cond_or_uncond"), hidden.shape[0]):
            if half not in self.halves:
                continue
            tokens = hidden[rows, offset:offset + count]
            name = f"L{layer:02d}/{half}"
            if self.energy:
                self.pending[(step, f"energy/{name}")] = token_energy(tokens, grid)
            if self.pca:
                key = (layer, half)
                basis = self.bases.get(key) if self.shared_basis else None
                if basis is None:
                    basis = self.bases[key] = fit_basis(tokens.reshape(-1, tokens.shape[-1]))
                rgb = project_rgb(tokens, basis).reshape(tokens.shape[0], *grid, 3)
                self.pending[(step, f"pca/{name}")] = rgb.to(torch.float16)
            if self.raw:
                self._keep_raw(step, name, tokens, grid)

    def _keep_raw(self, step, name, tokens, grid):
        size = tokens.numel() * tokens.element_size()
        key = (step, f"raw/{name}")
        if key not in self.pending and self.raw_bytes + size > self.raw_cap:
            raise MemoryError(
                f"raw_cap_mib: keeping raw states of {name} at step {step} would take "
                f"{(self.raw_bytes + size) / 2**20:.4g} MiB, over the cap of {self.raw_cap / 2**20:.4g} MiB; "
                "probe fewer layers or steps, raise the cap, or use energy/PCA instead")
        self.raw_bytes += 0 if key in self.pending else size
        self.pending[key] = tokens.detach().clone().reshape(tokens.shape[0], *grid, tokens.shape[-1])

    def flush(self) -> None:
        """Move finished results to the CPU trace (one transfer per dtype, once per step)."""
        for ((step, name), _), tensor in zip(self.pending.items(), to_cpu_grouped(list(self.pending.values()))):
            sigma, stage, expert = self.pending_meta[step]
            self.handle.trace.put(step, sigma, stage, expert, name, tensor)
        self.pending.clear()
        self.pending_meta.clear()

    def block_hook(self, layer: int):
        def hook(out, transformer_options):
            self.observe(layer, out, transformer_options)
            return out

        return hook

    def outer_sample(self, expert: str):
        def wrapper(executor, noise, latent_image, sampler, sigmas, *args, **kwargs):
            offset, _ = self.handle.begin_stage(sigmas, expert)
            if offset == 0:
                self.reset()
            self.handle.trace.meta.update(self.describe())
            try:
                result = executor(noise, latent_image, sampler, sigmas, *args, **kwargs)
            except BaseException:
                self.pending.clear()
                self.pending_meta.clear()
                raise
            self.flush()
            ran = sorted(self.chunks_run)
            self.handle.trace.meta["cfg_halves_run"] = [CFG_HALF_NAMES.get(c, f"cond{c}") for c in ran]
            return result

        return wrapper

    def describe(self) -> dict:
        return {"layers": self.layers, "temporal_stride": self.temporal_stride,
                "probe": {"halves": sorted(self.halves), "energy": self.energy, "pca": self.pca, "raw": self.raw,
                          "pca_basis": "shared" if self.shared_basis else "per step"}}


def patch_for_probe(model, state: ProbeState, layers: list[int], expert: str):
    """A clone of ``model`` with the probe on ``layers``; the input MODEL is left untouched."""
    return patched_clone(model, WRAPPER_KEY, state.outer_sample(expert), state.adapter,
                         {layer: state.block_hook(layer) for layer in layers})


class CoSLayerProbe(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSLayerProbe",
            display_name="CoS Layer Probe",
            category="Chain-of-Steps/probe",
            description=("Hooks chosen DiT blocks at chosen steps and records per-layer token energy and PCA "
                         "colours (paper Sec. 5.1: early layers perceive, middle layers 20-29 reason, late layers "
                         "consolidate). Works with the CoS Sampler and with ComfyUI's own samplers; connect "
                         "both Wan2.2 experts for one trace with global steps."),
            inputs=[
                io.Model.Input("model", tooltip="The model (or Wan2.2's high-noise expert) to probe."),
                io.String.Input("layers", default="0,10,20,30,39",
                                tooltip="Blocks to probe: 'all', '0,10,20,30,39' (the official default), '20-29'. "
                                "Wan2.2 A14B has 40 blocks (0-39), Wan2.1 1.3B and the 5B have 30, LTX-2 / 2.3 "
                                "have 48."),
                io.String.Input("steps", default="all",
                                tooltip="Global steps to probe: 'all', '0,10,20', '0-4', negatives from the end."),
                io.Combo.Input("cfg_half", options=list(HALVES), default="cond",
                               tooltip="Which CFG half to record: the positive prompt (cond, as in the paper), "
                               "the negative (uncond), or both. With cfg = 1 only cond exists."),
                io.Boolean.Input("energy", default=True, tooltip="Per-token L2 energy maps (F, H, W) per layer."),
                io.Boolean.Input("pca", default=True, tooltip="3-component PCA colour maps per layer."),
                io.Combo.Input("pca_basis", options=PCA_BASES, default=PCA_BASES[0],
                               tooltip="shared: one basis per layer fitted at the first probed step, so colours "
                               "compare across steps; per step: refit every step (the official tool's way)."),
                io.Boolean.Input("raw_states", default=False, advanced=True,
                                 tooltip="Also keep the whole block outputs (large: N×D per layer and step)."),
                io.Int.Input("raw_cap_mib", default=2048, min=1, max=1 << 20, advanced=True,
                             tooltip="Host memory limit for raw states; the run stops with a clear error before "
                             "going past it."),
                io.Model.Input("model_low", optional=True,
                               tooltip="Wan2.2's low-noise expert, sampled in a second stage."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="Probed copy of 'model'."),
                io.Model.Output(display_name="model_low", tooltip="Probed copy of 'model_low', or of 'model' when "
                                "model_low is not connected (for a two-stage graph of one model)."),
                CosTrace.Output(display_name="trace", tooltip="Filled while sampling; feed it to CoS Energy Maps "
                                "together with the sampler's LATENT on 'after'."),
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
    def validate_inputs(cls, layers=None, steps=None, cfg_half=None, pca_basis=None, raw_cap_mib=None):
        try:
            if layers is not None:
                spec_ranges(layers, "layers")
            if steps is not None:
                StepSelection(steps, "steps")
        except SpecError as err:
            return str(err)
        if cfg_half is not None and cfg_half not in HALVES:
            return f"cfg_half: '{cfg_half}' is not one of {list(HALVES)}"
        if pca_basis is not None and pca_basis not in PCA_BASES:
            return f"pca_basis: '{pca_basis}' is not one of {PCA_BASES}"
        if raw_cap_mib is not None and raw_cap_mib < 1:
            return "raw_cap_mib: must be at least 1"
        return True

    @classmethod
    def execute(cls, model, layers, steps, cfg_half, energy, pca, pca_basis, raw_states=False, raw_cap_mib=2048,
                model_low=None) -> io.NodeOutput:
        adapter = check_expert_pair(model, model_low, "model_low", "model")
        require_flow_model(model, "model")
        count = adapter.num_blocks(model)
        chosen = parse_spec(layers, count, name="layers")
        if model_low is not None and adapter.num_blocks(model_low) != count:
            raise ValueError("model_low: the two experts must be the same architecture with the same blocks")
        if not (energy or pca or raw_states):
            raise ValueError("energy, pca, raw_states: turn at least one of them on")
        handle = TraceHandle(StepSelection(steps, "steps"))
        state = ProbeState(handle, adapter, chosen, HALVES[cfg_half], energy, pca, raw_states, raw_cap_mib,
                           shared_basis=pca_basis == PCA_BASES[0])
        state.temporal_stride = adapter.latent_info(model).temporal_stride
        two = model_low is not None
        high = patch_for_probe(model, state, chosen, "high" if two else "single")
        # without model_low, the second output is another probed copy of 'model' (a two-stage graph of one model)
        low = patch_for_probe(model_low if two else model, state, chosen, "low" if two else "single")
        return io.NodeOutput(high, low, handle)
