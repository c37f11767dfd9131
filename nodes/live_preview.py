"""The live sampling preview: one progress bar over the global steps and a strip of x̂0 frames.

On the sampler thread each step costs a latent→RGB projection of a few frames on the model's
device and a copy of those small frames to the CPU. Drawing the strip (PIL) happens on a
latest-only worker thread (frames are dropped, never queued); the finished picture is sent with
the next progress update from the sampler thread, so ComfyUI's interrupt check stays there.
"""
from __future__ import annotations

import time

import comfy.utils

from ..cos_core.latent_rgb import latent_to_rgb, pick_frames
from ..cos_core.preview import LatestOnlyWorker
from ..cos_core.render import preview_strip
from .adapters import LatentInfo

EXPERT_NAMES = {"high": "high-noise expert", "low": "low-noise expert", "single": ""}


class LivePreview:
    """Progress + preview for one node run.

    Args:
        total_steps: S, the number of global steps.
        node_id: the ComfyUI node id (``cls.hidden.unique_id``) or None.
        info: the model's latent info (RGB factors); previews are off when it has none.
        latent_format: the model's latent format, whose ``process_in`` maps back to model space.
        frames: how many frames the strip shows (0 turns the preview off).
        max_width: the strip's width limit in pixels.
    """

    def __init__(self, total_steps: int, node_id, info: LatentInfo | None, frames: int = 4, max_width: int = 1024):
        self.total = total_steps
        self.pbar = comfy.utils.ProgressBar(total_steps, node_id=node_id)
        self.info = info
        self.frames = frames
        self.max_width = max_width
        self._last_time = None
        self._enabled = frames > 0 and info is not None and info.rgb_factors is not None
        self.worker = LatestOnlyWorker(self._render) if self._enabled else None

    def on_step(self, step: int, sigma: float, expert: str, x0_model_space) -> None:
        """Sampler-thread part: project a few frames, hand them over, push progress (+ last picture)."""
        now = time.perf_counter()
        step_time = None if self._last_time is None else now - self._last_time
        self._last_time = now
        if self.worker is not None:
            frame_ids = pick_frames(x0_model_space.shape[2], self.frames)
            rgb = latent_to_rgb(x0_model_space[:1, :, frame_ids].detach(), self.info.rgb_factors,
                                self.info.rgb_bias)[0].to("cpu")
            caption = f"step {step + 1}/{self.total}   σ={sigma:.3f}"
            if EXPERT_NAMES.get(expert):
                caption += f"   {EXPERT_NAMES[expert]}"
            if step_time is not None:
                caption += f"   {step_time:.2f} s/step"
            self.worker.submit((rgb, caption))
        picture = self.worker.take() if self.worker is not None else None
        preview = ("JPEG", picture, self.max_width) if picture is not None else None
        self.pbar.update_absolute(step + 1, self.total, preview)

    def _render(self, job):
        rgb, caption = job
        scale = max(1, min(4, 256 // max(1, rgb.shape[1])))
        if scale > 1:
            rgb = rgb.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
        return preview_strip(rgb, caption, self.max_width)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
