"""A fast latent→RGB projection over every frame of a video latent.

ComfyUI's built-in Latent2RGB preview shows batch 0, frame 0 only. This projects all frames with
the latent format's linear factors (C×3 and a bias, as in ``comfy.latent_formats``) on the
latent's own device; only the small RGB result needs to leave the GPU.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def latent_to_rgb(latent: torch.Tensor, factors: Sequence[Sequence[float]] | torch.Tensor,
                  bias: Sequence[float] | torch.Tensor | None = None, scale: int = 1) -> torch.Tensor:
    """Project a model-space video latent to RGB frames.

    Args:
        latent: (B, C, F, H, W) or (C, F, H, W) model-space latent (after ``process_latent_in``).
        factors: C×3 projection, ``latent_format.latent_rgb_factors``.
        bias: 3 values, ``latent_format.latent_rgb_factors_bias``, or None.
        scale: integer upsampling of H and W (bilinear), e.g. the VAE's spatial factor 8.

    Returns:
        float32 tensor (B, F, H·scale, W·scale, 3) in [0, 1], on the latent's device.

    Raises:
        ValueError: if the latent is not 4-D/5-D or its channel count differs from the factors.
    """
    if latent.ndim == 4:
        latent = latent.unsqueeze(0)
    if latent.ndim != 5:
        raise ValueError(f"expected a video latent (B, C, F, H, W), got shape {tuple(latent.shape)}")
    weight = torch.as_tensor(factors, dtype=torch.float32, device=latent.device)
    if weight.ndim != 2 or weight.shape[1] != 3 or weight.shape[0] != latent.shape[1]:
        raise ValueError(f"factors must be {latent.shape[1]}×3 for a {latent.shape[1]}-channel latent, "
                         f"got {tuple(weight.shape)}")
    b = None if bias is None else torch.as_tensor(bias, dtype=torch.float32, device=latent.device)
    rgb = F.linear(latent.float().movedim(1, -1), weight.t(), b)  # (B, F, H, W, 3)
    rgb = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)
    if scale > 1:
        bsz, frames, h, w, _ = rgb.shape
        flat = rgb.reshape(bsz * frames, h, w, 3).movedim(-1, 1)
        flat = F.interpolate(flat, scale_factor=scale, mode="bilinear", align_corners=False)
        rgb = flat.movedim(1, -1).reshape(bsz, frames, h * scale, w * scale, 3).clamp(0.0, 1.0)
    return rgb


def pick_frames(frame_count: int, n: int) -> list[int]:
    """``n`` evenly spaced frame indices from 0 to frame_count−1 (both ends included)."""
    if frame_count < 1:
        raise ValueError("frame_count must be at least 1")
    n = max(1, min(n, frame_count))
    if n == 1:
        return [0]
    return sorted({round(i * (frame_count - 1) / (n - 1)) for i in range(n)})
