"""A weight-free "VAE" for CoS-Toy: temporal space-to-depth of cell colours into Wan2.1's 16 channels.

Shapes follow ComfyUI's ``Wan21`` latent (``comfy/latent_formats.py``): 16 channels, temporal stride 4
(latent frame 0 ← pixel frame 0; latent frame j ≥ 1 ← pixel frames 4j−3 … 4j), spatial stride 8.

*Model space* (what the diffusion model sees after ComfyUI's ``process_in``) is the **code**: for each
latent frame, 4 sub-frames × (R, G, B, luma) mapped to [−1, 1] per 8×8 cell mean. Latent frame 0
repeats pixel frame 0 four times. A grey 0.5 frame (what ``WanImageToVideo`` fills in) codes to 0.

The *raw* latent (what a VAE returns and ``LATENT`` holds) is ``mean + std · code`` with the latent
format's own per-channel mean/std, so ComfyUI's ``process_in`` ((raw − mean)/std) gives back exactly the
code. Decoding averages nothing away for cell-aligned pictures: it is lossless on CoS-Toy videos.
"""
from __future__ import annotations

import torch

CHANNELS = 16
T_STRIDE = 4
S_STRIDE = 8


def latent_frames(pixel_frames: int) -> int:
    return (pixel_frames - 1) // T_STRIDE + 1


def to_code(pixels: torch.Tensor, stride: int = S_STRIDE) -> torch.Tensor:
    """Pixels (B, L, H, W, 3) or (L, H, W, 3) in [0, 1] → code (B, 16, (L−1)//4+1, H/8, W/8).

    ``stride=1`` takes cell colours (one value per latent pixel) instead of pixels.
    """
    if pixels.ndim == 4:
        pixels = pixels.unsqueeze(0)
    b, length, h, w, _ = pixels.shape
    x = pixels[..., :3].float().movedim(-1, 2)                            # B, L, 3, H, W
    if stride > 1:
        x = torch.nn.functional.avg_pool2d(x.reshape(b * length, 3, h, w), stride)
    x = x.reshape(b, length, 3, h // stride, w // stride)
    x = torch.cat([x, x.mean(2, keepdim=True)], dim=2) * 2 - 1             # B, L, 4, h, w
    t = latent_frames(length)
    need = 1 + (t - 1) * T_STRIDE
    if length < need:                                                      # pad like a short clip: grey
        x = torch.cat([x, x.new_zeros(b, need - length, *x.shape[2:])], dim=1)
    first = x[:, :1].expand(b, T_STRIDE, *x.shape[2:])
    groups = torch.cat([first, x[:, 1:need]], dim=1)                      # B, 4t, 4, h, w
    groups = groups.reshape(b, t, T_STRIDE * 4, *x.shape[3:])               # B, t, 16, h, w
    return groups.movedim(2, 1).contiguous()


def from_code(code: torch.Tensor) -> torch.Tensor:
    """Code (B, 16, t, h, w) → pixels (B, 1+4(t−1), 8h, 8w, 3) in [0, 1]."""
    b, _, t, h, w = code.shape
    x = code.float().movedim(1, 2).reshape(b, t, T_STRIDE, 4, h, w)[:, :, :, :3]   # B, t, 4, 3, h, w
    frames = [x[:, 0].mean(1)] + [x[:, j, s] for j in range(1, t) for s in range(T_STRIDE)]
    x = torch.stack(frames, dim=1)                                         # B, L, 3, h, w
    x = ((x + 1) / 2).clamp(0, 1)
    x = x.repeat_interleave(S_STRIDE, dim=-2).repeat_interleave(S_STRIDE, dim=-1)
    return x.movedim(2, -1).contiguous()


def _stats(mean, std, like: torch.Tensor):
    shape = (1, CHANNELS) + (1,) * (like.ndim - 2)
    return (torch.as_tensor(mean, dtype=like.dtype, device=like.device).reshape(shape),
            torch.as_tensor(std, dtype=like.dtype, device=like.device).reshape(shape))


def encode(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """Pixels → raw latent (``mean + std · code``), as a VAE's encode would return."""
    code = to_code(pixels)
    m, s = _stats(mean, std, code)
    return code * s + m


def decode(raw: torch.Tensor, mean, std) -> torch.Tensor:
    """Raw latent → pixels (B, L, H, W, 3)."""
    m, s = _stats(mean, std, raw.float())
    return from_code((raw.float() - m) / s)


def i2v_inputs(first: torch.Tensor, pixel_frames: int, stride: int = S_STRIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """What ComfyUI's ``WanImageToVideo`` + ``WAN21.concat_cond`` give the model, in model space.

    ``first``: (B, H, W, 3) start frames. Returns ``(mask4, image16)``: mask channels (B, 4, t, h, w),
    1 on latent frame 0 (known) and 0 elsewhere, and the code of [first, grey 0.5, …].
    """
    b, h, w, _ = first.shape
    video = torch.full((b, pixel_frames, h, w, 3), 0.5, dtype=torch.float32, device=first.device)
    video[:, 0] = first[..., :3].float()
    image = to_code(video, stride)
    mask = torch.zeros(b, 4, *image.shape[2:], device=first.device)
    mask[:, :, 0] = 1.0
    return mask, image
