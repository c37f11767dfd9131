"""Train the CoS-Toy model with rectified flow matching, image-to-video, in ComfyUI's model space.

x_σ = (1−σ)·x0 + σ·ε, target v = ε − x0 (ComfyUI's CONST flow: denoised = x − σ·v, timestep = 1000·σ),
σ = shift(t) with t ~ U(0, 1) and shift drawn from {1, 3, 5} so every σ a sampler with shift 1…8 visits is
trained. The model input is [x_σ, mask(4), first-frame code(16)], exactly ComfyUI's concat_cond.

Loss: v-MSE weighted per cell by what the *given* first frame says can change (``loss_weights``), so the
few path cells are not drowned by background that is copied from the conditioning.
Training mix: ``MIX`` (maze curriculum 2–5 rooms, door, dot), each transformer block torch.compiled on CUDA.

Runs for ``--minutes`` and saves a checkpoint (fp32 weights and AdamW moments in shards under 16 MiB so
they come back from the GPU machine), which ``--resume`` continues exactly.

Needs ``comfy`` importable (ComfyUI's tree on ``sys.path``) and nothing else of ComfyUI.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cos_core.toy import latent as toy_latent  # noqa: E402
from cos_core.toy import tasks  # noqa: E402
from tools.toy import model as toy_model  # noqa: E402

TRAIN_SEED0 = 1_000_000   # training instances use seeds ≥ this; evaluation uses seeds < 100 000
# (kind, maze rooms, share of the training pool): a maze curriculum from 2×2 to 5×5 rooms, the door task
# (find the gap in a wall) and move-the-dot. Runs 1-2 used 8/20/20/12 % maze, 25 % door, 15 % dot (each run's
# mix is recorded in ckpt.json); from run 3 the 5-room maze (7 % solved) gives share to the dot, which had
# fallen from 72 % to 46 % while the others rose.
MIX = (("maze", 2, 0.06), ("maze", 3, 0.22), ("maze", 4, 0.20), ("maze", 5, 0.06), ("door", 0, 0.26),
       ("dot", 0, 0.20))
EVAL_KINDS = (("maze", 3), ("maze", 4), ("maze", 5), ("door", 0), ("dot", 0))
FREE_WEIGHT, FIXED_WEIGHT = 1.0, 0.25


def _gen(args):
    kind, rooms, seed = args
    return tasks.task(kind, seed, rooms).video


def make_pool(n: int, seed0: int, workers: int) -> np.ndarray:
    jobs, i = [], 0
    for kind, rooms, share in MIX:
        for _ in range(int(round(n * share))):
            jobs.append((kind, rooms, seed0 + i))
            i += 1
    with Pool(workers) as pool:
        videos = pool.map(_gen, jobs, chunksize=512)
    return np.stack(videos).astype(np.float16)             # N, F, G, G, 3


def loss_weights(cells: torch.Tensor, t: int) -> torch.Tensor:
    """Per-cell loss weight (B, 1, t, G, G) from the *given* first frame only (so the optimum stays E[v | input]):
    FREE_WEIGHT on latent frames ≥ 1 at cells that can change (not wall, start or goal in frame 0),
    FIXED_WEIGHT elsewhere (latent frame 0 is given by the conditioning; walls, start, goal never move)."""
    first = cells[:, 0]                                                   # B, G, G, 3
    black = first.sum(-1) < 0.3
    green = (first[..., 1] > 0.6) & (first[..., 0] < 0.3) & (first[..., 2] < 0.3)
    red = (first[..., 0] > 0.6) & (first[..., 1] < 0.3) & (first[..., 2] < 0.3)
    free = ~(black | green | red)
    w = torch.full((cells.shape[0], 1, t, *free.shape[1:]), FIXED_WEIGHT, device=cells.device)
    w[:, 0, 1:] = torch.where(free, FREE_WEIGHT, FIXED_WEIGHT)[:, None]
    return w


def augment(cells: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random dihedral symmetry per batch (maze and dot tasks are invariant under it)."""
    k = int(torch.randint(4, (1,), generator=gen))
    cells = torch.rot90(cells, k, dims=(2, 3))
    if int(torch.randint(2, (1,), generator=gen)):
        cells = cells.flip(3)
    return cells


def batch_inputs(cells: torch.Tensor):
    """cells (B, F, G, G, 3) → x0 code (B,16,t,G,G), concat (B,20,t,G,G)."""
    x0 = toy_latent.to_code(cells, stride=1)
    mask, image = toy_latent.i2v_inputs(cells[:, 0], cells.shape[1], stride=1)
    return x0, torch.cat([mask, image], dim=1)


