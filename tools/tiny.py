"""Tiny random-weight stand-ins for the Wan2.2 files, built from ComfyUI's own model classes.

Nothing can be downloaded in tests, and a 14B model does not fit a CPU run; these checkpoints
have the real architectures (ComfyUI's ``WanModel`` and Wan2.1 ``WanVAE``) at toy widths, are
detected by ComfyUI's normal loaders (UNETLoader, VAELoader), and give random pictures. Every
file name starts with ``cos-tiny_`` so nobody mistakes them for real weights.

Run inside ComfyUI's Python with ComfyUI importable (``COMFYUI_PATH`` on ``sys.path``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_FILES = {
    # shipped workflow file name                        -> tiny stand-in
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": "cos-tiny_wan2.2_i2v_high_noise.safetensors",
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": "cos-tiny_wan2.2_i2v_low_noise.safetensors",
    "wan_2.1_vae.safetensors": "cos-tiny_wan_2.1_vae.safetensors",
}
TINY_T2V = "cos-tiny_wan2.1_t2v.safetensors"


def _init(sd: dict[str, torch.Tensor], seed: int, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """Deterministic init: norm scales 1, biases 0, weights N(0, gain²/fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in sd.items():
        if name.endswith(("gamma", "norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")) or \
                name.endswith(("norm_q.weight", "norm_k.weight")):
            out[name] = torch.ones(t.shape)
        elif name.endswith("bias") or t.ndim == 0:
            out[name] = torch.zeros(t.shape)
        elif t.ndim == 1 or name.endswith("modulation"):
            out[name] = torch.randn(t.shape, generator=gen) * 0.02
        else:
            fan_in = math.prod(t.shape[1:])
            out[name] = torch.randn(t.shape, generator=gen) * (gain / math.sqrt(fan_in))
    return out


def wan_state_dict(seed: int, in_dim: int = 16, out_dim: int = 16, num_layers: int = 4, dim: int = 128,
                   ffn_dim: int = 256) -> dict[str, torch.Tensor]:
    """A tiny ComfyUI ``WanModel`` state dict (t2v type; ``in_dim=36`` is the Wan2.2 A14B I2V layout)."""
    import comfy.ldm.wan.model
    import comfy.ops

    with torch.device("meta"):
        model = comfy.ldm.wan.model.WanModel(model_type="t2v", dim=dim, ffn_dim=ffn_dim, num_heads=dim // 128,
                                             num_layers=num_layers, in_dim=in_dim, out_dim=out_dim, text_dim=4096,
                                             operations=comfy.ops.disable_weight_init)
    return _init({k: v for k, v in model.state_dict().items()}, seed, gain=0.8)


def wan_vae_state_dict(seed: int, dim: int = 16) -> dict[str, torch.Tensor]:
    """A tiny Wan2.1 VAE (``comfy.ldm.wan.vae.WanVAE``, z 16, stride t4/s8) state dict."""
    import comfy.ldm.wan.vae

    with torch.device("meta"):
        vae = comfy.ldm.wan.vae.WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                       temperal_downsample=[False, True, True], dropout=0.0)
    return _init({k: v for k, v in vae.state_dict().items()}, seed)


def write_tiny_models(models_dir: str | os.PathLike, num_layers: int = 4) -> dict[str, Path]:
    """Write the tiny stand-ins under ``models_dir/{diffusion_models,vae}``; existing files are kept.

    Returns:
        tiny file name → path.
    """
    models_dir = Path(models_dir)
    plan = {
        TINY_FILES["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"]:
            ("diffusion_models", lambda: wan_state_dict(1, in_dim=36, num_layers=num_layers)),
        TINY_FILES["wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]:
            ("diffusion_models", lambda: wan_state_dict(2, in_dim=36, num_layers=num_layers)),
        TINY_T2V: ("diffusion_models", lambda: wan_state_dict(3, num_layers=num_layers)),
        TINY_FILES["wan_2.1_vae.safetensors"]: ("vae", lambda: wan_vae_state_dict(4)),
    }
    written = {}
    for name, (folder, build) in plan.items():
        path = models_dir / folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in build().items()}, str(tmp))
            os.replace(tmp, path)
        written[name] = path
    return written
