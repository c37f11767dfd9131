"""The adapter interface and checks shared by every architecture."""
from __future__ import annotations

from dataclasses import dataclass

import comfy.model_sampling
import comfy.nested_tensor
import comfy.utils
import torch


@dataclass(frozen=True)
class LatentInfo:
    """How a model's latent maps to pixels.

    Attributes:
        name: latent format class name, e.g. "Wan21".
        channels: latent channels C.
        temporal_stride: pixel frames per latent frame (Wan: 4; latent frame 0 is pixel frame 0).
        spatial_stride: pixels per latent cell along H and W (Wan2.1 VAE: 8).
        rgb_factors: C×3 latent→RGB projection for model-space latents, or None.
        rgb_bias: 3 values or None.
    """

    name: str
    channels: int
    temporal_stride: int
    spatial_stride: int
    rgb_factors: tuple | None
    rgb_bias: tuple | None

    @classmethod
    def from_format(cls, fmt) -> "LatentInfo":
        """From a ``comfy.latent_formats.LatentFormat`` instance."""
        factors = getattr(fmt, "latent_rgb_factors", None)
        bias = getattr(fmt, "latent_rgb_factors_bias", None)
        return cls(
            name=type(fmt).__name__,
            channels=int(fmt.latent_channels),
            temporal_stride=int(getattr(fmt, "temporal_downscale_ratio", 1)),
            spatial_stride=int(getattr(fmt, "spacial_downscale_ratio", 8)),
            rgb_factors=tuple(tuple(r) for r in factors) if factors is not None else None,
            rgb_bias=tuple(bias) if bias is not None else None,
        )

    def pixel_frames(self, latent_frame: int) -> tuple[int, int]:
        """Inclusive pixel-frame range covered by ``latent_frame`` (frame 0 covers pixel 0 only)."""
        if latent_frame == 0:
            return 0, 0
        s = self.temporal_stride
        return (latent_frame - 1) * s + 1, latent_frame * s

    def pixel_frame_count(self, latent_frames: int) -> int:
        return (latent_frames - 1) * self.temporal_stride + 1


class Adapter:
    """What the pack needs to know about one architecture family."""

    family = "base"

    def matches(self, model) -> bool:
        raise NotImplementedError

    def latent_info(self, model) -> LatentInfo:
        return LatentInfo.from_format(model.get_model_object("latent_format"))

    def num_blocks(self, model) -> int:
        """How many DiT blocks (layers) the model has."""
        raise NotImplementedError

    def block_key(self, layer: int) -> tuple[str, int]:
        """The ``patches_replace["dit"]`` key of a block."""
        return ("double_block", layer)

    def video_hidden(self, block_out: dict):
        """The video-token hidden states (C·B, N, D) in a block-replace result ``{"img": ...}``."""
        raise NotImplementedError

    def token_grid(self, transformer_options: dict, hidden) -> tuple[int, tuple[int, int, int]]:
        """(offset of the first video token, (F, H, W) token grid) for a block call."""
        raise NotImplementedError

    def audio_hidden(self, block_out: dict):
        """The audio-token hidden states in a block-replace result, or None (video-only models)."""
        return None

    def with_video(self, block_out: dict, video, audio=None) -> dict:
        """A new block-replace result with the video hidden states replaced by ``video`` (a new tensor,
        never one the next block mutates in place) and, for audio-video models, the audio ones by
        ``audio`` when given (else untouched). ``block_out`` itself is not modified."""
        if audio is not None:
            raise ValueError(f"{self.family} blocks have no audio stream")
        return {**block_out, "img": video}

    def prepare(self, model) -> None:
        """Make a cloned MODEL ready for this pack's block hooks (e.g. record what the blocks are not
        told, such as LTX's token grid). Patch nodes call it on their clones; the default does nothing."""

    def has_experts(self) -> bool:
        """Whether the family has Wan2.2's two-expert (high-/low-noise) split."""
        return False

    def accepts_audio(self, model) -> bool:
        """Whether ``model`` samples an audio-video LATENT (a NestedTensor of video and audio)."""
        return False

    def layers_hint(self, model) -> str:
        """A short note on the model's blocks for error messages."""
        return f"{self.family} has {self.num_blocks(model)} blocks (0-{self.num_blocks(model) - 1})"


def call_sigma(transformer_options: dict) -> float:
    """σ of the current model call, read once per call: the blocks of one call share the same
    ``transformer_options`` dict, so the GPU→CPU sync of ``float(sigmas[0])`` happens once, not
    once per hooked block (measured on an H100: ~0.7 ms per block call at 9,360 tokens)."""
    cached = transformer_options.get("cos_call_sigma")
    sigmas = transformer_options["sigmas"]
    if cached is None or cached[0] is not sigmas:
        cached = (sigmas, float(sigmas[0]))
        transformer_options["cos_call_sigma"] = cached
    return cached[1]


