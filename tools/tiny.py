"""Tiny random-weight stand-ins for the Wan2.2 and LTX-2 / LTX-2.3 files, built from ComfyUI's own model classes.

Nothing can be downloaded in tests, and a 14B model does not fit a CPU run; these checkpoints
have the real architectures (ComfyUI's ``WanModel`` and Wan2.1 ``WanVAE``) at toy widths, are
detected by ComfyUI's normal loaders (UNETLoader, VAELoader), and give random pictures. Every
file name starts with ``cos-tiny_`` so nobody mistakes them for real weights.

Run inside ComfyUI's Python with ComfyUI importable (``COMFYUI_PATH`` on ``sys.path``).
"""
from __future__ import annotations

import json
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
    "ltx-2.3-22b-dev-fp8.safetensors": "cos-tiny_ltx-2.3_av.safetensors",
    "ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors":
        "cos-tiny_ltx-2.3_distilled_lora.safetensors",
    "ltx-2.3-spatial-upscaler-x2-1.1.safetensors": "cos-tiny_ltx-2.3_spatial_upscaler_x2.safetensors",
}
TINY_T2V = "cos-tiny_wan2.1_t2v.safetensors"
# the ComfyUI models folder of every tiny file that write_tiny_models writes
TINY_FOLDERS = {
    "cos-tiny_wan2.2_i2v_high_noise.safetensors": "diffusion_models",
    "cos-tiny_wan2.2_i2v_low_noise.safetensors": "diffusion_models",
    TINY_T2V: "diffusion_models",
    "cos-tiny_wan_2.1_vae.safetensors": "vae",
    "cos-tiny_ltx-2.3_av.safetensors": "checkpoints",
    "cos-tiny_ltx-2.3_distilled_lora.safetensors": "loras",
    "cos-tiny_ltx-2.3_spatial_upscaler_x2.safetensors": "latent_upscale_models",
}


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


def _write_plan(models_dir: str | os.PathLike, plan: dict) -> dict[str, Path]:
    """Write ``{file name: (folder, build)}`` with ``build() -> (state dict, metadata or None)`` under
    ``models_dir/<folder>``, atomically; existing files are kept. Returns file name → path."""
    written = {}
    for name, (folder, build) in plan.items():
        path = Path(models_dir) / folder / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            sd, metadata = build()
            tmp = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp), metadata=metadata)
            os.replace(tmp, path)
        written[name] = path
    return written


