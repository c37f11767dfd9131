"""Layer energy (paper Sec. 5.1, Fig. 6a, App. D): how strongly each token is active in a DiT block's output.

For a block output U with tokens (B, N, D) laid out over a (F, H, W) latent grid, the energy is
E = ‖U‖₂ over D, reshaped to (B, F, H, W). It is computed where U lives (the GPU) with float32
accumulation, so only F·H·W floats per layer and step leave the device instead of F·H·W·D.
"""
from __future__ import annotations

import torch


def token_energy(hidden: torch.Tensor, grid: tuple[int, int, int], offset: int = 0) -> torch.Tensor:
    """Per-token L2 norm of a block output, as a map over the token grid.

    Args:
        hidden: (B, N, D) block output in any float dtype (bf16 on the GPU in practice).
        grid: (F, H, W) token grid; tokens ``offset … offset+F·H·W`` are the video tokens in
            (f, h, w) row-major order (Wan, LTX).
        offset: index of the first video token (e.g. after prepended reference tokens).

    Returns:
        float32 tensor (B, F, H, W) on ``hidden``'s device.

    Raises:
        ValueError: if the grid does not fit in the token count.
    """
    frames, height, width = (int(v) for v in grid)
    count = frames * height * width
    if hidden.ndim != 3 or offset + count > hidden.shape[1]:
        raise ValueError(f"a {frames}×{height}×{width} token grid at offset {offset} does not fit hidden states "
                         f"of shape {tuple(hidden.shape)}")
    video = hidden[:, offset:offset + count]
    return torch.linalg.vector_norm(video, dim=-1, dtype=torch.float32).reshape(-1, frames, height, width)


def frame_profile(energy: torch.Tensor) -> torch.Tensor:
    """Mean energy per frame: (…, F, H, W) → (…, F); the temporal energy curve of a layer."""
    return energy.float().mean(dim=(-2, -1))
