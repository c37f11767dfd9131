"""The live sampling preview: one progress bar over the global steps and a strip of x̂0 frames.

On the sampler thread each step costs a latent→RGB projection of a few frames on the model's
device and a copy of those small frames to the CPU. Drawing the strip (PIL) happens on a
latest-only worker thread (frames are dropped, never queued); the finished picture is sent with
the next progress update from the sampler thread, so ComfyUI's interrupt check stays there.

The same finished picture also goes to the pack's web extension as the named websocket event
``chain_of_steps.preview`` (``PREVIEW_EVENT``): ``{node, prompt_id, step, total, sigma, expert,
step_time, frames, image, width, height, strip_top}`` with ``image`` the captioned strip as a
base64 JPEG data URL (encoded on the worker thread; the frames start ``strip_top`` rows down).
The sampler thread only hands the finished dict to ``PromptServer.send_sync`` (a non-blocking
queue put); without a server (in-process tests) nothing is sent.
"""
from __future__ import annotations

import base64
import io
import sys
import time

import comfy.utils

from ..cos_core.latent_rgb import latent_to_rgb, pick_frames
from ..cos_core.preview import LatestOnlyWorker
from ..cos_core.render import preview_strip
from .adapters import LatentInfo

EXPERT_NAMES = {"high": "high-noise expert", "low": "low-noise expert", "single": ""}
PREVIEW_EVENT = "chain_of_steps.preview"


def preview_sender():
    """``send(data)`` to the client that queued the running prompt, or None without a ComfyUI server.

    Looks only at an already imported ``server`` module (a running ComfyUI has it), so in-process
    tests never import the web server.
    """
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not callable(getattr(instance, "send_sync", None)):
        return None
    return lambda data: instance.send_sync(PREVIEW_EVENT, data, getattr(instance, "client_id", None))


def _prompt_id():
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return context.prompt_id if context is not None else None


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
        self.node_id = None if node_id is None else str(node_id)
        self.prompt_id = _prompt_id()
        self.send = preview_sender() if self._enabled else None

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
            meta = {"step": int(step), "total": int(self.total), "sigma": float(sigma), "expert": str(expert),
                    "step_time": step_time, "frames": [int(f) for f in frame_ids]}
            self.worker.submit((rgb, caption, meta))
        self._publish(step + 1)

    def _publish(self, value: int | None) -> None:
        """Sampler thread: progress (unless ``value`` is None), plus the newest finished picture
        (as the progress bar's preview and as the named event)."""
        result = self.worker.take() if self.worker is not None else None
        picture, event = result if result is not None else (None, None)
        if value is not None:
            preview = ("JPEG", picture, self.max_width) if picture is not None else None
            self.pbar.update_absolute(value, self.total, preview)
        if event is not None and self.send is not None:
            try:
                self.send(event | {"node": self.node_id, "prompt_id": self.prompt_id})
            except Exception:  # noqa: BLE001 - a preview must never break sampling
                self.send = None

    def _render(self, job):
        """Worker thread: the captioned strip and the event payload with it as a JPEG data URL."""
        rgb, caption, meta = job
        scale = max(1, min(4, 256 // max(1, rgb.shape[1])))
        if scale > 1:
            rgb = rgb.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
        picture = preview_strip(rgb, caption, self.max_width)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=85)
        image = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        frames_height = round(rgb.shape[1] * min(1.0, picture.width / (rgb.shape[0] * rgb.shape[2])))
        return picture, meta | {"image": image, "width": picture.width, "height": picture.height,
                                "strip_top": picture.height - frames_height}

    def close(self) -> None:
        """Stop the worker; the last step's picture, if it finished meanwhile, is still sent."""
        if self.worker is not None:
            self.worker.drain(timeout=1.0)
            self._publish(None)
            self.worker.close()
