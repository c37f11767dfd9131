"""Information flow across denoising steps (paper Sec. 3.2, Fig. 3c).

For each injection (a step s, or a frame f), the perturbed run's representation at every
observed step t is compared with the clean run's by CKA dissimilarity (1 − CKA_linear): 0 = no
effect, 1 = fully corrupted. Noise at step s cannot change steps t < s, so those cells are 0 by
construction (the sweep does not recompute them). The step sensitivity of an injection is the
dissimilarity it leaves at the last step (the effect on the outcome).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .cka import cka_dissimilarity
from .energy_plots import figure_to_image


def flow_matrix(clean: Mapping[int, torch.Tensor], perturbed: Mapping[int, Mapping[int, torch.Tensor]],
                total_steps: int) -> np.ndarray:
    """The injection × observed-step dissimilarity matrix.

    Args:
        clean: step → representation of the clean run (a latent (B, C, F, H, W) / (C, F, H, W) or
            tokens (N, D)); every step 0..S−1 must be present.
        perturbed: injection index → (step → representation) of that perturbed run; missing steps
            (before a step injection) count as identical to the clean run.
        total_steps: S.

    Returns:
        float64 array (len(perturbed), S) in [0, 1], rows in ascending injection order.

    Raises:
        KeyError: if a clean step is missing.
    """
    rows = []
    for index in sorted(perturbed):
        run = perturbed[index]
        row = np.zeros(total_steps)
        for t in range(total_steps):
            if t in run:
                row[t] = cka_dissimilarity(_tokens(clean[t]), _tokens(run[t]))
        rows.append(row)
    return np.asarray(rows)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """Batch items' tokens stacked: (B, C, F, H, W) → (B·F·H·W, C)."""
    if x.ndim == 5:
        return x.movedim(1, -1).reshape(-1, x.shape[1])
    return x


def sensitivity(matrix: np.ndarray) -> np.ndarray:
    """Dissimilarity left at the last observed step, per injection: matrix[:, -1]."""
    return matrix[:, -1].copy()


def flow_figure(matrix: np.ndarray, injections: Sequence[int], mode: str, title: str,
                sigmas: Sequence[float] | None = None, switch_step: int | None = None):
    """Heatmap injection × observed step with the sensitivity curve beside it, as a PIL image.

    Args:
        matrix: (N, S) dissimilarities from :func:`flow_matrix`.
        injections: the N injection indices (steps or latent frames).
        mode: "step" or "frame" (axis labels).
        sigmas: optional schedule, shown on the top axis.
        switch_step: Wan2.2's expert switch, drawn as a dashed line.
    """
    n, steps = matrix.shape
    fig = Figure(figsize=(13, max(4.2, 1.2 + 0.32 * n)), dpi=100, facecolor="white")
    ax = fig.add_axes([0.07, 0.14, 0.55, 0.66])  # room above for the σ axis and the title
    im = ax.imshow(matrix, aspect="auto", cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest",
                   extent=(-0.5, steps - 0.5, n - 0.5, -0.5))
    ax.set_yticks(range(n), [str(i) for i in injections])
    ax.set_xlabel("observed step t (0 = noisiest)")
    ax.set_ylabel("noise injected at step s" if mode == "step" else "noise injected at latent frame f")
    if switch_step is not None:
        ax.axvline(switch_step - 0.5, color="#4fc3f7", ls="--", lw=1.2)
        ax.text(switch_step - 0.4, n - 0.6, "low-noise expert →", color="#4fc3f7", fontsize=9, va="bottom")
    if sigmas is not None:
        top = ax.secondary_xaxis("top")
        ticks = list(range(0, steps, max(1, steps // 8)))
        top.set_xticks(ticks, [f"{float(sigmas[t]):.2f}" for t in ticks])
        top.set_xlabel("noise level σ", fontsize=9, labelpad=3)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("CKA dissimilarity (1 = corrupted)")
    side = fig.add_axes([0.74, 0.14, 0.23, 0.66])
    side.plot(sensitivity(matrix), list(range(n)), color="#d32f2f", ls=":", marker="o", lw=2)
    side.set_ylim(n - 0.5, -0.5)
    side.set_yticks(range(n), [str(i) for i in injections])
    side.set_xlim(0, 1)
    side.set_xlabel("dissimilarity at the last step")
    side.set_title("sensitivity", fontsize=10)
    side.grid(alpha=0.3)
    fig.suptitle(title, fontsize=12)
    return figure_to_image(fig)
