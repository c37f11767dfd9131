"""CoS Save Step Videos: one video per captured step, like the official tool's steps/step_NNN.mp4."""
from __future__ import annotations

import os
from fractions import Fraction

import folder_paths
from comfy_api.latest import InputImpl, Types, io, ui

from ..cos_core.files import atomic_write
from .decode import MODES, StepDecoder, select_steps
from .recorder import as_trace
from .trace_io import output_target
from .types import CosTrace


def new_run_folder(folder, name: str):
    """Create ``folder/name_NNNNN_`` with the first free counter (mkdir is atomic: no reuse)."""
    os.makedirs(folder, exist_ok=True)
    for counter in range(1, 100000):
        path = os.path.join(folder, f"{name}_{counter:05d}_")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder for {name} in {folder}")


class CoSSaveStepVideos(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSSaveStepVideos",
            display_name="CoS Save Step Videos",
            category="Chain-of-Steps/visualise",
            description="Writes the x̂0 of each chosen step as its own video (step_000.mp4, ...) in a new "
                        "folder of the output directory, decoding one step at a time.",
            inputs=[
                CosTrace.Input("trace", tooltip="From CoS Sampler, CoS Capture x̂0 or CoS Load Trace."),
                io.Combo.Input("mode", options=MODES, default="vae",
                               tooltip="vae: full decode (real frames); latent2rgb: fast 1/8-resolution colours."),
                io.String.Input("steps", default="all", tooltip="Which recorded steps to write."),
                io.Float.Input("fps", default=16.0, min=1.0, max=120.0, step=1.0,
                               tooltip="Frame rate of the videos (Wan2.2: 16)."),
                io.String.Input("filename_prefix", default="chain_of_steps/steps",
                                tooltip="Folder name inside the output folder; a counter keeps runs apart."),
                io.Vae.Input("vae", optional=True, tooltip="Needed for mode 'vae'."),
                io.Latent.Input("after", optional=True,
                                tooltip="Connect the sampler's LATENT when the trace comes from CoS Capture x̂0."),
            ],
            outputs=[io.String.Output(display_name="folder", tooltip="The run folder, relative to the output folder.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, trace, mode, steps, fps, filename_prefix, vae=None, after=None) -> io.NodeOutput:
        trace = as_trace(trace)
        decoder = StepDecoder(trace, mode, vae)
        chosen = select_steps(trace, steps)
        folder, name = output_target(filename_prefix)
        run = new_run_folder(folder, name)
        out_root = folder_paths.get_output_directory()
        results = []
        for step in chosen:
            frames = decoder.decode(trace[step].tensors["x0_hat"][0])
            frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 needs even sizes
            video = InputImpl.VideoFromComponents(Types.VideoComponents(images=frames, frame_rate=Fraction(fps)))
            path = os.path.join(run, f"step_{step:03d}.mp4")
            atomic_write(path, lambda tmp, v=video: v.save_to(tmp, format=Types.VideoContainer.MP4,
                                                               codec=Types.VideoCodec.H264))
            results.append(ui.SavedResult(os.path.basename(path), os.path.relpath(run, out_root), io.FolderType.output))
        rel = os.path.relpath(run, out_root)
        return io.NodeOutput(rel, ui=ui.PreviewVideo(results))
