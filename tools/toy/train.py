"""Train the CoS-Toy model with rectified flow matching, image-to-video, in ComfyUI's model space.

x_σ = (1−σ)·x0 + σ·ε, target v = ε − x0 (ComfyUI's CONST flow: denoised = x − σ·v, timestep = 1000·σ),
σ = shift(t) with t ~ U(0, 1) and shift drawn from {1, 3, 5} so every σ a sampler with shift 1…8 visits is
trained. The model input is [x_σ, mask(4), first-frame code(16)], exactly ComfyUI's concat_cond.

Runs for ``--minutes`` and saves a checkpoint (fp32 weights, two shards under 16 MiB so they come back
from the GPU machine), which ``--resume`` continues (fresh AdamW moments: they are not shipped).

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
MAZE_ROOMS = (3, 4, 5)


def _gen(args):
    kind, seed = args
    if kind == "maze":
        rooms = MAZE_ROOMS[seed % len(MAZE_ROOMS)]
        return tasks.make_maze(seed, rooms=rooms, min_len=3 if rooms == 3 else 7).video
    return tasks.make_dot(seed).video


def make_pool(n_maze: int, n_dot: int, seed0: int, workers: int) -> np.ndarray:
    jobs = [("maze", seed0 + i) for i in range(n_maze)] + [("dot", seed0 + n_maze + i) for i in range(n_dot)]
    with Pool(workers) as pool:
        videos = pool.map(_gen, jobs, chunksize=512)
    return np.stack(videos).astype(np.float16)             # N, F, G, G, 3


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


def evaluate(net, device, n=128, kinds=(("maze", 3), ("maze", 4), ("maze", 5), ("dot", 0)), steps=20):
    net.eval()
    out = {}
    for kind, rooms in kinds:
        insts = [tasks.make_maze(s, rooms=rooms, min_len=3 if rooms == 3 else 7) if kind == "maze"
                 else tasks.make_dot(s) for s in range(n)]
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


def save_ckpt(net, path: Path, info: dict):
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    keys = sorted(sd)
    half = len(keys) // 2
    for i, part in enumerate((keys[:half], keys[half:])):
        save_file({k: sd[k] for k in part}, str(path / f"ckpt_{i}.safetensors"))
    (path / "ckpt.json").write_text(json.dumps(info, indent=1))


def load_ckpt(net, path: Path) -> dict:
    from safetensors.torch import load_file

    sd = {}
    for i in range(2):
        sd.update(load_file(str(path / f"ckpt_{i}.safetensors")))
    net.load_state_dict(sd)
    return json.loads((path / "ckpt.json").read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default="")
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--decay", action="store_true", help="cosine-decay the lr to 0 over this run")
    ap.add_argument("--pool", type=int, default=150_000)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--eval-every", type=float, default=2.0, help="minutes")
    ap.add_argument("--eval-n", type=int, default=128)
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
    info = {"step": 0, "seen": 0, "runs": [], "log": []}
    if a.resume and (Path(a.resume) / "ckpt.json").exists():
        info = load_ckpt(net, Path(a.resume))
        print(f"resumed at step {info['step']}", flush=True)
    run_index = len(info["runs"])
    gen = torch.Generator().manual_seed(toy_model.SEED + run_index)
    pool_seed = TRAIN_SEED0 + run_index * 10_000_000
    n_maze = int(a.pool * 0.75)
    pool = torch.tensor(make_pool(n_maze, a.pool - n_maze, pool_seed, a.workers), device=device)
    print(f"pool {tuple(pool.shape)} in {time.time() - t_start:.1f}s; params "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M", flush=True)

    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99))
    budget = a.minutes * 60 - (time.time() - t_start)
    t0 = time.time()
    last_eval = t0
    step0 = info["step"]
    losses = []
    shifts = torch.tensor([1.0, 3.0, 5.0])
    net.train()
    while True:
        elapsed = time.time() - t0
        if elapsed > budget:
            break
        frac = elapsed / budget
        warm = min(1.0, (info["step"] - step0 + 1) / 200)
        lr = a.lr * warm * (0.5 * (1 + math.cos(math.pi * frac)) if a.decay else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(len(pool), (a.batch,), generator=gen).to(device)
        cells = augment(pool[idx].float(), gen)
        x0, concat = batch_inputs(cells)
        b = x0.shape[0]
        t = torch.rand(b, generator=gen).to(device)
        sh = shifts[torch.randint(3, (b,), generator=gen)].to(device)
        sigma = shift_sigma(t, sh).clamp(1e-4, 1.0)
        eps = torch.randn(x0.shape, generator=gen).to(device)
        s = sigma.view(b, 1, 1, 1, 1)
        x = (1 - s) * x0 + s * eps
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            v = net(torch.cat([x, concat], 1), sigma * 1000, toy_model.context(b, device))
        loss = torch.nn.functional.mse_loss(v.float(), eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        info["step"] += 1
        info["seen"] += b
        losses.append(float(loss.detach()))
        if info["step"] % 100 == 0:
            rec = {"step": info["step"], "loss": float(np.mean(losses[-100:])), "lr": lr,
                   "min": round((time.time() - t_start) / 60, 2)}
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
                         "batch": a.batch, "lr": a.lr, "decay": a.decay})
    save_ckpt(net, out, info)
    toy_model.export(net.state_dict(), out / toy_model.WEIGHTS_NAME,
                     meta={"config": toy_model.CONFIG, "step": info["step"], "seen": info["seen"],
                           "runs": info["runs"], "eval": ev})
    print("saved", out, flush=True)


if __name__ == "__main__":
    main()
