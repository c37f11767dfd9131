"""The Registry/Manager icon and banner (``web/docs/img/icon.png``, ``banner.png``), drawn with PIL.

    python -m tools.brand_images

The picture is the diffusion trajectory itself: tiles x_σ = (1 − σ)·x0 + σ·ε from pure noise
(σ = 1) to the clean picture (σ = 0), joined like a chain. The banner's picture is matplotlib's
bundled photograph of Grace Hopper (US Navy, public domain), the start image of the main job.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT = Path(__file__).resolve().parent.parent / "web" / "docs" / "img"
BG = (17, 24, 39)
ACCENT = (56, 189, 248)
TEXT = (241, 245, 249)
MUTED = (148, 163, 184)


def font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    import matplotlib.font_manager as fm

    path = fm.findfont(fm.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, size)


def trajectory(clean: np.ndarray, sigmas: list[float], seed: int = 7) -> list[Image.Image]:
    """x_σ = (1 − σ)·x0 + σ·ε for each σ, as images (clean in [0, 1], noise around mid-grey)."""
    noise = np.random.default_rng(seed).normal(0.5, 0.28, clean.shape)
    return [Image.fromarray((np.clip((1 - s) * clean + s * noise, 0, 1) * 255).astype(np.uint8)) for s in sigmas]


def rounded(tile: Image.Image, radius: int) -> Image.Image:
    mask = Image.new("L", tile.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle([0, 0, tile.size[0] - 1, tile.size[1] - 1], radius, fill=255)
    out = Image.new("RGBA", tile.size)
    out.paste(tile.convert("RGB"), (0, 0), mask)
    return out


def orb(size: int) -> np.ndarray:
    """A lit sphere on a dark ground: simple, legible at 32 px."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    r = np.sqrt(x**2 + y**2)
    inside = r < 0.78
    light = np.clip(1.15 - np.sqrt((x + 0.3) ** 2 + (y + 0.3) ** 2) * 0.8, 0.15, 1)
    rgb = np.zeros((size, size, 3))
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0.22 * light, 0.74 * light, 0.97 * light
    rgb[~inside] = np.array(BG) / 255 * 1.6
    return rgb


def icon(size: int = 400) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle([0, 0, size - 1, size - 1], radius=size // 8, fill=BG)
    tile = size * 30 // 100
    tiles = trajectory(orb(tile), [1.0, 0.55, 0.0], seed=3)
    spots = [(size * 9 // 100, size * 9 // 100), (size * 35 // 100, size * 27 // 100),
             (size * 61 // 100, size * 45 // 100)]
    centres = [(x + tile // 2, y + tile // 2) for x, y in spots]
    draw.line(centres, fill=ACCENT, width=max(3, size // 40), joint="curve")
    for (x, y), t in zip(spots, tiles):
        draw.rounded_rectangle([x - 5, y - 5, x + tile + 4, y + tile + 4], radius=size // 22, fill=ACCENT)
        img.alpha_composite(rounded(t, size // 28), (x, y))
    label = font(size * 27 // 100)
    text = "CoS"
    box = draw.textbbox((0, 0), text, font=label)
    draw.text(((size - (box[2] - box[0])) // 2 - box[0], size * 95 // 100 - box[3]), text, font=label, fill=TEXT)
    return img


def banner(width: int = 1260, height: int = 540) -> Image.Image:
    import matplotlib.cbook

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        photo = photo.convert("RGB")
        side = min(photo.size)
        photo = photo.crop(((photo.width - side) // 2, 0, (photo.width - side) // 2 + side, side))
    tile = 170
    clean = np.asarray(photo.resize((tile, tile), Image.LANCZOS)) / 255.0
    sigmas = [1.0, 0.8, 0.55, 0.3, 0.1, 0.0]
    tiles = trajectory(clean, sigmas)
    img = Image.new("RGBA", (width, height), BG + (255,))
    draw = ImageDraw.Draw(img)
    glow = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(glow).ellipse([-200, 260, 700, 900], fill=ACCENT + (40,))
    img.alpha_composite(glow.filter(ImageFilter.GaussianBlur(80)))
    draw.text((70, 58), "Chain-of-Steps", font=font(84), fill=TEXT)
    draw.text((74, 162), "See a video diffusion model reason along its denoising steps,", font=font(30, False),
              fill=MUTED)
    draw.text((74, 200), "inside ComfyUI: x̂0 per step · layer probes · noise injection · seed ensemble",
              font=font(30, False), fill=MUTED)
    gap = (width - 2 * 70 - len(tiles) * tile) // (len(tiles) - 1)
    y = 290
    centres = [(70 + i * (tile + gap) + tile // 2, y + tile // 2) for i in range(len(tiles))]
    draw.line(centres, fill=ACCENT, width=6)
    small = font(22, False)
    for i, t in enumerate(tiles):
        x = 70 + i * (tile + gap)
        draw.rounded_rectangle([x - 5, y - 5, x + tile + 4, y + tile + 4], radius=14, fill=ACCENT)
        img.alpha_composite(rounded(t, 10), (x, y))
        label = f"σ = {sigmas[i]:g}"
        box = draw.textbbox((0, 0), label, font=small)
        draw.text((x + (tile - (box[2] - box[0])) // 2, y + tile + 14), label, font=small, fill=MUTED)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    icon().save(OUT / "icon.png", optimize=True)
    # a 256-colour palette keeps the noisy tiles small (the Registry and GitHub load the banner often)
    banner().convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(OUT / "banner.png", optimize=True)
    print(f"wrote {OUT / 'icon.png'} and {OUT / 'banner.png'}")


if __name__ == "__main__":
    main()
