"""Pictures of a trajectory: the steps × frames grid of paper Fig. 2 and the live preview strip."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (18, 18, 18)
TEXT = (235, 235, 235)
ACCENT = (255, 196, 64)


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib (it has σ, x̂ and Greek), else PIL's default font."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (ImportError, OSError, ValueError):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()


def _to_uint8(img: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def step_grid(frames: torch.Tensor, row_labels: Sequence[str], col_labels: Sequence[str],
              highlight_rows: Sequence[int] = (), title: str | None = None, gap: int = 2) -> Image.Image:
    """A grid with one row per step and one column per frame, labelled like paper Fig. 2.

    Args:
        frames: (R, K, H, W, 3) float in [0, 1]: R rows (steps), K columns (frames).
        row_labels: R strings, e.g. ``"step 5  σ=0.812  high"``.
        col_labels: K strings, e.g. ``"frame 0"``.
        highlight_rows: rows whose label is drawn in the accent colour (e.g. the expert switch).
        title: optional line above the grid.
        gap: pixels between cells.

    Returns:
        An RGB PIL image.

    Raises:
        ValueError: if label counts do not match the tensor.
    """
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (rows, cols, H, W, 3), got {tuple(frames.shape)}")
    rows, cols, h, w, _ = frames.shape
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"need {rows} row labels and {cols} column labels, "
                         f"got {len(row_labels)} and {len(col_labels)}")
    size = max(10, min(18, h // 6))
    font = _font(size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    col_w = max(int(measure.textlength(s, font=font)) for s in col_labels)
    if col_w > w:  # shrink the column labels to fit their cells
        col_font = _font(max(8, int(size * w / col_w)))
    else:
        col_font = font
    label_w = max(int(measure.textlength(s, font=font)) for s in row_labels) + 12
    head_h = size + 8
    title_h = size + 10 if title else 0
    width = max(label_w + cols * (w + gap), int(measure.textlength(title, font=font)) + 12 if title else 0)
    height = title_h + head_h + rows * (h + gap)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 4), title, fill=TEXT, font=font)
    for c, text in enumerate(col_labels):
        x = label_w + c * (w + gap) + w // 2
        draw.text((x, title_h + head_h // 2), text, fill=TEXT, font=col_font, anchor="mm")
    pixels = _to_uint8(frames)
    highlight = set(highlight_rows)
    for r in range(rows):
        y = title_h + head_h + r * (h + gap)
        draw.text((6, y + h // 2), row_labels[r], fill=ACCENT if r in highlight else TEXT, font=font, anchor="lm")
        for c in range(cols):
            canvas.paste(Image.fromarray(pixels[r, c]), (label_w + c * (w + gap), y))
    return canvas


def preview_strip(frames: torch.Tensor, caption: str, max_width: int = 1024) -> Image.Image:
    """Frames side by side under a one-line caption, for the live sampler preview.

    Args:
        frames: (K, H, W, 3) float in [0, 1].
        caption: e.g. ``"step 3/20  σ=0.912  high-noise expert  0.41 s/step"``.
        max_width: the strip is downscaled to at most this width.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (K, H, W, 3), got {tuple(frames.shape)}")
    k, h, w, _ = frames.shape
    strip = np.concatenate(list(_to_uint8(frames)), axis=1)
    image = Image.fromarray(strip)
    if image.width > max_width:
        image = image.resize((max_width, max(1, round(image.height * max_width / image.width))), Image.BILINEAR)
    font = _font(14)
    bar = 22
    canvas = Image.new("RGB", (image.width, image.height + bar), BACKGROUND)
    canvas.paste(image, (0, bar))
    ImageDraw.Draw(canvas).text((6, bar // 2), caption, fill=TEXT, font=font, anchor="lm")
    return canvas


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB image → ComfyUI IMAGE tensor (1, H, W, 3) float32 in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).unsqueeze(0)
