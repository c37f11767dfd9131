"""GPU benchmark at full Wan2.2 A14B size: the pack's overheads as ratios against ComfyUI's stock sampler.

Builds ComfyUI's own ``comfy.ldm.wan.model.WanModel`` at the Wan2.2 A14B I2V configuration (40 blocks,
dim 5120, ffn 13824, 40 heads, in_dim 36, out_dim 16, text_dim 4096) directly on the GPU in bf16,
fills every weight with small random values (the memory starts uninitialised), and wraps it as a
ModelPatcher exactly as ``comfy.sd.load_diffusion_model_state_dict`` does for a Wan2.2 A14B I2V
checkpoint (detected as ``supported_models.WAN21_T2V`` with in_dim 36 → ``model_base.WAN21``),
then ``ModelSamplingSD3`` shift 5. One expert's weights serve both stages: the high- and
low-noise "experts" are two ModelPatcher clones of the same model, as two UNETLoaders would give.

In ONE run, for each frame count (small first, so every code path is warm before the big size),
it times with warm-up and repetitions (interleaved, alternating order):

  stock        two KSamplerAdvanced stages (ComfyUI's Wan2.2 template), cfg 3.5, euler/simple
  capture      + CoS Capture x̂0 (every step) on the same two KSamplerAdvanced stages
  cos_sampler  the CoS Sampler (x̂0 of every step, live preview of 4 frames)
               (cos_sampler_nopreview, not in the default list: the same with preview_frames 0)
  energy       + CoS Layer Probe: energy of all 40 layers at every step, cond half
  energy_pca   + a second CoS Layer Probe: PCA on layers 0,10,20,30,39 (shared basis)
  official     + an emulation of the official tool's hook: the cond half of 5 layers' outputs
               copied to the CPU as float32 at every step (``out.detach().cpu().float()``)
  ens_primary  CoS Seed Ensemble K=3, step 0, layers 20-29, continue 'primary' → CoS Sampler
  ens_all      the same with continue 'all'

and records wall time (ratios to stock), peak GPU memory (``torch.cuda.max_memory_allocated``,
reset per run), the host memory of each trace (``Trace.nbytes()``), then micro-benchmarks (one
block, layer energy, a layer's copy to the CPU, a PCA fit, linear CKA at 32,760 × 5120) and a
torch.profiler pass over the hooked configs. Results go to ``--out`` as JSON (written after
every run); ``--report FILE.json`` prints the Markdown tables used in BENCHMARKS.md.

Reproduce (see benchmarks/README.md for the device machine's set-up):

    PYTHONUNBUFFERED=1 python benchmarks/bench_wan_a14b.py --comfy /path/to/ComfyUI --out out/bench

``--preset tiny --device cpu`` runs the same code on a toy-width model as a smoke test.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import torch
except ImportError:  # --report reads a results file and needs no torch
    torch = None

REPO = Path(__file__).resolve().parent.parent
PACK_MODULE = "chain_of_steps_pack"

PRESETS = {
    # Wan2.2 A14B (each expert): the I2V checkpoint's layout (in_dim 36 = 16 latent + 4 mask + 16 image)
    "full": dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, out_dim=16, text_dim=4096),
    # a toy width with the same block count, for a CPU smoke test of the script itself
    "tiny": dict(dim=256, ffn_dim=512, num_heads=2, num_layers=40, in_dim=36, out_dim=16, text_dim=4096),
}
CONFIGS = ["stock", "capture", "cos_sampler", "cos_sampler_nopreview", "energy", "energy_pca", "official",
           "ens_primary", "ens_all"]
DEFAULT_CONFIGS = ["stock", "capture", "cos_sampler", "energy", "energy_pca", "official", "ens_primary", "ens_all"]
PCA_LAYERS = "0,10,20,30,39"
OFFICIAL_LAYERS = [0, 10, 20, 30, 39]
ENSEMBLE = dict(members=3, steps="0", layers="20-29")
TEXT_TOKENS = 512
CFG = 3.5
SEED = 42


# ---------------------------------------------------------------------------------------------
# set-up


def log(*parts):
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def setup_comfy(comfy_root: Path, device: str):
    """Put ComfyUI on sys.path and set its CLI defaults before comfy.model_management is imported."""
    if not (comfy_root / "comfy" / "sd.py").is_file():
        raise SystemExit(f"--comfy {comfy_root}: not a ComfyUI tree (no comfy/sd.py)")
    sys.path.insert(0, str(comfy_root))
    mod = sys.modules.get("nodes")  # the pack has a 'nodes' package too: ComfyUI's nodes.py must win
    if mod is not None and not str(getattr(mod, "__file__", "")).startswith(str(comfy_root)):
        del sys.modules["nodes"]
    from comfy.cli_args import args

    if device == "cpu":
        args.cpu = True
    else:
        # HIGH_VRAM: the model stays on the GPU (unet_offload_device() is the GPU), so a stage
        # switch between the two ModelPatcher clones never moves the 30.6 GiB of weights; this
        # also turns ComfyUI's dynamic-VRAM (aimdo) path off, as with any --highvram launch.
        args.highvram = True
    import comfy.model_management as mm
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm bars on the console (all configs alike)
    return mm


def load_pack():
    """Import the pack as ComfyUI does: from its ``__init__.py``, relative imports inside."""
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    spec = importlib.util.spec_from_file_location(PACK_MODULE, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    return module


def load_cos_core():
    """cos_core alone (plain torch), for --micro-only runs without ComfyUI."""
    name = "cos_core_standalone"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "cos_core" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "cos_core")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fill_random_(model: torch.nn.Module, seed: int = 0) -> None:
    """Small random weights, in place on the model's device (tools/tiny.py's scheme, gain 0.8):
    norm scales 1 + N(0, 0.02²), biases and modulations N(0, 0.02²), other weights N(0, 0.8²/fan_in)."""
    gen = None
    for name, p in model.named_parameters():
        if gen is None or gen.device != p.device:
            gen = torch.Generator(device=p.device).manual_seed(seed)
        with torch.no_grad():
            if name.endswith(("norm_q.weight", "norm_k.weight")) or ".norm" in name and name.endswith("weight") \
                    or name.endswith(("norm1.weight", "norm2.weight", "norm3.weight", "norm.weight")):
                p.normal_(1.0, 0.02, generator=gen)
            elif name.endswith("bias") or p.ndim <= 1 or name.endswith("modulation"):
                p.normal_(0.0, 0.02, generator=gen)
            else:
                p.normal_(0.0, 0.8 / math.sqrt(math.prod(p.shape[1:])), generator=gen)


def build_models(preset: str, device: torch.device, mm):
    """The ModelPatcher pair (high, low) over one WanModel, as load_diffusion_model_state_dict builds it."""
    import comfy.model_detection
    import comfy.model_patcher
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    p = PRESETS[preset]
    # what comfy.model_detection.detect_unet_config returns for a Wan2.2 A14B I2V checkpoint
    unet_config = {"image_model": "wan2.1", "model_type": "t2v", "dim": p["dim"], "out_dim": p["out_dim"],
                   "num_heads": p["num_heads"], "ffn_dim": p["ffn_dim"], "num_layers": p["num_layers"],
                   "patch_size": (1, 2, 2), "freq_dim": 256, "window_size": (-1, -1), "qk_norm": True,
                   "cross_attn_norm": True, "eps": 1e-6, "in_dim": p["in_dim"]}
    model_config = comfy.model_detection.model_config_from_unet_config(unet_config)
    dtype = torch.bfloat16
    manual_cast = mm.unet_manual_cast(dtype, device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(dtype, manual_cast, device=device)
    t0 = time.perf_counter()
    model = model_config.get_model({}, "", device=device)  # weights allocated on the GPU, uninitialised
    fill_random_(model.diffusion_model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    offload = mm.unet_offload_device()
    base = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=offload)
    high = ModelSamplingSD3().patch(base, 5.0)[0]
    low = ModelSamplingSD3().patch(base, 5.0)[0]
    params = sum(t.numel() for t in model.diffusion_model.parameters())
    nbytes = sum(t.numel() * t.element_size() for t in model.diffusion_model.parameters())
    info = {"model_config": type(model_config).__name__, "model_base": type(model).__name__,
            "diffusion_model": type(model.diffusion_model).__module__ + "." + type(model.diffusion_model).__name__,
            "unet_config": {k: list(v) if isinstance(v, tuple) else v for k, v in unet_config.items()},
            "params": params, "weight_bytes": nbytes, "dtype": str(model.get_dtype()),
            "manual_cast": str(manual_cast), "build_and_fill_s": build_s, "offload_device": str(offload),
            "vram_state": mm.vram_state.name, "model_patcher": type(base).__name__}
    return base, high, low, info


class RowCounter:
    """A DIFFUSION_MODEL wrapper on both experts (so on every config alike): DiT batch rows per call."""

    def __init__(self):
        self.calls = []

    def __call__(self, executor, *args, **kwargs):
        self.calls.append(int(args[0].shape[0]))
        return executor(*args, **kwargs)


def make_inputs(frames: int, height: int, width: int, text_dim: int):
    """positive, negative, latent as WanImageToVideo gives them (start image → concat latent + mask),
    with random stand-ins for the umt5 text embeddings and the VAE-encoded start image."""
    import node_helpers

    t = (frames - 1) // 4 + 1
    h, w = height // 8, width // 8
    gen = torch.Generator().manual_seed(SEED)
    pos = [[torch.randn(1, TEXT_TOKENS, text_dim, generator=gen), {}]]
    neg = [[torch.randn(1, TEXT_TOKENS, text_dim, generator=gen), {}]]
    concat = torch.randn(1, 16, t, h, w, generator=gen)
    mask = torch.ones(1, 1, t, h, w)
    mask[:, :, :1] = 0.0
    values = {"concat_latent_image": concat, "concat_mask": mask}
    pos = node_helpers.conditioning_set_values(pos, values)
    neg = node_helpers.conditioning_set_values(neg, values)
    latent = {"samples": torch.zeros(1, 16, t, h, w)}
    tokens = t * (h // 2) * (w // 2)
    return pos, neg, latent, {"frames": frames, "latent": [1, 16, t, h, w], "tokens": tokens,
                              "grid": [t, h // 2, w // 2]}


# ---------------------------------------------------------------------------------------------
# the configurations


class Bench:
    def __init__(self, pack, high, low, steps: int, split: int, device: torch.device):
        self.pack, self.high, self.low = pack, high, low
        self.steps, self.split, self.device = steps, split, device

    # ComfyUI's two-KSamplerAdvanced Wan2.2 template
    def ksampler_pair(self, high, low, pos, neg, latent):
        import nodes

        ks = nodes.KSamplerAdvanced()
        (mid,) = ks.sample(high, "enable", SEED, self.steps, CFG, "euler", "simple", pos, neg, latent,
                           0, self.split, "enable")
        (out,) = ks.sample(low, "disable", SEED, self.steps, CFG, "euler", "simple", pos, neg, mid,
                           self.split, 10000, "disable")
        return out["samples"]

    def cos_sampler(self, high, low, pos, neg, latent, noise=None, sampler=None, preview_frames=4):
        from chain_of_steps_pack.nodes.sampler import CoSSampler

        out, _, trace, _ = CoSSampler.PREPARE_CLASS_CLONE(None).execute(
            model_high=high, positive=pos, negative=neg, latent=latent, seed=SEED, steps=self.steps, cfg=CFG,
            sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=self.split,
            capture_steps="all", preview_frames=preview_frames, model_low=low, noise=noise, sampler=sampler).result
        return out["samples"], trace

    def probe(self, high, low, layers, energy, pca):
        from chain_of_steps_pack.nodes.probe import CoSLayerProbe

        return CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(
            high, layers, "all", "cond", energy, pca, "shared (first probed step)", False, 2048,
            model_low=low).result

    def official_hook(self, high, low):
        """The official tool's FeatureCapture, on ComfyUI's block-replace patch: per step and layer it
        keeps the cond branch's whole block output as a CPU float32 tensor (``out.detach().cpu().float()``,
        a synchronous pageable copy); only the current step is held."""
        from chain_of_steps_pack.nodes.adapters import cfg_halves

        store: dict[int, torch.Tensor] = {}

        def hook(layer):
            def replace(args, extra):
                out = extra["original_block"](args)
                options = args["transformer_options"]
                for half, rows in cfg_halves(options.get("cond_or_uncond"), out["img"].shape[0]):
                    if half == "cond":
                        store[layer] = out["img"][rows].detach().cpu().float()
                return out

            return replace

        patched = []
        for m in (high, low):
            c = m.clone()
            for layer in OFFICIAL_LAYERS:
                c.set_model_patch_replace(hook(layer), "dit", "double_block", layer)
            patched.append(c)
        return patched[0], patched[1], store

    def ensemble(self, high, low, latent, continue_with):
        from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

        return CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(
            high, latent, ENSEMBLE["members"], SEED, ENSEMBLE["steps"], ENSEMBLE["layers"], 1.0, "per layer",
            continue_with, model_low=low).result

    def run(self, config: str, pos, neg, latent) -> dict:
        """Build the config's patched models (as the nodes would before sampling) and sample once."""
        info: dict = {}
        if config == "stock":
            out = self.ksampler_pair(self.high, self.low, pos, neg, latent)
        elif config == "capture":
            from chain_of_steps_pack.nodes.capture import CoSCaptureX0

            hi, lo, handle = CoSCaptureX0.PREPARE_CLASS_CLONE(None).execute(self.high, "all", model_low=self.low).result
            out = self.ksampler_pair(hi, lo, pos, neg, latent)
            trace = handle.snapshot()
            info.update(trace_bytes=trace.nbytes(), trace_steps=len(trace))
        elif config in ("cos_sampler", "cos_sampler_nopreview"):
            out, trace = self.cos_sampler(self.high, self.low, pos, neg, latent,
                                          preview_frames=4 if config == "cos_sampler" else 0)
            info.update(trace_bytes=trace.nbytes(), trace_steps=len(trace))
        elif config == "energy":
            hi, lo, handle = self.probe(self.high, self.low, "all", True, False)
            out = self.ksampler_pair(hi, lo, pos, neg, latent)
            trace = handle.snapshot()
            info.update(trace_bytes=trace.nbytes(), trace_steps=len(trace), trace_tensors=len(trace.tensor_names()))
        elif config == "energy_pca":
            hi, lo, handle = self.probe(self.high, self.low, "all", True, False)
            hi, lo, handle_pca = self.probe(hi, lo, PCA_LAYERS, False, True)
            out = self.ksampler_pair(hi, lo, pos, neg, latent)
            trace, trace_pca = handle.snapshot(), handle_pca.snapshot()
            names = trace.tensor_names()
            info.update(trace_bytes=trace.nbytes() + trace_pca.nbytes(), trace_steps=len(trace),
                        trace_tensors=len(names) + len(trace_pca.tensor_names()),
                        energy_layers_recorded=len([n for n in names if n.startswith("energy/")]),
                        pca_layers_recorded=len([n for n in trace_pca.tensor_names() if n.startswith("pca/")]))
        elif config == "official":
            hi, lo, store = self.official_hook(self.high, self.low)
            out = self.ksampler_pair(hi, lo, pos, neg, latent)
            info.update(trace_bytes=sum(t.numel() * t.element_size() for t in store.values()),
                        host_layers_held=len(store))
            store.clear()
        elif config in ("ens_primary", "ens_all"):
            cont = "primary" if config == "ens_primary" else "all"
            hi, lo, lat, noise, sampler = self.ensemble(self.high, self.low, latent, cont)
            out, trace = self.cos_sampler(hi, lo, pos, neg, lat, noise=noise, sampler=sampler)
            info.update(trace_bytes=trace.nbytes(), trace_steps=len(trace), out_batch=int(out.shape[0]))
        else:
            raise ValueError(config)
        info["finite"] = bool(torch.isfinite(out).all())
        info["out_std"] = float(out.float().std())
        return info


