"""Labelled pictures of layer energy and PCA maps (paper Sec. 5.1 "Layer-wise Token-Level
Visualization", Fig. 6(a), App. D Fig. 8).

The probe records, per probed step and layer, token-energy maps E = ‖U‖₂ (F, H, W) float32 (see
:mod:`cos_core.energy`) and PCA colour maps (F, H, W, 3) in [0, 1] (see :mod:`cos_core.pca`).
The paper's figures (and the official tool) autoscale every heatmap on its own, which hides
trends across layers and frames; here every picture says how it is scaled:

* :func:`energy_grid`: layers × frames heatmaps, one global colour scale (with a colour bar) or
  one scale per layer (a colour bar per row);
* :func:`pca_grid`: the same layout with PCA RGB cells;
* :func:`temporal_curves`: mean energy per frame, one line per layer;
* :func:`cross_step_curves`: mean energy per layer across denoising steps, with σ and the Wan2.2
  expert switch.

Everything is drawn with :class:`matplotlib.figure.Figure` on a private Agg canvas (never
pyplot, no rcParams changes), so it is safe to call from ComfyUI's worker threads. Each function
returns an RGB :class:`PIL.Image.Image`; ``return_layout=True`` also returns the pixel boxes of
what was drawn (for tests and for nodes that want to annotate or crop).
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator
from matplotlib.transforms import blended_transform_factory
from PIL import Image

from .render import ACCENT, BACKGROUND, TEXT

NORMS = ("global", "per layer")
DPI = 100
TARGET_WIDTH = 1400  # px; ComfyUI's preview shows 1000-1600 px comfortably
MAX_GRID_HEIGHT = 1800  # px; 40 layers still get 40+ px rows
MAX_CELL_HEIGHT = 400  # px; tall (portrait) maps stay on screen
PAD = 16
GAP = 3  # px between cells
ENERGY_UNIT = "‖U‖₂"
PCA_NOTE = "colours: PCA components 1-3 → R,G,B"
SWITCH_LABEL = "low-noise expert"

_BG = tuple(v / 255 for v in BACKGROUND)
_FG = tuple(v / 255 for v in TEXT)
_ACCENT = tuple(v / 255 for v in ACCENT)
_AXES_BG = (0.12, 0.12, 0.12)
_MUTED = (0.68, 0.68, 0.68)
_GRIDLINE = (0.26, 0.26, 0.26)
_BAD = (0.35, 0.35, 0.35)  # non-finite values
_SEPARATOR = (46, 46, 46)  # the gaps between cells, lighter than the background so black cells stay apart

Box = tuple[int, int, int, int]  # (left, top, right, bottom) in image pixels, right/bottom exclusive


@dataclass
class GridLayout:
    """Where :func:`energy_grid` / :func:`pca_grid` drew things, in image pixels.

    Attributes:
        size: (width, height) of the image.
        cells: ``(layer, frame index) → (left, top, right, bottom)`` of each heatmap cell.
        colorbars: ``None → box`` of the global colour bar, or ``layer → box`` of each row's bar;
            empty for PCA grids.
        limits: ``layer → (vmin, vmax)`` colour limits in ‖U‖₂ used for that row (energy only).
    """

    size: tuple[int, int]
    cells: dict[tuple[int, int], Box] = field(default_factory=dict)
    colorbars: dict[int | None, Box] = field(default_factory=dict)
    limits: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass
class CurveLayout:
    """Where :func:`temporal_curves` / :func:`cross_step_curves` drew things, in image pixels.

    Attributes:
        size: (width, height) of the image.
        plot: (left, top, right, bottom) of the plotting area.
        x_pixels: x value (frame index or step) → image column of that x position.
        switch_x: image column of the expert-switch line, or None when none was drawn.
        colors: layer → RGB colour (floats in [0, 1]) of its line.
        y_range: (bottom, top) of the y axis in data units (‖U‖₂, or fractions of the layer max).
    """

    size: tuple[int, int]
    plot: Box
    x_pixels: dict[float, int] = field(default_factory=dict)
    switch_x: int | None = None
    colors: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    y_range: tuple[float, float] = (0.0, 1.0)


# ----------------------------------------------------------------------------- helpers


def figure_to_image(fig: Figure) -> Image.Image:
    """Render a matplotlib Figure with Agg (no pyplot) and return it as an RGB PIL image.

    The figure keeps its own canvas if that is already Agg, otherwise an Agg canvas is attached.
    Transparent parts are composited over the pack's background colour. The image is exactly
    ``fig.get_size_inches() * fig.dpi`` pixels.
    """
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    rgba = Image.fromarray(np.asarray(canvas.buffer_rgba()).copy(), "RGBA")
    if rgba.getextrema()[3][0] == 255:
        return rgba.convert("RGB")
    back = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(back, rgba).convert("RGB")


def _new_figure(width: int, height: int) -> Figure:
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=_BG)
    FigureCanvasAgg(fig)
    return fig


class _Measure:
    """Text sizes in pixels, from a private Agg renderer (DejaVu Sans, matplotlib's default)."""

    def __init__(self):
        self._renderer = RendererAgg(8, 8, DPI)

    def width(self, text: str, size: float, weight: str = "normal") -> float:
        if not text:
            return 0.0
        font = FontProperties(size=size, weight=weight)
        w, _, _ = self._renderer.get_text_width_height_descent(text, font, ismath=False)
        return float(w)

    def widest(self, texts: Sequence[str], size: float, weight: str = "normal") -> float:
        return max((self.width(t, size, weight) for t in texts), default=0.0)

    @staticmethod
    def line(size: float) -> float:
        """Line height in pixels for a font size in points."""
        return size * DPI / 72.0 * 1.3

    def wrap(self, text: str, size: float, width: float, max_lines: int = 3, weight: str = "normal") -> list[str]:
        """Split text into lines no wider than ``width`` pixels (at most ``max_lines``)."""
        lines: list[str] = []
        for para in str(text).splitlines() or [""]:
            total = self.width(para, size, weight)
            if total <= width:
                lines.append(para)
                continue
            chars = max(8, int(len(para) * width / total))
            while True:
                wrapped = textwrap.wrap(para, chars, break_long_words=True) or [""]
                if chars <= 8 or all(self.width(line, size, weight) <= width for line in wrapped):
                    break
                chars -= 2
            lines.extend(wrapped)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][: max(0, len(lines[-1]) - 1)] + "…"
        return lines


