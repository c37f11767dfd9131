"""Many-instance CoS-Toy statistics on a GPU, without ComfyUI's sampler (its CPU run is too slow for n≈256).

Same weights and model space as the nodes; the operations re-implement what the pack's nodes do:
noise at step s (CoS Noise Injection 'step': the latent entering step s → N(0, I), λ = 1), noise at latent
frame f (before every step), and the seed ensemble (CoS Seed Ensemble: K members, blocks 20–29 outputs
replaced by the member mean at step 0, member 0 continues). Euler, σ = shift(1 − i/S), S = 10, shift 5.
The CPU node runs in TOY.md cross-check a subset. Writes evidence_gpu.json to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cos_core.toy import latent as toy_latent  # noqa: E402
from cos_core.toy import tasks  # noqa: E402
from tools.toy import model as toy_model  # noqa: E402
from tools.toy.train import batch_inputs, load_ckpt, shift_sigma  # noqa: E402


@torch.no_grad()
def run(net, concat, seeds, steps=10, shift=5.0, mode=None, index=None, ensemble=0, layers=range(20, 30)):
    """Final x0 code per instance. ``ensemble`` = K members (0: off)."""
    dev = concat.device
    b = concat.shape[0]
    k = max(ensemble, 1)
    noise = torch.stack([torch.randn(16, *concat.shape[2:], generator=torch.Generator().manual_seed(int(s) * 7 + m))
                         for m in range(k) for s in seeds]).to(dev)             # member-major
    x = noise
    cc = concat.repeat(k, 1, 1, 1, 1)
    sig = shift_sigma(torch.linspace(1, 0, steps + 1, device=dev), shift)
    inj = torch.Generator().manual_seed(1000)
    hooks = []
    active = {"on": False}
    if ensemble:
        def hook(_m, _i, out):
            if not active["on"]:
                return out
            return out.view(k, b, *out.shape[1:]).mean(0, keepdim=True).expand(k, b, *out.shape[1:]).reshape(out.shape)
        hooks = [net.blocks[i].register_forward_hook(hook) for i in layers]
    for i in range(steps):
        if mode == "step" and i == index:
            x = torch.randn(x.shape, generator=inj).to(dev)
        if mode == "frame":
            x = x.clone()
            x[:, :, index] = torch.randn(x[:, :, index].shape, generator=inj).to(dev)
        if ensemble and i == 1:                       # after the ensemble step only member 0 continues
            x, cc, k = x[:b], cc[:b], 1
        active["on"] = ensemble and i == 0
        s = sig[i].expand(x.shape[0])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            v = net(torch.cat([x, cc], 1), s * 1000, toy_model.context(x.shape[0], dev)).float()
        x = x + (sig[i + 1] - sig[i]) * v
    for h in hooks:
        h.remove()
    return x[:b]


def rate(succ):
    n, k = len(succ), float(np.sum(succ))
    lo, hi = tasks.wilson(k, n)
    return {"n": n, "success": k / n, "ci95": [round(lo, 3), round(hi, 3)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=str(ROOT / "tools" / "toy" / "_ckpt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--kinds", default="dot,door,maze3,maze4", help="dot, door, mazeN (N rooms a side)")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = toy_model.build(device=dev)
    import comfy.model_management

    comfy.model_management.in_training = True       # pure-torch RoPE (no comfy_kitchen kernels needed)
    load_ckpt(net, Path(a.ckpt))
    net.eval()
    seeds = list(range(a.n))
    result = {}
    t0 = time.time()
    for name in a.kinds.split(","):
        kind, rooms = ("maze", int(name[4:])) if name.startswith("maze") else (name, 0)
        insts = [tasks.task(kind, s, rooms or 3) for s in seeds]
        cells = torch.tensor(np.stack([i.video for i in insts]), device=dev)
        _, concat = batch_inputs(cells)

        def score(code):
            vid = toy_latent.from_code(code).cpu().numpy()
            return [tasks.score(i, v)["success"] for i, v in zip(insts, vid)]

        res = {"clean": rate(score(run(net, concat, seeds)))}
        for s in range(10):
            res[f"step {s}"] = rate(score(run(net, concat, seeds, mode="step", index=s)))
        for f in range(5):
            res[f"frame {f}"] = rate(score(run(net, concat, seeds, mode="frame", index=f)))
        base = score(run(net, concat, seeds))
        for kk in (3, 5):
            ens = score(run(net, concat, seeds, ensemble=kk))
            res[f"ensemble K={kk}"] = rate(ens) | {"ens_only": int(sum(e > b for e, b in zip(ens, base))),
                                                    "base_only": int(sum(b > e for e, b in zip(ens, base)))}
        # the same K members without the merge (α = 0): best-of-K is not what the ensemble does; report member 0
        result[name] = res
        print(name, json.dumps(res), flush=True)
    result["n"] = a.n
    result["seconds"] = round(time.time() - t0, 1)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "evidence_gpu.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
