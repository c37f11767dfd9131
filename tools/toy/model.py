"""The CoS-Toy model: ComfyUI's own ``comfy.ldm.wan.model.WanModel`` at toy width (Wan2.2-I2V layout).

``in_dim`` 36 = 16 noisy latent + 4 mask + 16 first-frame latent, exactly what ComfyUI's
``WanImageToVideo`` + ``WAN21.concat_cond`` feed a Wan I2V model. 30 blocks so blocks 20–29 (the
paper's reasoning layers) exist, at width 64 with one 64-wide head so the fp16 file stays ≈ 4.6 MB.
ComfyUI's Wan detection derives ``num_heads = dim // 128`` from the weights (0 at width 64); the
file's safetensors metadata ``config = {"transformer": {"num_heads": 1}}`` is ComfyUI's own override
(``model_detection.detect_unet_config`` applies it), so ``UNETLoader`` / ``load_diffusion_model`` build
the right model. Text: a constant context (no text encoder), ``CONTEXT_TOKENS`` × 4096 zeros.
"""
from __future__ import annotations

import json
import math

import torch

CONFIG = dict(model_type="t2v", dim=64, ffn_dim=256, freq_dim=256, num_heads=1, num_layers=30, in_dim=36,
              out_dim=16, text_dim=4096)
CONTEXT_TOKENS = 1
SEED = 20261123
WEIGHTS_NAME = "cos-toy_wan_i2v.safetensors"


def _comfy_args(device) -> None:
    """Tell ComfyUI's model_management (imported by the attention module) to stay on the CPU if asked."""
    from comfy.cli_args import args

    if torch.device(device).type == "cpu" or not torch.cuda.is_available():
        args.cpu = True
    else:
        args.use_pytorch_cross_attention = True     # SDPA: one graph per block under torch.compile


def build(device="cpu", dtype=torch.float32, seed: int = SEED):
    _comfy_args(device)
    import comfy.ldm.wan.model
    import comfy.ops

    torch.manual_seed(seed)
    model = comfy.ldm.wan.model.WanModel(**CONFIG, operations=comfy.ops.disable_weight_init, device=device,
                                         dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim == 1 or "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            elif name.endswith("modulation"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            elif name.startswith("head.head"):
                p.zero_()
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
    return model


def context(batch: int, device="cpu", dtype=torch.float32) -> torch.Tensor:
    return torch.zeros(batch, CONTEXT_TOKENS, CONFIG["text_dim"], device=device, dtype=dtype)


def export(state: dict, path, meta: dict | None = None, dtype=torch.float16) -> None:
    """Write weights in UNETLoader format (plain ``WanModel`` keys; ComfyUI detects Wan by ``head.modulation``)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}
    comfy_config = {"transformer": {"num_heads": CONFIG["num_heads"]}}       # read by ComfyUI's detection
    save_file(sd, str(path), metadata={"cos_toy": json.dumps(meta or {}), "config": json.dumps(comfy_config),
                                       "format": "pt"})
