"""CoS Save Trace / CoS Load Trace: traces as safetensors + JSON in ComfyUI's output folder."""
from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from ..cos_core.files import safe_subpath, write_new
from ..cos_core.trace import Trace
from .recorder import as_trace
from .types import CosTrace


def output_target(filename_prefix: str, input_name: str = "filename_prefix"):
    """(folder, name) inside ComfyUI's output folder for a user prefix like ``"cos/run"``."""
    try:
        path = safe_subpath(folder_paths.get_output_directory(), filename_prefix)
    except ValueError as err:
        raise ValueError(f"{input_name}: {err}") from err
    return path.parent, path.name


class CoSSaveTrace(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSSaveTrace",
            display_name="CoS Save Trace",
            category="Chain-of-Steps/trace",
            description="Writes a trace (tensors + JSON metadata) as one .safetensors file in the output "
                        "folder, atomically, never overwriting an existing file.",
            inputs=[
                CosTrace.Input("trace", tooltip="The trace to save."),
                io.String.Input("filename_prefix", default="chain_of_steps/trace",
                                tooltip="Name inside ComfyUI's output folder; '/' makes subfolders. A counter "
                                "is added so nothing is overwritten."),
                io.Latent.Input("after", optional=True,
                                tooltip="Connect the sampler's LATENT when the trace comes from CoS Capture x̂0."),
            ],
            outputs=[io.String.Output(display_name="path", tooltip="The saved file, relative to the output folder.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, trace, filename_prefix, after=None) -> io.NodeOutput:
        trace = as_trace(trace)
        folder, name = output_target(filename_prefix)
        path = write_new(folder, name, ".safetensors", lambda tmp: trace.save(tmp, overwrite=True))
        rel = os.path.relpath(path, folder_paths.get_output_directory())
        entry = {"filename": path.name, "subfolder": os.path.dirname(rel), "type": "output"}
        return io.NodeOutput(rel, ui={"text": (f"saved {rel}: {trace!r}",), "cos_trace": [entry]})


class CoSLoadTrace(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSLoadTrace",
            display_name="CoS Load Trace",
            category="Chain-of-Steps/trace",
            description="Reads a trace saved by CoS Save Trace (safetensors and bounded JSON only; no pickle).",
            inputs=[io.String.Input("path", default="chain_of_steps/trace_00001_.safetensors",
                                    tooltip="File inside ComfyUI's output folder.")],
            outputs=[CosTrace.Output(display_name="trace")],
        )

    @classmethod
    def fingerprint_inputs(cls, path):
        try:
            full = safe_subpath(folder_paths.get_output_directory(), path)
            return f"{path}:{full.stat().st_mtime_ns}"
        except (OSError, ValueError):
            return float("nan")

    @classmethod
    def execute(cls, path) -> io.NodeOutput:
        try:
            full = safe_subpath(folder_paths.get_output_directory(), path)
        except ValueError as err:
            raise ValueError(f"path: {err}") from err
        if not full.is_file():
            raise ValueError(f"path: no trace file '{path}' in the output folder")
        return io.NodeOutput(Trace.load(full))
