"""Wan2.1 / Wan2.2 (ComfyUI's ``comfy.ldm.wan.model.WanModel``)."""
from __future__ import annotations

from .base import Adapter


class WanAdapter(Adapter):
    """Wan: blocks in ``diffusion_model.blocks``, tokens in (f, h, w) row-major order with the grid
    in ``transformer_options["grid_sizes"]``; latent Wan21 (16 ch, stride t4/s8) or Wan22 (48 ch, s16)."""

    family = "Wan"

    def matches(self, model) -> bool:
        try:
            from comfy.ldm.wan.model import WanModel
        except ImportError:  # pragma: no cover - a ComfyUI without Wan
            return False
        return isinstance(getattr(getattr(model, "model", None), "diffusion_model", None), WanModel)

    def num_blocks(self, model) -> int:
        return len(model.model.diffusion_model.blocks)

    def video_hidden(self, block_out: dict):
        return block_out["img"]

    def has_experts(self) -> bool:
        return True

    def token_grid(self, transformer_options: dict, hidden):
        """Wan writes ``grid_sizes`` = (F', H', W') after patch embedding; the video tokens are the
        first F'·H'·W' (Wan2.1/2.2 T2V/I2V; variants with a reference conv prepend tokens and are
        not handled yet)."""
        frames, height, width = (int(v) for v in transformer_options["grid_sizes"])
        return 0, (frames, height, width)
