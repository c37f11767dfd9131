"""The layer-swap sweep as one picture (paper Fig. 6b): outcomes per swapped layer, and where they flip."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .energy_plots import figure_to_image


def swap_figure(frames: Mapping, layers: Sequence[int], to_original: Sequence[float],
                to_alternative: Sequence[float], title: str, columns: int = 11):
    """Thumbnails (original, alternative, then one per swapped layer) above the distance curves.

    Args:
        frames: "original", "alternative" and each layer → an RGB frame (H, W, 3) float in [0, 1].
        layers: the swapped layers, in order.
        to_original, to_alternative: relative distance of each swapped outcome to the two runs.
        columns: thumbnails per row.
    """
    keys = ["original", "alternative", *layers]
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(columns * 1.3, rows * 1.45 + 3.6), dpi=100, facecolor="white")
    grid_top = 1.0 - 0.5 / fig.get_figheight()
    cell_h = (rows * 1.45) / fig.get_figheight() / rows
    for i, key in enumerate(keys):
        r, c = divmod(i, columns)
        ax = fig.add_axes([c / columns + 0.005, grid_top - (r + 1) * cell_h, 1 / columns - 0.01, cell_h * 0.82])
        image = frames[key]
        ax.imshow(np.clip(image.numpy() if isinstance(image, torch.Tensor) else image, 0, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        label = key if isinstance(key, str) else f"swap L{key}"
        color = {"original": "#1565c0", "alternative": "#c62828"}.get(label, "black")
        ax.set_title(label, fontsize=9, color=color, pad=2)
    curve = fig.add_axes([0.07, 0.55 / fig.get_figheight(), 0.9, 2.5 / fig.get_figheight()])
    curve.plot(layers, to_original, marker="o", color="#1565c0", label="distance to the original")
    curve.plot(layers, to_alternative, marker="s", color="#c62828", label="distance to the alternative")
    curve.set_xlabel("swapped layer k")
    curve.set_ylabel("relative L2 of final x̂0")
    curve.grid(alpha=0.3)
    curve.legend(fontsize=9)
    fig.suptitle(title, fontsize=11, y=0.995)
    return figure_to_image(fig)