def shift_sigma(t, shift):
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample(net, concat, steps=20, shift=5.0, gen=None):
    """ComfyUI-style Euler over σ = shift(1 − i/steps); returns the final x0 code."""
    b = concat.shape[0]
    x = torch.randn(b, 16, *concat.shape[2:], device=concat.device, generator=gen)
    ctx = toy_model.context(b, concat.device)
    sig = shift_sigma(torch.linspace(1, 0, steps + 1, device=concat.device), shift)
    for i in range(steps):
        s = sig[i].expand(b)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=concat.is_cuda):
            v = net(torch.cat([x, concat], 1), s * 1000, ctx).float()
        x = x + (sig[i + 1] - sig[i]) * v
    return x


def evaluate(net, device, n=128, kinds=EVAL_KINDS, steps=20):
    net.eval()
    out = {}
    stance = torch.compiler.set_stance("force_eager") if hasattr(torch.compiler, "set_stance") else None
    with stance if stance is not None else torch.no_grad():
        for kind, rooms in kinds:
            insts = [tasks.task(kind, s, rooms) for s in range(n)]
            cells = torch.tensor(np.stack([i.video for i in insts]), device=device)
            _, concat = batch_inputs(cells)
            x0 = sample(net, concat, steps=steps, gen=torch.Generator(device).manual_seed(0))
            vid = toy_latent.from_code(x0).cpu().numpy()                 # B, F, 8G, 8G, 3 (cells ×8)
            res = [tasks.score(i, v) for i, v in zip(insts, vid)]
            name = f"{kind}{rooms}" if kind == "maze" else kind
            out[name] = {"success": float(np.mean([r["success"] for r in res])),
                         "soft": float(np.mean([r["soft"] for r in res]))}
    net.train()
    return out


def _shards(sd: dict, limit: int = 12 * 2**20) -> list[dict]:
    """Split a state dict into files under ``limit`` bytes (files come back from the GPU machine ≤ 16 MiB)."""
    out, cur, size = [], {}, 0
    for k in sorted(sd):
        nbytes = sd[k].numel() * sd[k].element_size()
        if cur and size + nbytes > limit:
            out.append(cur)
            cur, size = {}, 0
        cur[k] = sd[k]
        size += nbytes
    return out + [cur] if cur else out


def save_ckpt(net, path: Path, info: dict, opt=None):
    """fp32 weights (+ AdamW moments, so a resumed run continues exactly) in ≤ 12 MiB shards + ckpt.json."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("ckpt_*.safetensors"):
        old.unlink()
    sd = {f"model/{k}": v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    if opt is not None:
        names = {id(p): n for n, p in net.named_parameters()}
        for p, st in opt.state.items():
            for key in ("exp_avg", "exp_avg_sq"):
                sd[f"{key}/{names[id(p)]}"] = st[key].detach().float().cpu().contiguous()
        info["opt_step"] = int(next(iter(opt.state.values()))["step"]) if opt.state else 0
    shards = _shards(sd)
    for i, part in enumerate(shards):
        save_file(part, str(path / f"ckpt_{i}.safetensors"))
    info["shards"] = len(shards)
    (path / "ckpt.json").write_text(json.dumps(info, indent=1))


def load_ckpt(net, path: Path, opt=None) -> dict:
    from safetensors.torch import load_file

    info = json.loads((path / "ckpt.json").read_text())
    info.pop("resumed_moments", None)
    sd = {}
    for i in range(info.get("shards", 2)):
        sd.update(load_file(str(path / f"ckpt_{i}.safetensors")))
    model = {k[6:]: v for k, v in sd.items() if k.startswith("model/")}
    net.load_state_dict(model or sd)                                   # old checkpoints: plain keys
    if opt is not None and any(k.startswith("exp_avg/") for k in sd):
        dev = next(net.parameters()).device
        for n, p in net.named_parameters():
            fused = bool(opt.defaults.get("fused"))
            opt.state[p] = {"step": torch.tensor(float(info.get("opt_step", 0)), device=dev if fused else "cpu"),
                            "exp_avg": sd[f"exp_avg/{n}"].to(dev), "exp_avg_sq": sd[f"exp_avg_sq/{n}"].to(dev)}
        info["resumed_moments"] = True
    return info


def compile_blocks(net) -> None:
    """torch.compile each transformer block (one graph shared by all 30: the step is launch-bound, not FLOP-bound)."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    torch._dynamo.config.accumulated_cache_size_limit = max(4096, torch._dynamo.config.accumulated_cache_size_limit)
    for blk in net.blocks:
        blk.compile()