# ---------------------------------------------------------------------------------------------
# timing helpers


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cuda_ms(fn, reps: int, warmup: int = 2) -> list[float]:
    """Per-call times in ms with CUDA events (synchronised around each call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def host_ms(fn, reps: int, warmup: int = 1, device=None) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device is not None:
            sync(device)
        t0 = time.perf_counter()
        fn()
        if device is not None:
            sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "all": [round(v, 4) for v in values]}


def rss_bytes() -> int | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # psutil missing: fall back to /proc
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return None


# ---------------------------------------------------------------------------------------------
# micro-benchmarks


def micro_hidden(cos_core, hidden: torch.Tensor, grid, cond_rows, x_in: torch.Tensor | None, device,
                 quick: bool) -> dict:
    """Costs of the pack's per-layer reductions on one block output ``hidden`` (C·B, N, D) bf16."""
    import cos_core_standalone.cka as cka  # noqa: F401  (loaded by load_cos_core)
    from cos_core_standalone.energy import token_energy
    from cos_core_standalone.pca import fit_basis, project_rgb

    out = {}
    cond = hidden[cond_rows]
    n_tok = grid[0] * grid[1] * grid[2]
    reps = 5 if quick else 50
    timer = (lambda fn, r, w=2: cuda_ms(fn, r, w)) if device.type == "cuda" else \
        (lambda fn, r, w=1: host_ms(fn, r, w, device))
    out["energy_vector_norm_ms"] = summary(timer(lambda: token_energy(cond, grid), reps))
    out["energy_float_norm_ms"] = summary(timer(lambda: cond.float().norm(dim=-1), reps))
    ref = cond.double().norm(dim=-1).reshape(-1, *grid)
    got = token_energy(cond, grid).double()
    out["energy_rel_err_vs_fp64"] = float((got - ref).norm() / ref.norm())
    copy_reps = 2 if quick else 3
    out["copy_cpu_then_float_ms"] = summary(host_ms(lambda: cond.detach().cpu().float(), copy_reps, 1, device))
    out["copy_cpu_only_ms"] = summary(host_ms(lambda: cond.detach().cpu(), copy_reps, 1, device))
    out["copy_float_then_cpu_ms"] = summary(host_ms(lambda: cond.detach().float().cpu(), copy_reps, 1, device))
    if device.type == "cuda":
        pinned = torch.empty(cond.shape, dtype=torch.float32, pin_memory=True)
        out["copy_float_to_pinned_ms"] = summary(host_ms(lambda: pinned.copy_(cond.float()), copy_reps, 1, device))
        del pinned
    tokens = cond.reshape(-1, cond.shape[-1])[:n_tok]
    fit_reps = 2 if quick else 5
    out["pca_fit_ms"] = summary(host_ms(lambda: fit_basis(tokens), fit_reps, 1, device))
    basis = fit_basis(tokens)
    out["pca_project_ms"] = summary(timer(lambda: project_rgb(cond, basis), reps // 5 + 2))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fit_basis(tokens)
        out["pca_fit_peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        project_rgb(cond, basis)
        out["pca_project_peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        token_energy(cond, grid)
        out["energy_peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        cond.detach().cpu().float()
        out["copy_cpu_then_float_peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
    out["tokens"] = int(tokens.shape[0])
    out["dim"] = int(tokens.shape[1])
    if x_in is not None:
        out["cka"] = micro_cka(x_in[cond_rows].reshape(-1, x_in.shape[-1])[:n_tok], tokens, device, quick)
    return out


def micro_cka(x_bf16: torch.Tensor, y_bf16: torch.Tensor, device, quick: bool) -> dict:
    """cos_core.cka.cka_linear on N × D float32 (block input vs output, real activations): time, and
    agreement with a float64 reference, plus the invariances (identical → 1, rotation + scale → 1)."""
    from cos_core_standalone.cka import cka_linear

    def ref64(a, b):
        a = a.double() - a.double().mean(0, keepdim=True)
        b = b.double() - b.double().mean(0, keepdim=True)
        return float(torch.linalg.matrix_norm(b.t() @ a) ** 2
                     / (torch.linalg.matrix_norm(a.t() @ a) * torch.linalg.matrix_norm(b.t() @ b)))

    x, y = x_bf16.float(), y_bf16.float()
    out = {"shape": list(x.shape)}
    reps = 2 if quick else 5
    out["time_ms"] = summary(host_ms(lambda: cka_linear(x, y), reps, 1, device))
    value, reference = cka_linear(x, y), ref64(x, y)
    out["in_vs_out"] = {"cka_fp32": value, "cka_fp64": reference, "abs_err": abs(value - reference)}
    out["identical"] = cka_linear(x, x.clone())
    gen = torch.Generator(device=x.device).manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], device=x.device, generator=gen))
    out["rotated_scaled"] = cka_linear(x, 3.0 * (x @ q))
    z = torch.randn(x.shape, device=x.device, generator=gen)
    value, reference = cka_linear(x, z), ref64(x, z)
    out["independent"] = {"cka_fp32": value, "cka_fp64": reference, "abs_err": abs(value - reference)}
    if device.type == "cuda":
        del q, z
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        cka_linear(x, y)
        out["peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
    return out


def micro_block(captured: dict, device, quick: bool) -> dict:
    """One Wan block at this size, both CFG halves in one batch, bf16, replayed from the args it got."""
    args, block_wrap = captured["args"], captured["fn"]
    reps = 3 if quick else 5
    if device.type == "cuda":
        times = cuda_ms(lambda: block_wrap(args), reps, 1)
    else:
        times = host_ms(lambda: block_wrap(args), reps, 1, device)
    return {"block_ms": summary(times), "rows": int(args["img"].shape[0]), "tokens": int(args["img"].shape[1]),
            "cond_or_uncond": list(captured["cond_or_uncond"])}


def micro_random(tokens: int, dim: int, device, quick: bool) -> dict:
    """--micro-only: the reductions on random bf16 hidden states of the full size (no ComfyUI needed)."""
    load_cos_core()
    gen = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(2, tokens, dim, device=device, dtype=torch.bfloat16, generator=gen)
    x_in = torch.randn(2, tokens, dim, device=device, dtype=torch.bfloat16, generator=gen) + hidden
    f = max(1, tokens // (30 * 52))
    grid = (f, 30, 52) if f * 30 * 52 == tokens else (1, 1, tokens)
    return micro_hidden(None, hidden, grid, slice(1, 2), x_in, device, quick)


# ---------------------------------------------------------------------------------------------
# profiler


def profile_runs(bench: Bench, configs: list[str], pos, neg, latent, device) -> tuple[dict, str]:
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    result, text = {}, []
    keys_of_interest = ("aten::_local_scalar_dense", "aten::item", "cudaStreamSynchronize", "cudaDeviceSynchronize",
                        "cudaMemcpyAsync", "Memcpy DtoH", "Memcpy HtoD", "aten::linalg_vector_norm", "aten::norm",
                        "aten::_to_copy", "aten::copy_", "aten::linalg_qr", "aten::quantile", "aten::randperm",
                        "aten::index", "aten::mm", "aten::matmul", "aten::cat", "cudaEventSynchronize")
    for config in configs:
        sync(device)
        with profile(activities=acts, record_shapes=False) as prof:
            t0 = time.perf_counter()
            with torch.inference_mode():
                bench.run(config, pos, neg, latent)
            sync(device)
            wall_ms = (time.perf_counter() - t0) * 1e3
        events = prof.key_averages()
        busy_us = sum(e.self_device_time_total for e in events
                      if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False))
        picked = {}
        for e in events:
            name = e.key
            if any(name.startswith(k) for k in keys_of_interest):
                picked[name] = {"count": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
                                "device_ms": e.self_device_time_total / 1e3 if e.device_type == DeviceType.CUDA
                                else getattr(e, "device_time_total", 0) / 1e3}
        result[config] = {"wall_ms": wall_ms, "gpu_busy_ms": busy_us / 1e3, "gpu_idle_ms": wall_ms - busy_us / 1e3,
                          "ops": picked}
        text.append(f"===== {config}: wall {wall_ms:.1f} ms, GPU busy {busy_us / 1e3:.1f} ms =====\n")
        sort_key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        try:
            text.append(events.table(sort_by=sort_key, row_limit=40))
        except Exception as err:  # older/newer torch name the sort key differently
            text.append(f"(table failed: {err})\n" + events.table(sort_by="self_cpu_time_total", row_limit=40))
        text.append("\n")
        del prof
        gc.collect()
    return result, "".join(text)


# ---------------------------------------------------------------------------------------------
# the run


def pack_sources_digest() -> dict:
    """sha256 of the pack's Python sources as they were on this machine (the tree may be mid-edit)."""
    import hashlib

    digest, files = hashlib.sha256(), 0
    for folder in ("nodes", "cos_core"):
        for path in sorted((REPO / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
            files += 1
    return {"sha256": digest.hexdigest(), "files": files}


def environment(device) -> dict:
    env = {"pack_sources": pack_sources_digest(), "python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda,
           "platform": platform.platform(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_bytes=props.total_memory, sm_count=props.multi_processor_count,
                   cudnn=torch.backends.cudnn.version())
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,"
                 "power.limit,temperature.gpu,clocks.sm", "--format=csv"],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception as err:
            env["nvidia_smi"] = f"unavailable: {err}"
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfy", default=os.environ.get("COMFYUI_PATH", str(REPO / ".comfy")),
                    help="ComfyUI tree (default: $COMFYUI_PATH, else <repo>/.comfy)")
    ap.add_argument("--preset", choices=list(PRESETS), default="full")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--frames", default="21,81", help="pixel frame counts, small first (default 21,81)")
    ap.add_argument("--size", default="480x832", help="HxW in pixels (default 480x832)")
    ap.add_argument("--steps", type=int, default=2, help="total steps S across both experts (default 2)")
    ap.add_argument("--split", type=int, default=1, help="step where the low-noise expert starts (default 1)")
    ap.add_argument("--reps", default="21:3,81:2", help="timed repetitions per frame count, e.g. '21:3,81:2'")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma list from {CONFIGS} (cos_sampler_nopreview: the CoS Sampler with preview_frames 0)")
    ap.add_argument("--profile", default="stock,capture,cos_sampler,energy,energy_pca",
                    help="configs profiled once with torch.profiler: 'a,b' at the first frame count, or "
                    "'21=a,b;81=c' per frame count ('' for none)")
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--micro-only", action="store_true", help="only the reductions on random data, no ComfyUI")
    ap.add_argument("--quick", action="store_true", help="fewer micro repetitions (smoke tests)")
    ap.add_argument("--budget-s", type=float, default=540.0,
                    help="stop starting new timed runs after this many seconds (results so far are kept)")
    ap.add_argument("--out", default=os.environ.get("OUT", "out/bench"))
    ap.add_argument("--report", metavar="JSON", help="print the Markdown tables of a results file and exit")
    a = ap.parse_args(argv)
    if a.report:
        print(report(json.loads(Path(a.report).read_text())))
        return 0

    started = time.perf_counter()
    device = torch.device(a.device)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"argv": sys.argv, "command": " ".join([Path(sys.executable).name] + sys.argv),
                     "environment": environment(device), "settings": {}, "runs": [], "micro": {}, "profile": {}}
    results_path = out_dir / "results.json"

    def save():
        results["elapsed_s"] = time.perf_counter() - started
        results_path.write_text(json.dumps(results, indent=1, default=str))

    if a.micro_only:
        tokens = 21 * 30 * 52
        results["micro"]["random_32760"] = micro_random(tokens, 5120, device, a.quick)
        save()
        print(json.dumps(results["micro"], indent=1))
        return 0

    mm = setup_comfy(Path(a.comfy).resolve(), a.device)
    import comfyui_version

    pack = load_pack()
    cos_core = load_cos_core()
    import comfy.ldm.modules.attention as attention
    import comfy.patcher_extension

    results["environment"].update(comfyui=comfyui_version.__version__, comfy_root=str(Path(a.comfy).resolve()),
                                  attention=getattr(attention.optimized_attention, "__name__", "?"),
                                  vram_state=mm.vram_state.name)
    height, width = (int(v) for v in a.size.lower().split("x"))
    frames_list = [int(f) for f in a.frames.split(",") if f]
    reps_of = {int(k): int(v) for k, v in (p.split(":") for p in a.reps.split(",") if p)}
    configs = [c for c in a.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"--configs: unknown {sorted(unknown)}; choose from {CONFIGS}")
    if "stock" not in configs:
        configs.insert(0, "stock")
    profile_at: dict[int, list[str]] = {}
    for part in (p for p in a.profile.split(";") if p.strip()):
        where, _, names = part.rpartition("=")
        profile_at[int(where) if where else frames_list[0]] = [c for c in names.split(",") if c]

    base, high, low, model_info = build_models(a.preset, device, mm)
    counter = RowCounter()
    for m in (high, low):
        m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench.rows", counter)
    load_times: list[float] = []
    original_load = mm.load_models_gpu

    def timed_load(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original_load(*args, **kwargs)
        finally:
            load_times.append(time.perf_counter() - t0)

    mm.load_models_gpu = timed_load
    bench = Bench(pack, high, low, a.steps, a.split, device)
    results["settings"] = {"preset": a.preset, "model": model_info, "frames": frames_list, "size": [height, width],
                           "steps": a.steps, "split": a.split, "cfg": CFG, "sampler": "euler", "scheduler": "simple",
                           "shift": 5.0, "text_tokens": TEXT_TOKENS, "configs": configs, "reps": reps_of,
                           "ensemble": ENSEMBLE, "pca_layers": PCA_LAYERS, "official_layers": OFFICIAL_LAYERS,
                           "allocator": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "default (native caching)")}
    log(f"model: {model_info['params'] / 1e9:.2f} B params, {model_info['weight_bytes'] / 2**30:.2f} GiB, "
        f"built+filled in {model_info['build_and_fill_s']:.2f} s; attention {results['environment']['attention']}; "
        f"vram {mm.vram_state.name}")
    save()

    def one_run(config, pos, neg, latent, frames, rep, timed=True):
        gc.collect()
        sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            alloc_before = torch.cuda.memory_allocated(device)
        counter.calls.clear()
        load_times.clear()
        rss0 = rss_bytes()
        t0 = time.perf_counter()
        with torch.inference_mode():
            info = bench.run(config, pos, neg, latent)
        sync(device)
        wall = time.perf_counter() - t0
        record = {"config": config, "frames": frames, "rep": rep, "timed": timed, "wall_s": wall,
                  "load_models_gpu_s": sum(load_times), "dit_calls": len(counter.calls),
                  "dit_rows": list(counter.calls), "rss_after_bytes": rss_bytes(), "rss_before_bytes": rss0, **info}
        if device.type == "cuda":
            record.update(peak_alloc_bytes=torch.cuda.max_memory_allocated(device), alloc_before_bytes=alloc_before)
        results["runs"].append(record)
        save()
        log(f"{frames}f {config:12s} rep {rep}{'' if timed else ' (warm-up)'}: {wall:.3f} s"
            + (f", peak {record['peak_alloc_bytes'] / 2**30:.2f} GiB" if device.type == "cuda" else "")
            + f", rows {record['dit_rows']}, load {record['load_models_gpu_s'] * 1e3:.0f} ms"
            + (f", trace {info['trace_bytes'] / 2**20:.1f} MiB" if "trace_bytes" in info else ""))
        return record

    first = True
    for frames in frames_list:
        pos, neg, latent, shape = make_inputs(frames, height, width, PRESETS[a.preset]["text_dim"])
        results["settings"].setdefault("shapes", {})[str(frames)] = shape
        log(f"== {frames} frames: latent {shape['latent']}, {shape['tokens']} tokens ==")
        # warm-up: stock once, capturing block 0's arguments for the block micro-benchmark
        captured = {}

        def grab(args, extra):
            if not captured:
                captured.update(args=args, fn=extra["original_block"],
                                cond_or_uncond=list(args["transformer_options"].get("cond_or_uncond") or [0]))
            return extra["original_block"](args)

        h0, l0 = high.clone(), low.clone()
        h0.set_model_patch_replace(grab, "dit", "double_block", 0)
        l0.set_model_patch_replace(grab, "dit", "double_block", 0)
        with torch.inference_mode():
            bench.ksampler_pair(h0, l0, pos, neg, latent)
        sync(device)
        del h0, l0
        if not a.no_micro and captured:
            with torch.inference_mode():
                micro = micro_block(captured, device, a.quick)
                out = captured["fn"](captured["args"])["img"]
                from chain_of_steps_pack.nodes.adapters import cfg_halves

                rows = dict(cfg_halves(captured["cond_or_uncond"], out.shape[0]))["cond"]
                micro["reductions"] = micro_hidden(cos_core, out, tuple(shape["grid"]), rows, captured["args"]["img"],
                                                   device, a.quick)
            del out
            results["micro"][str(frames)] = micro
            save()
            log(f"micro {frames}f: block {micro['block_ms']['median']:.2f} ms, energy "
                f"{micro['reductions']['energy_vector_norm_ms']['median']:.3f} ms (vector_norm) vs "
                f"{micro['reductions']['energy_float_norm_ms']['median']:.3f} ms (.float().norm()), copy "
                f"{micro['reductions']['copy_cpu_then_float_ms']['median']:.1f} ms, PCA fit "
                f"{micro['reductions']['pca_fit_ms']['median']:.1f} ms, CKA "
                f"{micro['reductions'].get('cka', {}).get('time_ms', {}).get('median', float('nan')):.1f} ms")
        captured.clear()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if first:  # every config once, untimed: thread start-up, first PCA/cuSOLVER calls, new shapes
            for config in configs:
                one_run(config, pos, neg, latent, frames, -1, timed=False)
        else:
            one_run("stock", pos, neg, latent, frames, -1, timed=False)
        if profile_at.get(frames):
            prof, text = profile_runs(bench, profile_at[frames], pos, neg, latent, device)
            results["profile"][str(frames)] = prof
            with open(out_dir / "profile.txt", "a") as f:
                f.write(f"######## {frames} frames ########\n" + text)
            save()
        reps = reps_of.get(frames, 2)
        for rep in range(reps):
            order = configs if rep % 2 == 0 else list(reversed(configs))
            for config in order:
                if time.perf_counter() - started > a.budget_s:
                    log(f"budget of {a.budget_s:.0f} s reached: skipping {frames}f {config} rep {rep}")
                    results.setdefault("skipped", []).append([frames, config, rep])
                    continue
                try:
                    one_run(config, pos, neg, latent, frames, rep)
                except Exception as err:  # keep the other configs' numbers
                    log(f"{frames}f {config} rep {rep} FAILED: {type(err).__name__}: {err}")
                    results.setdefault("errors", []).append([frames, config, rep, repr(err)])
                    save()
        first = False
    save()
    print(report(results))
    return 0


# ---------------------------------------------------------------------------------------------
# report


def analyse(results: dict) -> dict:
    runs = [r for r in results["runs"] if r.get("timed")]
    by = {}
    for r in runs:
        by.setdefault((r["frames"], r["config"]), []).append(r)
    table = {}
    for (frames, config), rs in by.items():
        walls = [r["wall_s"] for r in rs]
        peaks = [r.get("peak_alloc_bytes") for r in rs if r.get("peak_alloc_bytes") is not None]
        table[(frames, config)] = {"wall": summary(walls), "peak": max(peaks) if peaks else None,
                                   "trace_bytes": rs[-1].get("trace_bytes"), "rows": rs[-1].get("dit_rows"),
                                   "load_s": statistics.median(r["load_models_gpu_s"] for r in rs),
                                   "finite": all(r.get("finite", True) for r in rs), "extra": rs[-1]}
    return table


def report(results: dict) -> str:
    s = results.get("settings", {})
    table = analyse(results)
    frames_list = sorted({f for f, _ in table})
    configs = [c for c in CONFIGS if any((f, c) in table for f in frames_list)]
    steps = s.get("steps", 2)
    k, ens_steps = ENSEMBLE["members"], 1
    analytic = {"ens_primary": 1 + (k - 1) * ens_steps / steps, "ens_all": float(k)}
    lines = []
    for frames in frames_list:
        shape = s.get("shapes", {}).get(str(frames), {})
        stock = table.get((frames, "stock"))
        if not stock:
            continue
        base_wall, base_peak = stock["wall"]["median"], stock["peak"]
        cos = table.get((frames, "cos_sampler"))
        lines.append(f"\n#### {frames} frames ({shape.get('tokens', '?')} tokens, latent {shape.get('latent', '?')}), "
                     f"{steps} steps, both CFG halves\n")
        lines.append("| config | wall s (median; min–max, n) | ratio to stock | peak GPU GiB | Δ peak vs stock "
                     "| trace (host) | DiT rows per call |")
        lines.append("|---|---|---|---|---|---|---|")
        for config in configs:
            t = table.get((frames, config))
            if not t:
                continue
            w = t["wall"]
            ratio = w["median"] / base_wall
            extra = ""
            if config in analytic:
                extra = f" (analytic {analytic[config]:.2f}"
                if cos:
                    extra += f"; vs cos_sampler {w['median'] / cos['wall']['median']:.3f}"
                extra += ")"
            peak = t["peak"]
            dpeak = "" if peak is None or base_peak is None else \
                f"{(peak - base_peak) / 2**20:+.0f} MiB ({(peak - base_peak) / base_peak * 100:+.2f} %)"
            trace = "" if t["trace_bytes"] is None else f"{t['trace_bytes'] / 2**20:.2f} MiB"
            lines.append(f"| {config} | {w['median']:.3f} ({w['min']:.3f}–{w['max']:.3f}, {w['n']}) "
                         f"| {ratio:.4f}{extra} | {'' if peak is None else f'{peak / 2**30:.2f}'} | {dpeak} "
                         f"| {trace} | {t['rows']} |")
    micro = results.get("micro", {})
    if micro:
        lines.append("\n#### Micro-benchmarks (median ms)\n")
        lines.append("| frames | tokens | one block (2 rows, bf16) | energy vector_norm(fp32) | energy .float().norm() "
                     "| copy .cpu() | copy .cpu().float() | copy .float().cpu() | copy .float() to pinned | PCA fit "
                     "| PCA project | CKA fp32 | CKA abs. err. vs fp64 |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for frames, m in sorted(micro.items(), key=lambda kv: kv[0]):
            r = m.get("reductions", m)
            cka = r.get("cka", {})

            def med(key, src=r):
                v = src.get(key)
                return f"{v['median']:.3f}" if isinstance(v, dict) and "median" in v else ""

            lines.append(f"| {frames} | {r.get('tokens', '')} | {med('block_ms', m)} | {med('energy_vector_norm_ms')} "
                         f"| {med('energy_float_norm_ms')} | {med('copy_cpu_only_ms')} "
                         f"| {med('copy_cpu_then_float_ms')} "
                         f"| {med('copy_float_then_cpu_ms')} | {med('copy_float_to_pinned_ms')} | {med('pca_fit_ms')} "
                         f"| {med('pca_project_ms')} | {med('time_ms', cka)} "
                         f"| {cka.get('in_vs_out', {}).get('abs_err', float('nan')):.1e} |")
    prof = results.get("profile", {})
    for frames, p in prof.items():
        lines.append(f"\n#### torch.profiler, {frames} frames, one run each\n")
        lines.append("| config | wall ms | GPU busy ms | GPU idle ms | _local_scalar_dense (count) "
                     "| cudaStreamSynchronize (count) | Memcpy DtoH (count, ms) | vector_norm (count, ms) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for config, d in p.items():
            ops = d["ops"]

            def cnt(prefix):
                return sum(v["count"] for k2, v in ops.items() if k2.startswith(prefix))

            def dev(prefix):
                return sum(v["device_ms"] for k2, v in ops.items() if k2.startswith(prefix))

            lines.append(f"| {config} | {d['wall_ms']:.1f} | {d['gpu_busy_ms']:.1f} | {d['gpu_idle_ms']:.1f} "
                         f"| {cnt('aten::_local_scalar_dense')} | {cnt('cudaStreamSynchronize')} "
                         f"| {cnt('Memcpy DtoH')}, {dev('Memcpy DtoH'):.1f} "
                         f"| {cnt('aten::linalg_vector_norm')}, {dev('aten::linalg_vector_norm'):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