def _fmt(value: float) -> str:
    """A short, fixed-width-ish number for colour-bar and axis labels."""
    if not math.isfinite(value):
        return str(value)
    a = abs(value)
    if a >= 10000:
        return f"{value:.3g}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    if a == 0:
        return "0"
    return f"{value:.3g}"


def _check_norm(norm) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm: {norm!r} is not one of {list(NORMS)}")


def _as_array(value, name: str) -> np.ndarray:
    """numpy or torch (any float dtype, any device) → float32 numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device="cpu", dtype=torch.float32).numpy()
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected numbers (numpy array, torch tensor or list), got "
                        f"{type(value).__name__}") from err


def _layer_key(key, name: str) -> int:
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
        raise TypeError(f"{name}: keys must be layer indices (int), got {key!r}")
    return int(key)


def _layer_maps(maps, name: str, ndim: int, channels: int | None) -> tuple[list[int], list[np.ndarray]]:
    """Validate a {layer: map} dict; returns sorted layers and float32 arrays of one shape."""
    if not isinstance(maps, Mapping):
        raise TypeError(f"{name}: expected a dict {{layer: array}}, got {type(maps).__name__}")
    if not maps:
        raise ValueError(f"{name}: is empty; need at least one layer")
    items = sorted((_layer_key(k, name), v) for k, v in maps.items())
    layers, arrays = [], []
    want = "(F, H, W)" if channels is None else f"(F, H, W, {channels})"
    for layer, value in items:
        arr = _as_array(value, name)
        if arr.ndim == ndim + 1 and arr.shape[0] == 1:  # the probe's (B=1, …) layout
            arr = arr[0]
        if arr.ndim != ndim or (channels is not None and arr.shape[-1] != channels) or 0 in arr.shape:
            raise ValueError(f"{name}: L{layer:02d} must be {want}, got shape {tuple(arr.shape)}")
        layers.append(layer)
        arrays.append(arr)
    first_layer, first = layers[0], arrays[0]
    for layer, arr in zip(layers[1:], arrays[1:]):
        if arr.shape[0] != first.shape[0]:
            raise ValueError(f"{name}: every layer needs the same number of frames F; L{first_layer:02d} has "
                             f"F={first.shape[0]} but L{layer:02d} has F={arr.shape[0]}")
        if arr.shape != first.shape:
            raise ValueError(f"{name}: every layer needs the same map shape; L{first_layer:02d} is "
                             f"{tuple(first.shape)} but L{layer:02d} is {tuple(arr.shape)}")
    return layers, arrays


def _check_labels(labels, count: int, name: str, what: str) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"{name}: expected a list of {count} strings, got {type(labels).__name__}")
    if len(labels) != count:
        raise ValueError(f"{name}: need {count} labels (one per {what}), got {len(labels)}")
    return [str(s) for s in labels]


def _limits(values: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) over the finite values, (0, 1) when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    return float(finite.min()), float(finite.max())


def _colour_norm(lo: float, hi: float) -> Normalize:
    """A clipping Normalize; a constant map gets a range centred on its value (middle colour)."""
    if hi <= lo:
        half = 0.5 if lo == 0 else abs(lo) * 0.05
        lo, hi = lo - half, hi + half
    return Normalize(lo, hi, clip=True)


def _get_cmap(cmap) -> Colormap:
    if isinstance(cmap, Colormap):
        base = cmap
    else:
        try:
            base = matplotlib.colormaps[cmap]
        except (KeyError, TypeError) as err:
            raise ValueError(f"cmap: {cmap!r} is not a matplotlib colormap name") from err
    return base.with_extremes(bad=_BAD)


def _resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour enlargement (each token a sharp block, like imshow 'nearest'); shrinking
    averages the tokens a pixel covers (box filter), so sparse hot tokens never vanish."""
    h, w = plane.shape
    if height >= h and width >= w:
        rows = (np.arange(height) * h) // height
        cols = (np.arange(width) * w) // width
        return plane[rows[:, None], cols[None, :]]
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.BOX))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(np.nan_to_num(rgb, nan=0.0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _style_axes(ax, label_size: float = 11) -> None:
    ax.set_facecolor(_AXES_BG)
    for spine in ax.spines.values():
        spine.set_color(_MUTED)
    ax.tick_params(colors=_FG, labelcolor=_FG, labelsize=label_size, which="both")
    ax.grid(True, color=_GRIDLINE, linewidth=0.7)
    ax.set_axisbelow(True)


def _px_rect(fig_w: int, fig_h: int, left: float, top: float, width: float, height: float) -> list[float]:
    """Pixel box (top-left origin) → figure-fraction rect [left, bottom, width, height]."""
    return [left / fig_w, 1.0 - (top + height) / fig_h, width / fig_w, height / fig_h]


def _text(fig, fig_w, fig_h, x, y, s, **kw):
    """fig.text at pixel coordinates with a top-left origin."""
    kw.setdefault("color", _FG)
    return fig.text(x / fig_w, 1.0 - y / fig_h, s, **kw)


# ----------------------------------------------------------------------------- grids


def _grid(kind: str, maps, frame_labels, title: str, norm: str, cmap, return_layout: bool):
    energy = kind == "energy"
    if energy:
        _check_norm(norm)
        colormap = _get_cmap(cmap)
    layers, arrays = _layer_maps(maps, "maps", 3 if energy else 4, None if energy else 3)
    n_rows, n_frames, h, w = len(layers), arrays[0].shape[0], arrays[0].shape[1], arrays[0].shape[2]
    labels = _check_labels(frame_labels, n_frames, "frame_labels", "frame")
    title = str(title)
    measure = _Measure()

    # colour limits
    limits: dict[int, tuple[float, float]] = {}
    if energy:
        if norm == "global":
            both = _limits(np.concatenate([a.ravel() for a in arrays]))
            limits = {layer: both for layer in layers}
        else:
            limits = {layer: _limits(a) for layer, a in zip(layers, arrays)}

    # cell size: aim at TARGET_WIDTH, keep the map's aspect, rows tall enough for their labels
    row_texts = [f"L{layer:02d}" for layer in layers]
    min_cell_h = 30 if (energy and norm == "per layer") else 18
    if energy and norm == "global":
        right_w_guess = 130
    elif energy:
        right_w_guess = 90
    else:
        right_w_guess = 0
    row_label_w = measure.widest(row_texts, 11) + 12
    fixed = 2 * PAD + row_label_w + right_w_guess
    cw = (TARGET_WIDTH - fixed + GAP) / n_frames - GAP
    cw = min(max(cw, 20.0), 320.0)
    if cw * h / w < min_cell_h:
        cw = min(min_cell_h * w / h, 320.0)
    if cw * h / w > MAX_CELL_HEIGHT:
        cw = MAX_CELL_HEIGHT * w / h
    if n_rows * (cw * h / w + GAP) > MAX_GRID_HEIGHT:
        cw = (MAX_GRID_HEIGHT / n_rows - GAP) * w / h
    cw = max(cw, 8.0)
    cw = int(round(cw))
    ch = max(1, int(round(cw * h / w)))
    row_pt = 11 if ch >= 22 else 8
    grid_w = n_frames * cw + (n_frames - 1) * GAP
    grid_h = n_rows * ch + (n_rows - 1) * GAP

    # column labels: horizontal when they fit, else smaller, else vertical
    col_pt, col_rot = 10.0, 0
    if measure.widest(labels, col_pt) > cw - 2:
        col_pt = 8.0
        if measure.widest(labels, col_pt) > cw - 2:
            col_rot = 90
    col_line = measure.line(col_pt)
    header_h = (measure.widest(labels, col_pt) + 6) if col_rot else col_line
    footer_labels = n_rows > 10  # repeat the frame labels under a tall grid

    # right-hand side: colour bar(s)
    cb_w = 18
    if energy and norm == "global":
        lo, hi = limits[layers[0]]
        tick_w = measure.widest([f"{v:.4g}" for v in MaxNLocator(nbins=6).tick_values(lo, hi)], 10)
        right_w = 18 + cb_w + 8 + tick_w + 10 + measure.line(11) + 4
    elif energy:
        cb_w = 10
        tick_w = measure.widest([_fmt(v) for lim in limits.values() for v in lim], 8)
        header = f"{ENERGY_UNIT} per row"
        right_w = max(12 + cb_w + 5 + tick_w, 12 + measure.width(header, 9)) + 4
    else:
        right_w = 0
    row_label_w = measure.widest(row_texts, row_pt) + 12
    width = int(math.ceil(PAD + row_label_w + grid_w + right_w + PAD))
    width = max(width, 480)

    # title and footer note (wrapped to the width)
    title_pt = 15
    title_lines = measure.wrap(title, title_pt, width - 2 * PAD, weight="bold") if title else []
    title_h = len(title_lines) * measure.line(title_pt)
    if energy and norm == "global":
        lo, hi = limits[layers[0]]
        note = (f"colour: token energy {ENERGY_UNIT} (L2 norm over channels), one global scale "
                f"{_fmt(lo)}–{_fmt(hi)} for all layers and frames")
    elif energy:
        note = (f"colour: token energy {ENERGY_UNIT} (L2 norm over channels), each layer (row) scaled to "
                f"its own min–max: compare patterns within a row, not brightness across rows")
    else:
        note = f"{PCA_NOTE} (first three principal components of each layer's tokens)"
    note_pt = 10
    note_lines = measure.wrap(note, note_pt, width - 2 * PAD)
    note_h = len(note_lines) * measure.line(note_pt)

    grid_left = int(round(PAD + row_label_w))
    grid_top = int(round(PAD + title_h + (8 if title_lines else 0) + header_h + 4))
    bar_label = f"token energy {ENERGY_UNIT} (global scale)"
    content_h = max(grid_h, int(measure.width(bar_label, 11)) + 30) if (energy and norm == "global") else grid_h
    bottom_labels_h = (header_h + 4) if footer_labels else 0
    height = int(math.ceil(grid_top + content_h + bottom_labels_h + 10 + note_h + PAD))

    fig = _new_figure(width, height)

    # cells, painted into one mosaic and placed 1:1 (no resampling by matplotlib)
    mosaic = np.empty((grid_h, grid_w, 3), dtype=np.uint8)
    mosaic[:] = np.array(_SEPARATOR, dtype=np.uint8)
    layout = GridLayout(size=(width, height), limits=dict(limits))
    norms = {layer: _colour_norm(*limits[layer]) for layer in layers} if energy else {}
    for r, (layer, arr) in enumerate(zip(layers, arrays)):
        top = r * (ch + GAP)
        for c in range(n_frames):
            left = c * (cw + GAP)
            if energy:
                values = _resize(arr[c], ch, cw)
                scaled = norms[layer](np.ma.masked_invalid(values))
                cell = colormap(scaled, bytes=True)[..., :3]
            else:
                cell = _to_uint8(np.stack([_resize(arr[c, ..., k], ch, cw) for k in range(3)], axis=-1))
            mosaic[top:top + ch, left:left + cw] = cell
            layout.cells[(layer, c)] = (grid_left + left, grid_top + top, grid_left + left + cw, grid_top + top + ch)
    fig.figimage(mosaic, xo=grid_left, yo=height - grid_top - grid_h, origin="upper")

    # text: title, row labels, column labels, note
    y = PAD
    for line in title_lines:
        _text(fig, width, height, PAD, y, line, fontsize=title_pt, va="top", ha="left", fontweight="bold")
        y += measure.line(title_pt)
    for r, text in enumerate(row_texts):
        _text(fig, width, height, grid_left - 8, grid_top + r * (ch + GAP) + ch / 2, text,
              fontsize=row_pt, ha="right", va="center")
    col_rows = [(grid_top - 4, "bottom")]
    if footer_labels:
        col_rows.append((grid_top + grid_h + 4, "top"))
    for y_label, va in col_rows:
        for c, text in enumerate(labels):
            _text(fig, width, height, grid_left + c * (cw + GAP) + cw / 2, y_label, text, fontsize=col_pt,
                  ha="center", va=va, rotation=col_rot)
    _text(fig, width, height, grid_left - 8, grid_top - 4, "layer", fontsize=9, ha="right", va="bottom",
          color=_MUTED)
    y = grid_top + content_h + bottom_labels_h + 10
    for line in note_lines:
        _text(fig, width, height, PAD, y, line, fontsize=note_pt, va="top", ha="left", color=_MUTED)
        y += measure.line(note_pt)

    # colour bars
    if energy and norm == "global":
        bar_left, bar_h = grid_left + grid_w + 18, content_h
        cax = fig.add_axes(_px_rect(width, height, bar_left, grid_top, cb_w, bar_h))
        bar = fig.colorbar(ScalarMappable(norm=norms[layers[0]], cmap=colormap), cax=cax)
        bar.formatter = FuncFormatter(lambda v, _pos: f"{v:.4g}")
        bar.locator = MaxNLocator(nbins=max(2, min(6, bar_h // 50)))
        bar.update_ticks()
        bar.set_label(bar_label, color=_FG, fontsize=11)
        bar.outline.set_edgecolor(_MUTED)
        cax.tick_params(colors=_FG, labelcolor=_FG, labelsize=10)
        layout.colorbars[None] = (bar_left, grid_top, bar_left + cb_w, grid_top + bar_h)
    elif energy:
        bar_left = grid_left + grid_w + 12
        ramp = colormap(np.linspace(1.0, 0.0, ch)[:, None].repeat(cb_w, axis=1), bytes=True)[..., :3]
        _text(fig, width, height, bar_left, grid_top - 4, f"{ENERGY_UNIT} per row", fontsize=9, ha="left",
              va="bottom", color=_MUTED)
        for r, layer in enumerate(layers):
            top = grid_top + r * (ch + GAP)
            fig.figimage(ramp, xo=bar_left, yo=height - top - ch, origin="upper")
            lo, hi = limits[layer]
            if hi > lo:
                _text(fig, width, height, bar_left + cb_w + 5, top, _fmt(hi), fontsize=8, ha="left", va="top")
                _text(fig, width, height, bar_left + cb_w + 5, top + ch, _fmt(lo), fontsize=8, ha="left",
                      va="bottom")
            else:  # constant row: drawn at the middle colour
                _text(fig, width, height, bar_left + cb_w + 5, top + ch / 2, f"={_fmt(lo)}", fontsize=8,
                      ha="left", va="center")
            layout.colorbars[layer] = (bar_left, top, bar_left + cb_w, top + ch)

    image = figure_to_image(fig)
    return (image, layout) if return_layout else image


def energy_grid(maps: Mapping[int, np.ndarray | torch.Tensor], frame_labels: Sequence[str], title: str,
                norm: str = "global", cmap: str | Colormap = "inferno", return_layout: bool = False):
    """Token-energy heatmaps, layers × frames (paper Sec. 5.1, Fig. 6(a); App. D Fig. 8).

    Rows are the layers in ascending order, labelled ``L00`` … ``L39``; columns are the frames,
    labelled with ``frame_labels``. Each cell is that frame's H×W energy map, drawn with
    nearest-neighbour pixels at the map's aspect ratio (maps larger than their cell are
    box-averaged, so isolated hot tokens are not dropped). Unlike the official tool nothing is
    autoscaled per frame:

    * ``norm="global"``: one colour scale, min–max over all layers and frames, with one colour
      bar in ‖U‖₂;
    * ``norm="per layer"``: each row scaled to its own min–max, with a small colour bar per row.

    Non-finite values are drawn grey. A constant map (or row) is drawn at the middle colour.

    Args:
        maps: ``{layer: energy}``; each energy is (F, H, W) (or the probe's (1, F, H, W)) float
            numpy array or torch tensor (any float dtype/device), in ‖U‖₂ units. All layers must
            have the same shape.
        frame_labels: F strings, e.g. ``["frame 0", "frame 4", …]`` or latent-frame names.
        title: line(s) above the grid (wrapped when long).
        norm: ``"global"`` or ``"per layer"``.
        cmap: matplotlib colormap name or object (default ``"inferno"``).
        return_layout: also return a :class:`GridLayout` with every cell's pixel box.

    Returns:
        RGB PIL image, about 1000-1600 px wide; with ``return_layout`` a tuple (image, layout).

    Raises:
        ValueError: unknown ``norm`` or ``cmap``; empty ``maps``; a map not (F, H, W); different F
            (or H, W) across layers; ``frame_labels`` not F long. Each message starts with the
            argument's name.
        TypeError: ``maps`` not a dict with int keys, or values that are not numbers.
    """
    return _grid("energy", maps, frame_labels, title, norm, cmap, return_layout)


def pca_grid(maps: Mapping[int, np.ndarray | torch.Tensor], frame_labels: Sequence[str], title: str,
             return_layout: bool = False):
    """PCA colour maps, layers × frames: components 1-3 of each token as R, G, B (the official
    tool's PCA view; the probe's ``pca/L…`` entries, see :mod:`cos_core.pca`).

    Same layout as :func:`energy_grid` without colour bars, plus the note
    ``"colours: PCA components 1-3 → R,G,B"``. Values are clipped to [0, 1]; NaN is drawn black.

    Args:
        maps: ``{layer: rgb}``; each rgb is (F, H, W, 3) (or (1, F, H, W, 3)) float in [0, 1],
            numpy or torch (float16 from the probe is fine). All layers must have the same shape.
        frame_labels: F strings.
        title: line(s) above the grid.
        return_layout: also return a :class:`GridLayout` (``colorbars`` and ``limits`` empty).

    Returns:
        RGB PIL image; with ``return_layout`` a tuple (image, layout).

    Raises:
        ValueError: empty ``maps``; a map not (F, H, W, 3); different shapes across layers;
            ``frame_labels`` not F long. Messages start with the argument's name.
        TypeError: ``maps`` not a dict with int keys, or values that are not numbers.
    """
    return _grid("pca", maps, frame_labels, title, "global", None, return_layout)


# ----------------------------------------------------------------------------- curves


def _line_colors(layers: list[int]) -> tuple[dict[int, tuple[float, float, float]], Normalize | None, Colormap]:
    """Colours by depth from a sequential colormap trimmed to stay visible on a dark background.

    Up to 10 layers: evenly spaced by rank (a legend names them). More: by layer index on a
    continuous scale (a colour bar explains them) so 40 lines need no 40-entry legend.
    """
    base = matplotlib.colormaps["viridis"]
    cmap = ListedColormap(base(np.linspace(0.28, 1.0, 256)), name="cos_layers")
    if len(layers) <= 10:
        spots = np.linspace(0.0, 1.0, len(layers)) if len(layers) > 1 else np.array([0.5])
        return {layer: tuple(float(v) for v in cmap(s)[:3]) for layer, s in zip(layers, spots)}, None, cmap
    scale = Normalize(min(layers), max(layers))
    return {layer: tuple(float(v) for v in cmap(scale(layer))[:3]) for layer in layers}, scale, cmap


def _curves_figure(title: str, has_top_axis: bool, measure: _Measure):
    width, height = 1400, 760
    title_pt = 15
    title_lines = measure.wrap(title, title_pt, width - 2 * PAD, weight="bold") if title else []
    top = PAD + len(title_lines) * measure.line(title_pt) + (62 if has_top_axis else 14)
    left, right, bottom = 96, 150, 84
    fig = _new_figure(width, height)
    ax = fig.add_axes(_px_rect(width, height, left, top, width - left - right, height - top - bottom))
    _style_axes(ax)
    y = PAD
    for line in title_lines:
        _text(fig, width, height, PAD, y, line, fontsize=title_pt, va="top", ha="left", fontweight="bold")
        y += measure.line(title_pt)
    return fig, ax, (width, height), (left, top, width - right, height - bottom)


def _plot_layers(fig, ax, size, plot_box, x, curves: dict[int, np.ndarray], markers: bool):
    layers = sorted(curves)
    colors, scale, cmap = _line_colors(layers)
    for layer in layers:
        ax.plot(x, curves[layer], color=colors[layer], linewidth=1.8 if len(layers) <= 10 else 1.3,
                marker="o" if markers else None, markersize=4, label=f"L{layer:02d}")
    if scale is None:
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=11,
                           labelcolor=_FG, title="layer", borderaxespad=0.0)
        legend.get_title().set_color(_FG)
        legend.get_title().set_fontsize(11)
    else:
        width, height = size
        cax = fig.add_axes(_px_rect(width, height, plot_box[2] + 24, plot_box[1], 18, plot_box[3] - plot_box[1]))
        bar = fig.colorbar(ScalarMappable(norm=scale, cmap=cmap), cax=cax)
        stride = max(1, math.ceil(len(layers) / 10))
        ticks = layers[::stride]
        if ticks[-1] != layers[-1]:
            if len(ticks) > 1 and layers.index(layers[-1]) - layers.index(ticks[-1]) < stride / 2:
                ticks = ticks[:-1]
            ticks = [*ticks, layers[-1]]
        bar.locator = FixedLocator(ticks)
        bar.formatter = FuncFormatter(lambda v, _pos: f"L{int(round(v)):02d}")
        bar.update_ticks()
        bar.set_label(f"layer ({len(layers)} lines, colour = depth)", color=_FG, fontsize=11)
        bar.outline.set_edgecolor(_MUTED)
        cax.tick_params(colors=_FG, labelcolor=_FG, labelsize=10)
    return colors


def _scaled_curves(curves: dict[int, np.ndarray], norm: str) -> dict[int, np.ndarray]:
    if norm == "global":
        return curves
    out = {}
    for layer, values in curves.items():
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if finite.size else 0.0
        out[layer] = values / peak if peak > 0 else values
    return out


def _finish_curves(fig, ax, size, plot_box, x_values, colors, switch=None) -> tuple[Image.Image, CurveLayout]:
    image = figure_to_image(fig)
    width, height = size
    to_px = ax.transData.transform
    x_pixels = {float(v): int(round(to_px((float(v), 0.0))[0])) for v in x_values}
    switch_x = int(round(to_px((float(switch), 0.0))[0])) if switch is not None else None
    bbox = ax.get_window_extent()
    plot = (int(round(bbox.x0)), int(round(height - bbox.y1)), int(round(bbox.x1)), int(round(height - bbox.y0)))
    y_lo, y_hi = ax.get_ylim()
    return image, CurveLayout(size=(width, height), plot=plot, x_pixels=x_pixels, switch_x=switch_x, colors=colors,
                              y_range=(float(y_lo), float(y_hi)))


def _layer_series(series, name: str, length: int | None) -> tuple[dict[int, np.ndarray], int]:
    if not isinstance(series, Mapping):
        raise TypeError(f"{name}: expected a dict {{layer: values}}, got {type(series).__name__}")
    if not series:
        raise ValueError(f"{name}: is empty; need at least one layer")
    out: dict[int, np.ndarray] = {}
    for key, value in series.items():
        layer = _layer_key(key, name)
        arr = _as_array(value, name)
        if arr.ndim == 2 and arr.shape[0] == 1:  # frame_profile of the probe's (1, F, H, W)
            arr = arr[0]
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name}: L{layer:02d} must be a 1-D sequence, got shape {tuple(arr.shape)}")
        if length is None:
            length = arr.size
        elif arr.size != length:
            raise ValueError(f"{name}: every layer needs {length} values, L{layer:02d} has {arr.size}")
        out[layer] = arr
    return out, int(length)


def temporal_curves(profiles: Mapping[int, np.ndarray | torch.Tensor], title: str,
                    frame_labels: Sequence[str] | None = None, norm: str = "global", return_layout: bool = False):
    """Mean token energy per frame, one line per layer (paper Sec. 5.1: how activation spreads over
    time within one denoising step; cf. :func:`cos_core.energy.frame_profile`).

    x is the frame index (ticks named by ``frame_labels`` when given), y the mean ‖U‖₂ over the
    frame's H×W tokens. Up to 10 layers get a legend (``L20`` …); more get a colour bar by depth.

    Args:
        profiles: ``{layer: profile}``; each profile (F,) (or (1, F)) float, numpy or torch, in ‖U‖₂.
            All layers must have the same F.
        title: line(s) above the plot.
        frame_labels: F strings, or None for ``0 … F-1``.
        norm: ``"global"`` (raw ‖U‖₂, one y scale) or ``"per layer"`` (each curve divided by its
            own maximum; the y label says so).
        return_layout: also return a :class:`CurveLayout`.

    Returns:
        RGB PIL image, 1400 × 760 px; with ``return_layout`` a tuple (image, layout).

    Raises:
        ValueError: unknown ``norm``; empty ``profiles``; a profile not 1-D; different F across
            layers; ``frame_labels`` not F long. Messages start with the argument's name.
        TypeError: ``profiles`` not a dict with int keys, or values that are not numbers.
    """
    _check_norm(norm)
    curves, n_frames = _layer_series(profiles, "profiles", None)
    labels = None if frame_labels is None else _check_labels(frame_labels, n_frames, "frame_labels", "frame")
    measure = _Measure()
    fig, ax, size, plot_box = _curves_figure(str(title), False, measure)
    x = np.arange(n_frames)
    colors = _plot_layers(fig, ax, size, plot_box, x, _scaled_curves(curves, norm),
                          markers=n_frames <= 40 and len(curves) <= 10)
    stride = max(1, math.ceil(n_frames / 16))
    ticks = x[::stride]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    if labels is not None:
        shown = [labels[i] for i in ticks]
        ax.set_xticklabels(shown)
        spacing = (plot_box[2] - plot_box[0]) / max(1, n_frames - 1) * stride
        if measure.widest(shown, 11) > spacing - 6:
            for tick in ax.get_xticklabels():
                tick.set_rotation(30)
                tick.set_ha("right")
    ax.set_xlim(-0.3 if n_frames > 1 else -1, n_frames - 0.7 if n_frames > 1 else 1)
    ax.set_xlabel("frame", color=_FG, fontsize=12)
    if norm == "global":
        ax.set_ylabel(f"mean token energy {ENERGY_UNIT} per frame", color=_FG, fontsize=12)
    else:
        ax.set_ylabel(f"mean {ENERGY_UNIT} per frame ÷ the layer's max (per-layer scale)", color=_FG, fontsize=12)
    image, layout = _finish_curves(fig, ax, size, plot_box, x, colors)
    return (image, layout) if return_layout else image


def cross_step_curves(steps: Sequence[int], means: Mapping[int, Sequence[float] | np.ndarray | torch.Tensor],
                      title: str, sigmas: Sequence[float] | None = None, switch_step: int | None = None,
                      norm: str = "global", return_layout: bool = False):
    """Mean token energy of each layer across denoising steps (paper Sec. 3 "Chain-of-Steps" ×
    Sec. 5.1: how each layer's activity changes from noisy to clean steps).

    x is the global step (ticks at up to ~12 of the given steps); with ``sigmas`` a top axis shows
    σ at the same ticks. With ``switch_step`` a dashed vertical line marks the first step of
    Wan2.2's low-noise expert, labelled "low-noise expert". Up to 10 layers get a legend; more (up
    to all 40) get a colour bar by depth instead of a 40-entry legend. NaN values leave gaps.

    Args:
        steps: S distinct global step indices (any order; they are sorted with their values).
        means: ``{layer: S values}`` mean ‖U‖₂ per step (lists, numpy or torch).
        title: line(s) above the plot.
        sigmas: S noise levels σ at those steps, or None.
        switch_step: first step of the low-noise expert, or None; drawn even if outside ``steps``.
        norm: ``"global"`` (raw ‖U‖₂) or ``"per layer"`` (each curve divided by its own max).
        return_layout: also return a :class:`CurveLayout` (with ``switch_x``).

    Returns:
        RGB PIL image, 1400 × 760 px; with ``return_layout`` a tuple (image, layout).

    Raises:
        ValueError: unknown ``norm``; empty or repeated ``steps``; empty ``means``; a layer without
            S values; ``sigmas`` not S long; non-integer ``switch_step``. Messages start with the
            argument's name.
        TypeError: ``means`` not a dict with int keys, or values that are not numbers.
    """
    _check_norm(norm)
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) and not isinstance(steps, np.ndarray):
        raise TypeError(f"steps: expected a list of step indices, got {type(steps).__name__}")
    step_arr = np.asarray(list(steps))
    if step_arr.size == 0:
        raise ValueError("steps: is empty; need at least one step")
    if step_arr.ndim != 1 or not np.issubdtype(step_arr.dtype, np.integer):
        raise ValueError(f"steps: must be a flat list of integers, got {list(steps)[:5]}…")
    if len(np.unique(step_arr)) != step_arr.size:
        raise ValueError(f"steps: must be distinct, got {step_arr.tolist()}")
    curves, _ = _layer_series(means, "means", step_arr.size)
    sigma_arr = None
    if sigmas is not None:
        sigma_arr = _as_array(sigmas, "sigmas")
        if sigma_arr.ndim != 1 or sigma_arr.size != step_arr.size:
            raise ValueError(f"sigmas: need {step_arr.size} values (one per step), got shape {tuple(sigma_arr.shape)}")
    if switch_step is not None and (isinstance(switch_step, (bool, np.bool_))
                                    or not isinstance(switch_step, (int, np.integer))):
        raise ValueError(f"switch_step: must be an int step index or None, got {switch_step!r}")
    order = np.argsort(step_arr, kind="stable")
    step_arr = step_arr[order]
    curves = {layer: values[order] for layer, values in curves.items()}
    if sigma_arr is not None:
        sigma_arr = sigma_arr[order]

    measure = _Measure()
    fig, ax, size, plot_box = _curves_figure(str(title), sigma_arr is not None, measure)
    colors = _plot_layers(fig, ax, size, plot_box, step_arr, _scaled_curves(curves, norm),
                          markers=step_arr.size <= 40 and len(curves) <= 10)
    stride = max(1, math.ceil(step_arr.size / 12))
    ticks = step_arr[::stride]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(FixedLocator(step_arr) if stride > 1 else NullLocator())
    lo, hi = float(step_arr[0]), float(step_arr[-1])
    if switch_step is not None:
        lo, hi = min(lo, float(switch_step)), max(hi, float(switch_step))
    margin = max(0.5, 0.02 * (hi - lo))
    ax.set_xlim(lo - margin, hi + margin)
    ax.set_xlabel("denoising step", color=_FG, fontsize=12)
    if norm == "global":
        ax.set_ylabel(f"mean token energy {ENERGY_UNIT}", color=_FG, fontsize=12)
    else:
        ax.set_ylabel(f"mean {ENERGY_UNIT} ÷ the layer's max (per-layer scale)", color=_FG, fontsize=12)
    if sigma_arr is not None:
        top = ax.secondary_xaxis("top")
        top.xaxis.set_major_locator(FixedLocator(ticks))
        big = float(np.nanmax(np.abs(sigma_arr))) if np.isfinite(sigma_arr).any() else 0.0
        form = "{:.3f}" if big < 10 else "{:.3g}"
        sigma_of = {int(s): float(v) for s, v in zip(step_arr, sigma_arr)}
        top.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _pos: form.format(sigma_of[int(round(v))]) if int(round(v)) in sigma_of else ""))
        top.tick_params(colors=_FG, labelcolor=_FG, labelsize=10)
        top.spines["top"].set_color(_MUTED)
        top.set_xlabel("noise level σ", color=_FG, fontsize=12)
    if switch_step is not None:
        y_lo, y_hi = ax.get_ylim()  # headroom so the expert labels cover no data
        ax.set_ylim(y_lo, y_hi + 0.1 * (y_hi - y_lo))
        ax.axvline(float(switch_step), color=_ACCENT, linestyle="--", linewidth=1.8, zorder=5)
        where = (float(switch_step) - (lo - margin)) / ((hi + margin) - (lo - margin))
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        box = {"facecolor": _AXES_BG, "edgecolor": "none", "alpha": 0.85, "pad": 2.0}
        if where <= 0.78:
            ax.text(float(switch_step), 0.985, f"  {SWITCH_LABEL} →", transform=trans, ha="left", va="top",
                    color=_ACCENT, fontsize=11, zorder=6, bbox=box)
        else:
            ax.text(float(switch_step), 0.985, f"{SWITCH_LABEL} from step {int(switch_step)} →  ",
                    transform=trans, ha="right", va="top", color=_ACCENT, fontsize=11, zorder=6, bbox=box)
        if 0.22 <= where <= 0.78:
            ax.text(float(switch_step), 0.985, "← high-noise expert  ", transform=trans, ha="right", va="top",
                    color=_MUTED, fontsize=11, zorder=6, bbox=box)
    image, layout = _finish_curves(fig, ax, size, plot_box, step_arr, colors, switch_step)
    return (image, layout) if return_layout else image