def uncompile_blocks(net) -> None:
    for blk in net.blocks:
        blk._compiled_call_impl = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default="")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--decay", action="store_true", help="cosine-decay the lr to --lr-end over this run")
    ap.add_argument("--lr-end", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=None,
                    help="warm-up steps (default 200; a run resumed with moments skips it unless this is given)")
    ap.add_argument("--pool", type=int, default=160_000, help="pregenerated training instances for this run")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--eval-every", type=float, default=2.0, help="minutes")
    ap.add_argument("--eval-n", type=int, default=128)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()

    t_start = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(a.device)
    net = toy_model.build(device=device)
    import comfy.model_management

    comfy.model_management.in_training = True       # ComfyUI's own switch: autograd-capable RoPE
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99),
                            fused=device.type == "cuda")
    info = {"step": 0, "seen": 0, "runs": [], "log": [], "config": toy_model.CONFIG}
    if a.resume and (Path(a.resume) / "ckpt.json").exists():
        info = load_ckpt(net, Path(a.resume), opt)
        print(f"resumed at step {info['step']} (moments: {bool(info.get('resumed_moments'))})", flush=True)
    run_index = len(info["runs"])
    gen = torch.Generator().manual_seed(toy_model.SEED + run_index)
    dgen = torch.Generator(device).manual_seed(toy_model.SEED + 1000 + run_index)
    pool_seed = TRAIN_SEED0 + run_index * 10_000_000
    pool = torch.tensor(make_pool(a.pool, pool_seed, a.workers), device=device)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"pool {tuple(pool.shape)} in {time.time() - t_start:.1f}s; params {n_params / 1e6:.2f}M", flush=True)

    shifts = torch.tensor([1.0, 3.0, 5.0], device=device)
    warmup = a.warmup if a.warmup is not None else (1 if info.get("resumed_moments") else 200)
    warmup = max(1, warmup)

    def train_step(lr):
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(pool), (a.batch,), generator=dgen, device=device)
        cells = augment(pool[idx].float(), gen)
        x0, concat = batch_inputs(cells)
        w = loss_weights(cells, x0.shape[2])
        b = x0.shape[0]
        t = torch.rand(b, generator=dgen, device=device)
        sh = shifts[torch.randint(3, (b,), generator=dgen, device=device)]
        sigma = shift_sigma(t, sh).clamp(1e-4, 1.0)
        eps = torch.randn(x0.shape, generator=dgen, device=device)
        s = sigma.view(b, 1, 1, 1, 1)
        x = (1 - s) * x0 + s * eps
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            v = net(torch.cat([x, concat], 1), sigma * 1000, toy_model.context(b, device))
        err = (v.float() - (eps - x0)).pow(2).mean(1, keepdim=True)
        loss = (err * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss.detach()

    net.train()
    compiled = False
    if device.type == "cuda" and not a.no_compile:
        t_c = time.time()
        try:
            compile_blocks(net)
            train_step(0.0)                       # lr 0: compiles forward + backward, changes no weight
            torch.cuda.synchronize()
            compiled = True
        except Exception as exc:                  # noqa: BLE001 -- any compile failure: train eagerly
            print(f"torch.compile failed ({type(exc).__name__}: {exc}); eager", flush=True)
            uncompile_blocks(net)
        opt.state.clear() if not info.get("resumed_moments") else None
        print(f"compile: {compiled} in {time.time() - t_c:.1f}s", flush=True)

    budget = a.minutes * 60 - (time.time() - t_start)
    t0 = time.time()
    last_eval = t0
    step0 = info["step"]
    losses = []
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        frac = elapsed / budget
        warm = min(1.0, (info["step"] - step0 + 1) / warmup)
        lr = a.lr * warm
        if a.decay:
            lr = a.lr_end + (lr - a.lr_end) * 0.5 * (1 + math.cos(math.pi * frac))
        losses.append(train_step(lr))
        info["step"] += 1
        info["seen"] += a.batch
        if info["step"] % 100 == 0:
            rec = {"step": info["step"], "loss": float(torch.stack(losses[-100:]).mean()), "lr": lr,
                   "min": round((time.time() - t_start) / 60, 2)}
            losses = losses[-100:]
            info["log"].append(rec)
            print(json.dumps(rec), flush=True)
        if time.time() - last_eval > a.eval_every * 60:
            ev = evaluate(net, device, n=a.eval_n)
            info["log"].append({"step": info["step"], "eval": ev})
            print(json.dumps({"step": info["step"], "eval": ev}), flush=True)
            last_eval = time.time()
    ev = evaluate(net, device, n=a.eval_n)
    info["log"].append({"step": info["step"], "eval": ev})
    print(json.dumps({"step": info["step"], "eval": ev, "final": True}), flush=True)
    info["runs"].append({"steps": info["step"] - step0, "minutes": round((time.time() - t_start) / 60, 2),
                         "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                         "batch": a.batch, "lr": a.lr, "decay": a.decay, "lr_end": a.lr_end, "pool": a.pool,
                         "compiled": compiled, "mix": MIX})
    uncompile_blocks(net)
    save_ckpt(net, out, info, opt)
    toy_model.export(net.state_dict(), out / toy_model.WEIGHTS_NAME,
                     meta={"config": toy_model.CONFIG, "step": info["step"], "seen": info["seen"],
                           "runs": info["runs"], "eval": ev})
    print("saved", out, flush=True)


if __name__ == "__main__":
    main()
