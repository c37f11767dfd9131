"""Convergence along the steps: when does the answer form? (paper Sec. 3.1: explored early,
settled in the middle.)

From the x̂0 of every step: the distance to the final x̂0, d(t) = ‖x̂0(t) − x̂0(S−1)‖ / ‖x̂0(S−1)‖,
and the change from the previous step, Δ(t) = ‖x̂0(t) − x̂0(t−1)‖ / ‖x̂0(t)‖ (Δ(0) = NaN), overall,
per latent frame and per region of a grid. Norms are L2 over the channels and pixels involved.

**Settle step** (the documented rule): the first step t such that d(t') ≤ threshold for every
t' ≥ t, i.e. from t on the content stays within ``threshold`` (default 10 %) of the final x̂0.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .energy_plots import figure_to_image

DEFAULT_THRESHOLD = 0.1


def _rel(diff: torch.Tensor, ref: torch.Tensor, dims) -> torch.Tensor:
    num = torch.linalg.vector_norm(diff.float(), dim=dims)
    den = torch.linalg.vector_norm(ref.float(), dim=dims).clamp_min(1e-12)
    return num / den


def distances(x0: torch.Tensor, grid: int = 1) -> dict[str, np.ndarray]:
    """Distances of a trajectory of x̂0 latents.

    Args:
        x0: (S, C, F, H, W) float x̂0 of steps 0..S−1 (one batch item).
        grid: split H and W into grid × grid regions for the regional distances.

    Returns:
        dict of float64 arrays: ``to_final`` (S,), ``change`` (S,) with NaN at 0, ``to_final_frames``
        (S, F), ``change_frames`` (S, F), ``to_final_regions`` (S, grid, grid).

    Raises:
        ValueError: if x0 is not 5-D or holds fewer than 2 steps.
    """
    if x0.ndim != 5 or x0.shape[0] < 2:
        raise ValueError(f"need x̂0 of ≥ 2 steps shaped (S, C, F, H, W), got {tuple(x0.shape)}")
    final = x0[-1:]
    to_final = _rel(x0 - final, final.expand_as(x0), (1, 2, 3, 4))
    to_final_frames = _rel(x0 - final, final.expand_as(x0), (1, 3, 4))
    change = torch.full_like(to_final, float("nan"))
    change[1:] = _rel(x0[1:] - x0[:-1], x0[1:], (1, 2, 3, 4))
    change_frames = torch.full_like(to_final_frames, float("nan"))
    change_frames[1:] = _rel(x0[1:] - x0[:-1], x0[1:], (1, 3, 4))
    s, c, f, h, w = x0.shape
    g = max(1, min(grid, h, w))
    hs = [round(i * h / g) for i in range(g + 1)]
    ws = [round(j * w / g) for j in range(g + 1)]
    regions = torch.zeros(s, g, g)
    for i in range(g):
        for j in range(g):
            block = x0[..., hs[i]:hs[i + 1], ws[j]:ws[j + 1]]
            regions[:, i, j] = _rel(block - block[-1:], block[-1:].expand_as(block), (1, 2, 3, 4))
    return {"to_final": to_final.double().numpy(), "change": change.double().numpy(),
            "to_final_frames": to_final_frames.double().numpy(), "change_frames": change_frames.double().numpy(),
            "to_final_regions": regions.double().numpy()}


def settle_step(to_final: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> int:
    """First step from which the distance to the final x̂0 stays ≤ ``threshold`` (the last step always does).

    Raises:
        ValueError: if threshold is not positive or the curve is empty.
    """
    if threshold <= 0:
        raise ValueError(f"threshold: {threshold} must be positive")
    values = list(to_final)
    if not values:
        raise ValueError("to_final: empty")
    settle = len(values) - 1
    for t in range(len(values) - 1, -1, -1):
        if values[t] <= threshold:
            settle = t
        else:
            break
    return settle


def convergence_figure(steps: Sequence[int], dist: dict[str, np.ndarray], settle: int, threshold: float,
                       title: str, sigmas: Sequence[float] | None = None, switch_step: int | None = None):
    """Curves (distance to final, change per step) over a frames × steps heatmap, settle step marked."""
    steps = list(steps)
    fig = Figure(figsize=(12, 8), dpi=100, facecolor="white")
    top = fig.add_axes([0.08, 0.55, 0.84, 0.33])
    top.plot(steps, dist["to_final"], marker="o", color="#1565c0", label="distance to final x̂0")
    top.plot(steps, dist["change"], marker="s", color="#ef6c00", label="change from previous step Δx̂0")
    top.axhline(threshold, color="#777", ls=":", lw=1, label=f"threshold {threshold:g}")
    top.axvline(settle, color="#2e7d32", ls="--", lw=2, label=f"settles at step {settle}")
    if switch_step is not None:
        top.axvline(switch_step - 0.5, color="#f9a825", ls="-.", lw=1, label="low-noise expert from here")
    top.set_ylabel("relative L2 distance")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.legend(fontsize=9, loc="upper right")
    if sigmas is not None:
        sec = top.secondary_xaxis("top")
        ticks = steps[:: max(1, len(steps) // 8)]
        sec.set_xticks(ticks, [f"{float(sigmas[i]):.2f}" for i, _ in enumerate(steps) if steps[i] in ticks])
        sec.set_xlabel("σ")
    heat = fig.add_axes([0.08, 0.08, 0.76, 0.38])
    frames = dist["to_final_frames"].T
    im = heat.imshow(frames, aspect="auto", cmap="viridis_r", vmin=0, interpolation="nearest",
                     extent=(steps[0] - 0.5, steps[-1] + 0.5, frames.shape[0] - 0.5, -0.5))
    heat.axvline(settle - 0.5, color="white", ls="--", lw=1.5)
    heat.set_xlabel("denoising step")
    heat.set_ylabel("latent frame")
    cax = fig.add_axes([0.86, 0.08, 0.02, 0.38])
    fig.colorbar(im, cax=cax).set_label("distance to final, per frame")
    fig.suptitle(title, fontsize=12)
    return figure_to_image(fig)