def write_tiny_models(models_dir: str | os.PathLike, num_layers: int = 4) -> dict[str, Path]:
    """Write the tiny stand-ins of :data:`TINY_FOLDERS` under ``models_dir/<folder>`` (the Wan files and, through
    :func:`write_tiny_ltx23_models`, the LTX-2.3 ones); existing files are kept.

    Returns:
        tiny file name → path.
    """
    models_dir = Path(models_dir)
    plan = {
        TINY_FILES["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"]:
            ("diffusion_models", lambda: (wan_state_dict(1, in_dim=36, num_layers=num_layers), None)),
        TINY_FILES["wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]:
            ("diffusion_models", lambda: (wan_state_dict(2, in_dim=36, num_layers=num_layers), None)),
        TINY_T2V: ("diffusion_models", lambda: (wan_state_dict(3, num_layers=num_layers), None)),
        TINY_FILES["wan_2.1_vae.safetensors"]: ("vae", lambda: (wan_vae_state_dict(4), None)),
    }
    return _write_plan(models_dir, plan) | write_tiny_ltx23_models(models_dir)


# LTX (ComfyUI's comfy.ldm.lightricks). Detection needs 32 heads (head_dim = attn2.to_k rows // 32),
# LTXV needs cross_attention_dim == inner_dim, and a caption width other than 4096 must be named in
# the safetensors metadata ``config.transformer`` (as real LTX-2 checkpoints carry their config).
TINY_LTXV = "cos-tiny_ltxv.safetensors"
TINY_LTXAV = "cos-tiny_ltx-2_av.safetensors"
LTX_CAPTION_CHANNELS = 64  # LTXV context (B, L, 64); LTXAV context (B, L, 2·64): video half, audio half


def ltxv_state_dict(seed: int, num_layers: int = 3, head_dim: int = 4) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny ComfyUI ``LTXVModel`` (video only, 128 latent channels) state dict and its metadata."""
    import comfy.ldm.lightricks.model
    import comfy.ops

    inner = 32 * head_dim
    with torch.device("meta"):
        model = comfy.ldm.lightricks.model.LTXVModel(
            in_channels=128, cross_attention_dim=inner, attention_head_dim=head_dim, num_attention_heads=32,
            caption_channels=LTX_CAPTION_CHANNELS, num_layers=num_layers, operations=comfy.ops.disable_weight_init)
    metadata = {"config": json.dumps({"transformer": {"caption_channels": LTX_CAPTION_CHANNELS}})}
    return _init(dict(model.state_dict()), seed, gain=0.8), metadata


def ltxav_state_dict(seed: int, num_layers: int = 3, head_dim: int = 4,
                     audio_head_dim: int = 2) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny ComfyUI ``LTXAVModel`` (LTX-2 audio-video: video 128 ch, audio 8 ch × 16 bins) state dict
    and its metadata."""
    import comfy.ldm.lightricks.av_model
    import comfy.ops

    audio_inner = 32 * audio_head_dim
    # The text connectors (2 × 2 blocks of width 3840 by default, 1.4 B parameters) only run on unprocessed
    # Gemma features; the tests give already processed contexts, so they are shrunk to the caption width.
    config = {"caption_channels": LTX_CAPTION_CHANNELS, "audio_cross_attention_dim": audio_inner,
              "audio_attention_head_dim": audio_head_dim, "audio_num_attention_heads": 32,
              "connector_attention_head_dim": 4, "connector_num_attention_heads": LTX_CAPTION_CHANNELS // 4,
              "connector_num_layers": 1}
    with torch.device("meta"):
        model = comfy.ldm.lightricks.av_model.LTXAVModel(
            in_channels=128, audio_in_channels=128, cross_attention_dim=32 * head_dim, attention_head_dim=head_dim,
            num_attention_heads=32, num_layers=num_layers, operations=comfy.ops.disable_weight_init, **config)
    return _init(dict(model.state_dict()), seed, gain=0.8), {"config": json.dumps({"transformer": config})}


TINY_LTX_AUDIO_VAE = "cos-tiny_ltx-2_audio_vae.safetensors"


def ltx_audio_vae_state_dict(seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny LTX-2 audio VAE (``comfy.ldm.lightricks.vae.audio_vae.AudioVAE``: mel autoencoder, 8 latent
    channels × 16 bins, 25 latent frames per second, plus a HiFi-GAN vocoder to 16 kHz stereo) and its
    metadata, for ``comfy.sd.VAE(sd=..., metadata=...)`` / LTXVAudioVAELoader."""
    from comfy.ldm.lightricks.vae.audio_vae import AudioVAE

    ddconfig = {"double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "downsample_time": False,
                "in_channels": 2, "out_ch": 2, "ch": 8, "ch_mult": [1, 2, 4], "num_res_blocks": 1,
                "attn_resolutions": [], "dropout": 0.0, "mid_block_add_attention": False, "norm_type": "pixel",
                "causality_axis": "height"}
    config = {"audio_vae": {"model": {"params": {"ddconfig": ddconfig, "sampling_rate": 16000}},
                            "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160}}},
              "vocoder": {"resblock": "1", "upsample_initial_channel": 64, "upsample_rates": [5, 4, 2, 2, 2],
                          "upsample_kernel_sizes": [16, 16, 8, 4, 4], "resblock_kernel_sizes": [3],
                          "resblock_dilation_sizes": [[1, 3, 5]], "stereo": True, "output_sample_rate": 16000}}
    metadata = {"config": json.dumps(config)}
    with torch.device("meta"):
        vae = AudioVAE(metadata)
    sd = _init(dict(vae.state_dict()), seed)
    stats = "autoencoder.per_channel_statistics."
    sd[stats + "std-of-means"] = torch.ones(sd[stats + "std-of-means"].shape)
    sd[stats + "mean-of-means"] = torch.zeros(sd[stats + "mean-of-means"].shape)
    return sd, metadata


def write_tiny_ltx_models(models_dir: str | os.PathLike, num_layers: int = 3) -> dict[str, Path]:
    """Write tiny LTXV and LTXAV diffusion models (with their config metadata) under
    ``models_dir/diffusion_models`` (UNETLoader, ``comfy.sd.load_diffusion_model``) and a tiny LTX-2
    audio VAE under ``models_dir/checkpoints`` (LTXVAudioVAELoader); existing files are kept.

    Returns:
        tiny file name → path.
    """
    plan = {TINY_LTXV: ("diffusion_models", lambda: ltxv_state_dict(21, num_layers)),
            TINY_LTXAV: ("diffusion_models", lambda: ltxav_state_dict(22, num_layers)),
            TINY_LTX_AUDIO_VAE: ("checkpoints", lambda: ltx_audio_vae_state_dict(23))}
    return _write_plan(models_dir, plan)


# LTX-2.3 as ComfyUI's LTX-2.3 templates load it: one checkpoint file (CheckpointLoaderSimple: the model and the
# video VAE; LTXVAudioVAELoader: the audio VAE and vocoder out of the same file), a distilled LoRA
# (LoraLoaderModelOnly) and the ×2 spatial latent upscaler (LatentUpscaleModelLoader). The Gemma 3 text encoder
# cannot be tiny (its size is fixed by ComfyUI's config, as umt5-xxl's): tools/tiny_nodes' CoSTinyLTXTextEncode
# gives a processed context of the width below instead.
TINY_LTX23 = TINY_FILES["ltx-2.3-22b-dev-fp8.safetensors"]
TINY_LTX23_LORA = TINY_FILES["ltx_2.3_22b_distilled_1.1_lora_dynamic_fro09_avg_rank_111_bf16.safetensors"]
TINY_LTX23_UPSCALER = TINY_FILES["ltx-2.3-spatial-upscaler-x2-1.1.safetensors"]
LTX23_HEAD_DIM, LTX23_AUDIO_HEAD_DIM = 4, 2
# LTX-2.3's processed text context: video width (32 heads × head dim) then audio width, side by side
LTX23_CONTEXT_WIDTH = 32 * LTX23_HEAD_DIM + 32 * LTX23_AUDIO_HEAD_DIM

TINY_LTX_VIDEO_VAE_CONFIG = {
    # LTX-2's video VAE layout (stride 8 in time, 32 in space: patch 4 × three 2× stages) at 8 base channels,
    # one residual layer per stage
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}],
                       ["compress_time_res", {"multiplier": 2}], ["compress_all_res", {"multiplier": 2}],
                       ["compress_all_res", {"multiplier": 2}]],
    "decoder_blocks": [["res_x", {"num_layers": 1, "inject_noise": False}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["compress_all", {"residual": True, "multiplier": 2}],
                       ["res_x", {"num_layers": 1, "inject_noise": False}]],
    "encoder_base_channels": 8, "decoder_base_channels": 8, "scaling_factor": 1.0, "norm_layer": "pixel_norm",
    "patch_size": 4, "latent_log_var": "uniform", "use_quant_conv": False, "causal_decoder": False,
    "timestep_conditioning": False}


def ltx_video_vae_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """A tiny LTX video VAE (``comfy.ldm.lightricks.vae.causal_video_autoencoder.VideoVAE`` with
    :data:`TINY_LTX_VIDEO_VAE_CONFIG`; 128 latent channels, stride 8/32/32), identity latent statistics."""
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE

    with torch.device("meta"):
        vae = VideoVAE(config=TINY_LTX_VIDEO_VAE_CONFIG)
    sd = _init(dict(vae.state_dict()), seed)
    sd["per_channel_statistics.std-of-means"] = torch.ones(128)
    sd["per_channel_statistics.mean-of-means"] = torch.zeros(128)
    return sd


def ltx23_transformer_config() -> dict:
    """The LTX-2.3 options of ComfyUI's ``LTXAVModel`` (gated attention, cross-attention AdaLN, caption
    projection before the connectors) at toy widths; the checkpoint's metadata carries it."""
    return {"caption_channels": LTX_CAPTION_CHANNELS, "cross_attention_dim": 32 * LTX23_HEAD_DIM,
            "attention_head_dim": LTX23_HEAD_DIM, "num_attention_heads": 32,
            "audio_cross_attention_dim": 32 * LTX23_AUDIO_HEAD_DIM, "audio_attention_head_dim": LTX23_AUDIO_HEAD_DIM,
            "audio_num_attention_heads": 32, "apply_gated_attention": True, "cross_attention_adaln": True,
            "caption_proj_before_connector": True, "connector_apply_gated_attention": True,
            "connector_attention_head_dim": 4, "connector_num_attention_heads": LTX_CAPTION_CHANNELS // 4,
            "connector_num_layers": 1}


def ltx23_checkpoint_state_dict(seed: int, num_layers: int = 3) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny LTX-2.3 checkpoint in the layout of ``ltx-2.3-22b-dev*.safetensors``: ``model.diffusion_model.*``
    (ComfyUI's ``LTXAVModel`` with :func:`ltx23_transformer_config`), ``vae.*`` (:func:`ltx_video_vae_state_dict`),
    ``audio_vae.*`` and ``vocoder.*`` (:func:`ltx_audio_vae_state_dict`), and the metadata ``config`` with the
    transformer, VAE, audio VAE and vocoder sections, as real LTX-2 checkpoints carry it."""
    import comfy.ldm.lightricks.av_model
    import comfy.ops

    config = ltx23_transformer_config()
    with torch.device("meta"):
        model = comfy.ldm.lightricks.av_model.LTXAVModel(in_channels=128, audio_in_channels=128, num_layers=num_layers,
                                                         operations=comfy.ops.disable_weight_init, **config)
    sd = {f"model.diffusion_model.{k}": v for k, v in _init(dict(model.state_dict()), seed, gain=0.8).items()}
    sd |= {f"vae.{k}": v for k, v in ltx_video_vae_state_dict(seed + 1).items()}
    audio_sd, audio_metadata = ltx_audio_vae_state_dict(seed + 2)
    for key, value in audio_sd.items():
        sd["audio_vae." + key[len("autoencoder."):] if key.startswith("autoencoder.") else key] = value
    full = json.loads(audio_metadata["config"]) | {"transformer": config, "vae": TINY_LTX_VIDEO_VAE_CONFIG}
    return sd, {"config": json.dumps(full)}


def ltx23_lora_state_dict(seed: int, rank: int = 2, num_layers: int = 3) -> dict[str, torch.Tensor]:
    """A tiny LoRA for :func:`ltx23_checkpoint_state_dict`'s model (attn1 q/v of every block), in the
    ``diffusion_model.<module>.lora_A/lora_B`` naming of LTX-2's distilled LoRAs."""
    gen = torch.Generator().manual_seed(seed)
    width = 32 * LTX23_HEAD_DIM
    sd = {}
    for block in range(num_layers):
        for proj in ("to_q", "to_v"):
            base = f"diffusion_model.transformer_blocks.{block}.attn1.{proj}"
            sd[f"{base}.lora_A.weight"] = torch.randn(rank, width, generator=gen) * 0.05
            sd[f"{base}.lora_B.weight"] = torch.randn(width, rank, generator=gen) * 0.05
    return sd


def ltx23_upscaler_state_dict(seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """A tiny LTX ×2 spatial latent upscaler (``comfy.ldm.lightricks.latent_upsampler.LatentUpsampler``, 32 mid
    channels, one block per stage) and its metadata ``config``, as LatentUpscaleModelLoader reads them."""
    from comfy.ldm.lightricks.latent_upsampler import LatentUpsampler
    import comfy.ops

    config = {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1,
              "dims": 3, "spatial_upsample": True, "temporal_upsample": False}
    with torch.device("meta"):
        model = LatentUpsampler.from_config(config, operations=comfy.ops.disable_weight_init)
    return _init(dict(model.state_dict()), seed, gain=0.5), {"config": json.dumps(config)}


def write_tiny_ltx23_models(models_dir: str | os.PathLike, num_layers: int = 3) -> dict[str, Path]:
    """Write the tiny LTX-2.3 checkpoint (``checkpoints/``), LoRA (``loras/``) and latent upscaler
    (``latent_upscale_models/``) under ``models_dir``; existing files are kept.

    Returns:
        tiny file name → path.
    """
    plan = {TINY_LTX23: ("checkpoints", lambda: ltx23_checkpoint_state_dict(31, num_layers)),
            TINY_LTX23_LORA: ("loras", lambda: (ltx23_lora_state_dict(34, num_layers=num_layers), None)),
            TINY_LTX23_UPSCALER: ("latent_upscale_models", lambda: ltx23_upscaler_state_dict(35))}
    return _write_plan(models_dir, plan)
