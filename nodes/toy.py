"""CoS-Toy nodes: the shipped tiny trained Wan I2V model, its weight-free VAE, task and scorer.

The model is ComfyUI's own ``WanModel`` (30 blocks, dim 64, Wan2.2-I2V layout with in_dim 36) trained
on procedural reasoning videos (``cos_core/toy``; training code in ``tools/toy``). Graph:
CoS Toy Task → WanImageToVideo (CoS Toy VAE, width = height = 96, length 17) → CoS Sampler (CoS Toy
Model as model_high, cfg 1) → VAE Decode (CoS Toy VAE) → CoS Toy Score.
"""
from __future__ import annotations

import json
from pathlib import Path

import comfy.latent_formats
import comfy.sd
import numpy as np
import torch
from comfy_api.latest import io

from ..cos_core.toy import latent as toy_latent
from ..cos_core.toy import tasks

WEIGHTS = Path(__file__).resolve().parent.parent / "tools" / "toy" / "weights" / "cos-toy_wan_i2v.safetensors"
CONTEXT_TOKENS, TEXT_DIM = 1, 4096
SIZE = tasks.GRID * tasks.CELL


class ToyVAE:
    """A weight-free stand-in for ComfyUI's ``VAE``: encode/decode by :mod:`cos_core.toy.latent`.

    The raw latent is ``mean + std · code`` with ComfyUI's ``Wan21`` latent format's mean/std, so the
    model sees exactly the code after ``process_in``.
    """

    latent_channels = toy_latent.CHANNELS
    latent_dim = 3
    downscale_ratio = (lambda a: max(0, (a - 1) // toy_latent.T_STRIDE + 1), toy_latent.S_STRIDE,
                       toy_latent.S_STRIDE)
    upscale_ratio = (lambda a: max(0, a * toy_latent.T_STRIDE - 3), toy_latent.S_STRIDE, toy_latent.S_STRIDE)

    def __init__(self):
        fmt = comfy.latent_formats.Wan21()
        self.mean = fmt.latents_mean.flatten()
        self.std = fmt.latents_std.flatten()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE frames (L, H, W, C) → raw latent (1, 16, (L−1)//4+1, H/8, W/8)."""
        return toy_latent.encode(pixels[..., :3].float().cpu(), self.mean, self.std)

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """Raw latent (B, 16, t, h, w) → frames (B, L, H, W, 3)."""
        return toy_latent.decode(samples.float().cpu(), self.mean, self.std)

    def spacial_compression_decode(self):
        return toy_latent.S_STRIDE

    def spacial_compression_encode(self):
        return toy_latent.S_STRIDE

    def temporal_compression_decode(self):
        return toy_latent.T_STRIDE


def toy_conditioning(batch: int = 1):
    """The constant context the toy model was trained with: [[zeros (1, 1, 4096), {}]]."""
    return [[torch.zeros(batch, CONTEXT_TOKENS, TEXT_DIM), {}]]


def load_toy_model(shift: float = 5.0, path: str | Path | None = None):
    """The shipped weights through ComfyUI's own loader (as UNETLoader), then ModelSamplingSD3(shift)."""
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    model = comfy.sd.load_diffusion_model(str(path or WEIGHTS))
    return ModelSamplingSD3().patch(model, float(shift))[0]


def instance_of(kind: str, seed: int, rooms: int) -> tasks.Instance:
    return tasks.task(kind, int(seed), int(rooms))


class CoSToyModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSToyModel", display_name="CoS Toy Model (tiny trained Wan I2V)", category="Chain-of-Steps/toy",
            description=("The shipped CoS-Toy model: ComfyUI's own Wan I2V architecture (30 blocks, dim 64, 4.8 MB) "
                         "trained on procedural maze, door and move-the-dot videos, 96×96, 17 frames. Runs on a CPU."),
            inputs=[io.Float.Input("shift", default=5.0, min=0.5, max=20.0, step=0.5,
                                   tooltip="ModelSamplingSD3 shift applied to the model.")],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, shift) -> io.NodeOutput:
        return io.NodeOutput(load_toy_model(shift))


class CoSToyVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSToyVAE", display_name="CoS Toy VAE (weight-free)", category="Chain-of-Steps/toy",
            description=("The CoS-Toy latent mapping: 8×8 cell colours and 4 frames folded into Wan2.1's 16 latent "
                         "channels (no weights, lossless on toy videos). Works with WanImageToVideo and VAE Decode."),
            inputs=[],
            outputs=[io.Vae.Output(display_name="vae")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(ToyVAE())


class CoSToyTask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSToyTask", display_name="CoS Toy Task", category="Chain-of-Steps/toy",
            description=("A procedural reasoning task: its first frame (feed WanImageToVideo at 96×96, length 17), "
                         "the reference solution video and the constant conditioning the toy model expects."),
            inputs=[
                io.Combo.Input("kind", options=list(tasks.KINDS), default="dot",
                               tooltip="The puzzle: dot (move the dot onto the marked corner), maze (draw the path "
                                       "from start to goal); TOY.md describes every kind."),
                io.Int.Input("seed", default=0, min=0, max=999_999,
                             tooltip="Task instance (seeds ≥ 1 000 000 are the training set)."),
                io.Int.Input("maze_rooms", default=3, min=2, max=5, tooltip="Maze size in rooms (maze only)."),
            ],
            outputs=[io.Image.Output(display_name="start_image"), io.Image.Output(display_name="solution"),
                     io.Conditioning.Output(display_name="conditioning")],
        )

    @classmethod
    def execute(cls, kind, seed, maze_rooms) -> io.NodeOutput:
        inst = instance_of(kind, seed, maze_rooms)
        video = torch.from_numpy(inst.pixels())
        return io.NodeOutput(video[:1].clone(), video, toy_conditioning())


class CoSToyScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSToyScore", display_name="CoS Toy Score", category="Chain-of-Steps/toy",
            description=("Scores a generated toy video's last frame (1 = solved) against the task instance; with a "
                         "batch of videos, the fraction solved. Warns in 'details' when the video does not start "
                         "from the task's first frame."),
            inputs=[
                io.Image.Input("images", tooltip="The decoded video (17 frames per sample; batches are split)."),
                io.Combo.Input("kind", options=list(tasks.KINDS), default="dot",
                               tooltip="The task the video should solve: the same as in CoS Toy Task."),
                io.Int.Input("seed", default=0, min=0, max=999_999,
                             tooltip="The task instance: the same seed as in CoS Toy Task."),
                io.Int.Input("maze_rooms", default=3, min=2, max=5,
                             tooltip="Maze size in rooms (maze only): the same as in CoS Toy Task."),
                io.Int.Input("frames", default=tasks.FRAMES, min=1, max=10000, advanced=True,
                             tooltip="Frames per video (17 for the toy); a batch of videos is split into this many."),
            ],
            outputs=[io.Float.Output(display_name="success"), io.String.Output(display_name="details")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, kind, seed, maze_rooms, frames=tasks.FRAMES) -> io.NodeOutput:
        inst = instance_of(kind, seed, maze_rooms)
        if images.shape[0] % int(frames):
            raise ValueError(f"images: {images.shape[0]} frames is not a whole number of {int(frames)}-frame videos "
                             "(frames: the video length, 17 for the toy)")
        video = images.float().cpu().numpy().reshape(-1, int(frames), *images.shape[1:])
        results = [tasks.score(inst, v) for v in video]
        for r, v in zip(results, video):
            r["start_cells_off"] = start_cells_off(inst, v)
        success = float(np.mean([r["success"] for r in results]))
        off = max(r["start_cells_off"] for r in results)
        task = {"kind": kind, "seed": int(seed)} | ({"maze_rooms": int(maze_rooms)} if kind == "maze" else {})
        summary = {**task, "success": success, "solved": int(sum(r["success"] for r in results)),
                   "videos": len(results)}
        if off > START_TOLERANCE:
            summary["warning"] = (f"the video's first frame differs from this task's start frame in {off} cells: "
                                  "set the same kind, seed and maze_rooms as in CoS Toy Task")
        line = f"{kind} seed {int(seed)}: {summary['solved']}/{len(results)} solved" + (
            f" (WARNING: {summary['warning']})" if "warning" in summary else "")
        return io.NodeOutput(success, json.dumps({**summary, "samples": results}),
                             ui={"text": (line,), "cos_toy_score": [summary]})


START_TOLERANCE = 3  # cells of frame 0 allowed to differ from the task's start frame before the score warns


def start_cells_off(inst: tasks.Instance, video: np.ndarray) -> int:
    """How many cells of a video's first frame differ (by more than 0.35 in a channel) from the task's start frame.

    The toy is an I2V model: its video starts from the task's first frame, so a large count means the score
    is reading a video made for another task (kind/seed not the same as in CoS Toy Task)."""
    cells = tasks.downsample(np.asarray(video[0], dtype=np.float32)[..., :3])
    return int((np.abs(cells - inst.first).max(axis=-1) > 0.35).sum())


TOY_NODES = [CoSToyModel, CoSToyVAE, CoSToyTask, CoSToyScore]