CFG_HALF_NAMES = {0: "cond", 1: "uncond"}


def cfg_halves(cond_or_uncond, batch_rows: int) -> list[tuple[str, slice]]:
    """Split a DiT batch of ``len(cond_or_uncond) × B`` rows into its CFG halves.

    ComfyUI orders the chunks by ``transformer_options["cond_or_uncond"]`` (0 = cond/positive,
    1 = uncond/negative; often ``[1, 0]``); with cfg = 1 only ``[0]`` runs. Never mix halves.

    Returns:
        ``[("cond" | "uncond", rows), ...]`` in batch order.

    Raises:
        ValueError: if the rows do not divide into the chunks.
    """
    chunks = list(cond_or_uncond or [0])
    if batch_rows % len(chunks):
        raise ValueError(f"{batch_rows} batch rows do not split into CFG chunks {chunks}")
    size = batch_rows // len(chunks)
    return [(CFG_HALF_NAMES.get(int(c), f"cond{int(c)}"), slice(i * size, (i + 1) * size))
            for i, c in enumerate(chunks)]


def require_flow_model(model, input_name: str) -> None:
    """Raise ValueError unless ``model`` is a flow-matching (CONST) model, where x̂0 = x − σ·v."""
    sampling = model.get_model_object("model_sampling")
    if not isinstance(sampling, comfy.model_sampling.CONST):
        raise ValueError(f"{input_name}: {type(sampling).__name__} is not a flow-matching model; the x̂0 of "
                         "Chain-of-Steps needs a flow model (Wan2.x, LTX-2), e.g. through ModelSamplingSD3")


def split_streams(x, latent_shapes=None) -> list:
    """The streams of a latent as the sampler hands it around: a NestedTensor's tensors; a packed
    audio-video tensor (B, 1, N) unpacked with its ``latent_shapes`` (what CFGGuider.sample passes to
    OUTER_SAMPLE wrappers); anything else as one stream. The first stream is the video."""
    if getattr(x, "is_nested", False):
        return list(x.unbind())
    if latent_shapes is not None and len(latent_shapes) > 1 and x.ndim == 3:
        return list(comfy.utils.unpack_latents(x, latent_shapes))
    return [x]


def nest(streams):
    """One stream as a tensor, several as a NestedTensor (ComfyUI's audio-video LATENT)."""
    streams = list(streams)
    return streams[0] if len(streams) == 1 else comfy.nested_tensor.NestedTensor(streams)


def packed(x):
    """A NestedTensor packed the way ComfyUI's sampler packs it, (B, 1, N); a tensor unchanged."""
    if getattr(x, "is_nested", False):
        return comfy.utils.pack_latents(x.unbind())[0]
    return x


def latent_out(process_out, streams: list) -> list[torch.Tensor]:
    """``process_latent_out`` applied as ComfyUI applies it (on the NestedTensor for several streams),
    as float32 CPU copies, one per stream."""
    streams = [s.detach() for s in streams]
    out = process_out(nest(streams))
    return [t.to("cpu", torch.float32, copy=True) for t in split_streams(out)]


def require_video_latent(latent: dict, model, input_name: str, adapter: "Adapter | None" = None) -> None:
    """Raise ValueError unless ``latent`` is a 5-D video latent matching the model's channels.

    An audio-video LATENT (NestedTensor of video and audio) is accepted only when ``adapter``
    says the model samples one (LTX-2); its video stream is checked.
    """
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None:
        raise ValueError(f"{input_name}: expected a video LATENT (B, C, F, H, W)")
    if getattr(samples, "is_nested", False):
        if adapter is None or not adapter.accepts_audio(model):
            kind = type(getattr(getattr(model, "model", None), "diffusion_model", None)).__name__
            raise ValueError(f"{input_name}: an audio-video LATENT (video + audio, e.g. from LTXVConcatAVLatent) "
                             f"needs an LTX-2 audio-video model; this {kind} model samples video only, so "
                             "give it the video latent alone")
        samples = split_streams(samples)[0]
    if samples.ndim != 5:
        raise ValueError(f"{input_name}: expected a video latent (B, C, F, H, W) such as WanImageToVideo or "
                         f"EmptyLTXVLatentVideo give, got shape {tuple(samples.shape)}")
    channels = int(model.get_model_object("latent_format").latent_channels)
    if samples.shape[1] not in (channels, 4):  # 4: an empty SD-style latent ComfyUI widens itself
        raise ValueError(f"{input_name}: the latent has {samples.shape[1]} channels but the model expects "
                         f"{channels}; use the latent node that matches the model")
