"""The paper's evidence in miniature, produced by the pack's own nodes on the CoS-Toy model (CPU).

Writes ``web/docs/img/toy_*.png`` and ``tools/toy/weights/evidence.json`` (numbers for TOY.md).
Run in ComfyUI's Python with ``COMFYUI_PATH`` set:  python tools/toy/evidence.py [--n 24] [--only A,B,...]
A: x̂0 grids over steps   B: noise at step vs at frame   C: information-flow heatmap
D: layer energy           E: seed ensemble vs baseline     T: training curve
N: plot of the noise-at-step vs noise-at-frame numbers: stage B's (the nodes, ``--noise-from nodes``, the
   default) or tools/toy/gpu_eval.py's (``--noise-from gpu``)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
IMG = ROOT / "web" / "docs" / "img"
NUMBERS = ROOT / "tools" / "toy" / "weights" / "evidence.json"
STEPS = 10
DEADLINE = float("inf")


def setup():
    from tests.comfy_fixtures import _import_comfy, load_pack

    os.environ.setdefault("COMFYUI_PATH", str(Path(os.environ.get("COMFYUI_PATH", "."))))
    _import_comfy()
    load_pack()


def save_png(image, name):
    from PIL import Image

    arr = (image[0].clamp(0, 1).numpy() * 255).astype("uint8")
    IMG.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(IMG / name)
    print("wrote", IMG / name, arr.shape, flush=True)


class Toy:
    def __init__(self):
        from chain_of_steps_pack.nodes import toy

        self.toy = toy
        self.model = toy.load_toy_model(5.0)
        self.vae = toy.ToyVAE()

    def inputs(self, kind, seed, rooms=3):
        from comfy_extras.nodes_wan import WanImageToVideo

        start, _, cond = self.toy.CoSToyTask.execute(kind, seed, rooms).result
        return WanImageToVideo.execute(cond, cond, self.vae, 96, 96, 17, 1, start_image=start).result

    def batch_inputs(self, kind, seeds, rooms=3):
        """N instances in one batch: per-item concat_latent_image (ComfyUI's concat_cond keeps a full batch)."""
        import torch

        ins = [self.inputs(kind, s, rooms) for s in seeds]
        ctx = ins[0][0][0][0]
        extra = {"concat_latent_image": torch.cat([p[0][1]["concat_latent_image"] for p, _, _ in ins]),
                 "concat_mask": ins[0][0][0][1]["concat_mask"]}
        cond = [[ctx, extra]]
        lat = {"samples": torch.cat([lat["samples"] for _, _, lat in ins])}
        return cond, cond, lat

    def sample(self, pos, neg, lat, seed, model=None, **kw):
        from chain_of_steps_pack.nodes.sampler import CoSSampler

        args = dict(model_high=model or self.model, positive=pos, negative=neg, latent=lat, seed=seed, steps=STEPS,
                    cfg=1.0, sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9,
                    switch_step=STEPS, capture_steps="all", preview_frames=0)
        args.update(kw)
        return CoSSampler.PREPARE_CLASS_CLONE(None).execute(**args).result

    def score(self, samples, kind, seed, rooms=3):
        import torch

        vids = self.vae.decode(samples)
        return [self.toy.CoSToyScore.execute(torch.as_tensor(v), kind, seed, rooms).result[0] for v in vids]


def stage_a(t: Toy, out: dict):
    """x̂0 grids: dot seed 0, and for maze (3 rooms) and door the first seed from 0 up that this run solves
    (the seeds tried before it are recorded: they show how often it fails). Mazes whose path is shorter
    than 7 cells (start and goal two rooms apart at most) are skipped: they show too little."""
    from cos_core.toy import tasks

    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps

    shown = {}
    for kind, first in (("dot", 0), ("maze", 0), ("door", 0)):
        tried = []
        for seed in range(first, first + 40):
            if kind == "maze" and len(tasks.task(kind, seed, 3).info["path"]) < 7:
                continue
            pos, neg, lat = t.inputs(kind, seed)
            o, _, trace, _ = t.sample(pos, neg, lat, seed=0)
            tried.append(seed)
            if t.score(o["samples"], kind, seed)[0] == 1.0 or kind == "dot":
                break
        img = CoSDecodeSteps.PREPARE_CLASS_CLONE(None).execute(trace, "vae", "grid: steps × frames", "all", 5, -1,
                                                               vae=t.vae).result[0]
        save_png(img, f"toy_x0_grid_{kind}.png")
        shown[kind] = {"seed": tried[-1], "solved": t.score(o["samples"], kind, tried[-1])[0], "tried": tried}
    out["x0_grid"] = shown
    out.pop("x0_grid_solved", None)
    print("x0 grids:", shown, flush=True)


def rate(successes):
    from cos_core.toy.tasks import wilson

    n = len(successes)
    k = sum(successes)
    if n == 0:
        return {"n": 0}
    lo, hi = wilson(k, n)
    return {"n": n, "success": k / n, "ci95": [round(lo, 3), round(hi, 3)]}


def stage_b(t: Toy, out: dict, n: int, kinds):
    from chain_of_steps_pack.nodes.noise import CoSNoiseInjection

    res = {}
    conds = [("clean", None)] + [("step", s) for s in range(STEPS)] + [("frame", f) for f in range(5)]
    for kind in kinds:
        res[kind] = {}
        pos, neg, lat = t.batch_inputs(kind, range(n))
        for name, idx in conds:
            perturb = None
            if name != "clean":
                perturb = CoSNoiseInjection.execute(name, idx, 1.0, 1000).result[0]
            o = t.sample(pos, neg, lat, seed=0, perturb=perturb, capture_steps="-1")
            vids = t.vae.decode(o[0]["samples"]).numpy()
            succ = [t.toy.CoSToyScore.execute(__import__("torch").as_tensor(v), kind, s, 3).result[0]
                    for s, v in enumerate(vids)]
            key = name if idx is None else f"{name} {idx}"
            res[kind][key] = rate(succ)
            print(kind, key, res[kind][key], flush=True)
    out["noise"] = res


def stage_c(t: Toy, out: dict):
    from chain_of_steps_pack.nodes.info_flow import CoSInformationFlow

    flows = {}
    for mode in ("step", "frame"):
        pos, neg, lat = t.inputs("dot", 0)
        image, text = CoSInformationFlow.PREPARE_CLASS_CLONE(None).execute(
            model_high=t.model, positive=pos, negative=neg, latent=lat, seed=0, steps=STEPS, cfg=1.0,
            sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=STEPS,
            mode=mode, injections="all", strength=1.0, noise_seed=1, filename_prefix="toy/flow").result
        save_png(image, f"toy_info_flow_{mode}.png")
        flows[mode] = json.loads(text)
    out["info_flow"] = {m: {k: v for k, v in f.items() if k in ("dissimilarity", "sensitivity", "injections")}
                        for m, f in flows.items()}


def stage_d(t: Toy, out: dict):
    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps
    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    res = CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(t.model, "all", "all", "cond", True, False,
                                                           "shared (first probed step)").result
    probed, handle = res[0], res[-1]
    pos, neg, lat = t.inputs("maze", 1)
    t.sample(pos, neg, lat, seed=0, model=probed, capture_steps="-1")
    node = CoSEnergyMaps.PREPARE_CLASS_CLONE(None)
    for view, step, name in (("energy grid (layers × frames)", 2, "toy_energy_grid.png"),
                             ("mean energy across steps", 0, "toy_energy_steps.png"),
                             ("temporal energy curves", 2, "toy_energy_temporal.png")):
        save_png(node.execute(handle, view, step, "all", "per layer", 0, "cond").result[0], name)
    trace = handle.snapshot()
    energy = {}
    for s in trace.steps:
        rec = trace[s]
        energy[s] = [float(rec.tensors[f"energy/L{i:02d}/cond"].float().mean()) for i in range(30)]
    out["energy_mean_per_layer"] = energy


def stage_e(t: Toy, out: dict, n: int, kinds):
    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble

    res = {}
    for kind in kinds:
        base, ens = [], []
        for seed in range(n):
            pos, neg, lat = t.inputs(kind, seed)
            o = t.sample(pos, neg, lat, seed=seed, capture_steps="-1")
            base.append(t.score(o[0]["samples"], kind, seed)[0])
            if time.time() > DEADLINE:
                base.pop()
                break
            r = CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(
                t.model, lat, members=3, seed=seed, steps="0", layers="20-29", alpha=1.0, merge="per layer",
                continue_with="primary").result
            high, low, elat, noise, sampler = r[:5]
            o = t.sample(pos, neg, elat, seed=seed, model=high, model_low=low, noise=noise, sampler=sampler,
                         capture_steps="-1")
            ens.append(t.score(o[0]["samples"], kind, seed)[0])
            print(kind, seed, base[-1], ens[-1], flush=True)
        if not base:
            continue
        both = sum(a == b for a, b in zip(base, ens))
        res[kind] = {"baseline": rate(base), "ensemble": rate(ens), "agree": both,
                     "ens_only": sum(b > a for a, b in zip(base, ens)),
                     "base_only": sum(a > b for a, b in zip(base, ens))}
        print(kind, res[kind], flush=True)
    out["ensemble"] = res


def stage_t(out: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = json.loads((ROOT / "tools" / "toy" / "weights" / "ckpt.json").read_text())
    loss = [(r["step"], r["loss"]) for r in info["log"] if "loss" in r]
    evals = [(r["step"], r["eval"]) for r in info["log"] if "eval" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    ax[0].plot(*zip(*loss))
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_title("weighted v-MSE loss (dotted: run boundaries)")
    for key in evals[-1][1]:
        pts = [(s, e[key]["success"]) for s, e in evals if key in e]
        ax[1].plot(*zip(*pts), marker="o", label=key)
    ends = [0]
    for run in info["runs"]:
        ends.append(ends[-1] + run["steps"])
    for a in ax:
        for x in ends[1:-1]:
            a.axvline(x, color="grey", ls=":", lw=1)
    ax[1].set_xlabel("step")
    ax[1].set_title("held-out success (n=128, 20 Euler steps)")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(IMG / "toy_training.png")
    print("wrote toy_training.png", flush=True)
    out["training"] = {"loss": loss, "eval": evals, "runs": info["runs"]}


def stage_n(out: dict, source: str = "nodes"):
    """Plot success vs injection point: stage B's node runs (``out["noise"]``) or tools/toy/gpu_eval.py's
    ``evidence_gpu.json`` (``source="gpu"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if source == "gpu":
        data = json.loads((ROOT / "tools" / "toy" / "weights" / "evidence_gpu.json").read_text())
        how = "gpu_eval.py"
    else:
        data = dict(out["noise"])
        data["n"] = min(v["clean"]["n"] for v in data.values())
        how = "CoS Noise Injection + CoS Sampler + CoS Toy Score"
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100, sharey=True)
    names = [k for k, v in data.items() if isinstance(v, dict) and "clean" in v]
    for name in names:
        res = data[name]
        for a, mode, count in ((ax[0], "step", 10), (ax[1], "frame", 5)):
            ys = [res[f"{mode} {i}"]["success"] for i in range(count)]
            lo = [res[f"{mode} {i}"]["ci95"][0] for i in range(count)]
            hi = [res[f"{mode} {i}"]["ci95"][1] for i in range(count)]
            line, = a.plot(range(count), ys, marker="o", label=f"{name} (clean {res['clean']['success']:.2f})")
            a.fill_between(range(count), lo, hi, color=line.get_color(), alpha=0.2)
            a.axhline(res["clean"]["success"], color=line.get_color(), ls=":", lw=1)
    ax[0].set_title(f"noise at step s (all frames), n={data.get('n', 192)} each")
    fig.suptitle(f"CoS-Toy, 10 Euler steps, shift 5: {how}", fontsize=9, y=0.99)
    ax[0].set_xlabel("step s (0 = noisiest, 10 steps)")
    ax[1].set_title("noise at latent frame f (every step)")
    ax[1].set_xlabel("latent frame f")
    ax[1].set_xticks(range(5))
    ax[0].set_xticks(range(10))
    ax[0].set_ylabel("success (95% Wilson CI)")
    ax[1].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(IMG / "toy_noise_step_vs_frame.png")
    print("wrote toy_noise_step_vs_frame.png", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--only", default="T,A,D,C,E,B")
    ap.add_argument("--kinds", default="dot,maze")
    ap.add_argument("--minutes", type=float, default=0, help="stop stage E's loop after this long (0: never)")
    ap.add_argument("--noise-from", choices=("nodes", "gpu"), default="nodes", help="stage N's numbers")
    a = ap.parse_args()
    global DEADLINE
    if a.minutes:
        DEADLINE = time.time() + a.minutes * 60
    out = json.loads(NUMBERS.read_text()) if NUMBERS.exists() else {}
    kinds = a.kinds.split(",")
    todo = a.only.split(",")
    if "T" in todo:
        stage_t(out)
    if set(todo) - {"T", "N"}:
        setup()
        t = Toy()
    for key, fn in (("A", lambda: stage_a(t, out)), ("D", lambda: stage_d(t, out)), ("C", lambda: stage_c(t, out)),
                    ("E", lambda: stage_e(t, out, a.n, kinds)), ("B", lambda: stage_b(t, out, a.n, kinds))):
        if key in todo:
            t0 = time.time()
            fn()
            out.setdefault("seconds", {})[key] = round(time.time() - t0, 1)
            NUMBERS.write_text(json.dumps(out, indent=1))
            print("stage", key, "done in", out["seconds"][key], "s", flush=True)
    if "N" in todo:
        stage_n(out, a.noise_from)


if __name__ == "__main__":
    main()
