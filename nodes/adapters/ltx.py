"""LTX-Video / LTX-2 / LTX-2.3 (ComfyUI's ``comfy.ldm.lightricks``: ``LTXVModel``, ``LTXAVModel``).

What differs from Wan, and how the pack deals with it:

- **Blocks** are ``diffusion_model.transformer_blocks`` (LTX-2 19B / LTX-2.3 22B: 48), hooked with
  ``patches_replace["dit"][("double_block", i)]`` like Wan's.
- **Token grid.** Patch size 1×1×1: the video tokens are the latent cells in (f, h, w) row-major
  order, but LTX does not tell its blocks the grid. :meth:`LtxAdapter.prepare` adds a
  DIFFUSION_MODEL wrapper that records the video latent's (F, H, W) into
  ``transformer_options[GRID_KEY]`` (the same dict reaches the blocks). Guide/keyframe frames
  appended by LTXVAddGuide sit *after* the grid (their tokens are counted from ``keyframe_idxs``
  and left out of F), so only the first F·H·W tokens are the video grid. ComfyUI drops tokens only
  from those guide frames (IC-LoRA's dilated guides), never from the grid.
- **Audio-video (LTXAV).** A block receives and returns ``{"img": (vx, ax)}``; ``vx`` is the video
  stream. Replacing the hidden states returns a new ``(vx, ax)`` tuple with the audio untouched
  unless a new audio tensor is given. (The official DiffSynth token tool calls ``.detach()`` on
  this tuple and fails; see ``OFFICIAL_TOOLS.md``.)
- **In place.** LTX blocks update their input (``x += …``, ``vx.addcmul_``): a block's output is
  the tensor the next block mutates. Hooks reduce or copy what they keep at once, and the
  ensemble / layer swap hand back new tensors.
- **Latents.** LTXV / LTXAV latent formats: 128 channels, temporal stride 8 (latent frame 0 =
  pixel frame 0), spatial stride 32, identity ``process_in/out``. LTXAV samples a NestedTensor
  (video (B, 128, F, H, W), audio (B, 8, T, 16)), packed by ComfyUI's sampler into one flat
  (B, 1, N) tensor (``comfy.utils.pack_latents``); callbacks get the nested view back.
- **Sampling.** ``ModelType.FLUX`` (``ModelSamplingFlux`` + CONST): x̂0 = x − σ·v as for Wan.
  One model, no expert switch.
"""
from __future__ import annotations

import comfy.patcher_extension

from .base import Adapter

GRID_KEY = "chain_of_steps.ltx_grid"
WRAPPER_KEY = "chain_of_steps.ltx_grid"


def _diffusion_model(model):
    return getattr(getattr(model, "model", None), "diffusion_model", None)


def video_grid(x, keyframe_idxs=None) -> tuple[int, int, int]:
    """(F, H, W) of the video grid for an LTX diffusion-model input ``x``.

    Args:
        x: the video latent (B, C, F, H, W), or LTXAV's list ``[video, audio]`` (or ``[video]``).
        keyframe_idxs: LTX's guide-token positions (B, 3, N_guide, 2) or None; the guide frames they
            stand for are appended to the latent after the F grid frames.
    """
    video = x[0] if isinstance(x, (list, tuple)) else x
    frames, height, width = (int(v) for v in video.shape[2:5])
    if keyframe_idxs is not None and keyframe_idxs.ndim >= 3 and keyframe_idxs.shape[2] > 0:
        frames -= int(keyframe_idxs.shape[2]) // (height * width)
    return frames, height, width


def _record_grid(executor, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: ``forward(x, timestep, context, attention_mask, frame_rate,
    transformer_options, keyframe_idxs, **kw)``; writes the grid into transformer_options."""
    x = args[0] if args else kwargs.get("x")
    options = args[5] if len(args) > 5 else kwargs.get("transformer_options")
    keyframes = args[6] if len(args) > 6 else kwargs.get("keyframe_idxs")
    if isinstance(options, dict) and x is not None:
        options[GRID_KEY] = video_grid(x, keyframes)
    return executor(*args, **kwargs)


class LtxAdapter(Adapter):
    """LTX: blocks in ``diffusion_model.transformer_blocks``; the video grid recorded by
    :meth:`prepare`; LTXAV blocks carry ``(video, audio)`` tuples."""

    family = "LTX-2"

    def matches(self, model) -> bool:
        try:
            from comfy.ldm.lightricks.model import LTXVModel
        except ImportError:  # pragma: no cover - a ComfyUI without LTX
            return False
        return isinstance(_diffusion_model(model), LTXVModel)  # LTXAVModel is a subclass

    def accepts_audio(self, model) -> bool:
        try:
            from comfy.ldm.lightricks.av_model import LTXAVModel
        except ImportError:  # pragma: no cover
            return False
        return isinstance(_diffusion_model(model), LTXAVModel)

    def num_blocks(self, model) -> int:
        return len(_diffusion_model(model).transformer_blocks)

    def prepare(self, model) -> None:
        """Add the grid-recording DIFFUSION_MODEL wrapper to a *clone* (once)."""
        kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
        if not model.get_wrappers(kind, WRAPPER_KEY):
            model.add_wrapper_with_key(kind, WRAPPER_KEY, _record_grid)

    def video_hidden(self, block_out: dict):
        img = block_out["img"]
        return img[0] if isinstance(img, (tuple, list)) else img

    def audio_hidden(self, block_out: dict):
        img = block_out["img"]
        return img[1] if isinstance(img, (tuple, list)) and len(img) > 1 else None

    def with_video(self, block_out: dict, video, audio=None) -> dict:
        img = block_out["img"]
        if isinstance(img, (tuple, list)):
            streams = list(img)
            streams[0] = video
            if audio is not None:
                streams[1] = audio
            return {**block_out, "img": tuple(streams)}
        if audio is not None:
            raise ValueError("this LTX model (LTXV) has no audio stream")
        return {**block_out, "img": video}

    def token_grid(self, transformer_options: dict, hidden):
        """The grid recorded by :meth:`prepare`'s wrapper; video tokens start at 0."""
        grid = transformer_options.get(GRID_KEY)
        if grid is None:
            raise RuntimeError("Chain-of-Steps: the LTX token grid was not recorded; the patch node must call "
                               "LtxAdapter.prepare on its model clone")
        return 0, tuple(int(v) for v in grid)
