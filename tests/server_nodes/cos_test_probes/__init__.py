"""Test-only nodes for the tier-2 fault and load tests. NOT part of the pack, never shipped.

Loaded only into the ComfyUI servers the tier-2 tests start (``tests/tier2_support.py`` links
this folder into the server's temporary ``custom_nodes``), so a test can look inside the server
process through ordinary prompts:

- ``CoSTestInspectModel`` reports what is attached to a MODEL (patches, wrappers, callbacks,
  forward hooks, a weight checksum), how many of the pack's objects are alive and the threads;
  run it on the *shared* MODEL (the cached UNETLoader → ModelSamplingSD3 output) after a fault.
- ``CoSTestFault`` injects or removes a fault: "disk full on trace save" makes the trace writer
  of the pack write a partial file and raise ``OSError(ENOSPC)``, as a full disk would.
"""
from __future__ import annotations

import errno
import gc
import json
import os
import sys
import threading
from collections import Counter

from comfy_api.latest import ComfyExtension, io

PACK_CLASSES = ("Trace", "TraceHandle", "StepRecord", "ProbeState", "EnsembleState", "SwapState", "SegmentedSampler",
                "LivePreview", "LatestOnlyWorker", "X0Recorder", "MemberNoise", "Run", "Stop")
FAULTS = ["none", "disk full on trace save", "disk full on fsync in the output folder"]
_saved: dict[str, object] = {}
_real_fsync = os.fsync


def _pack_modules(suffix: str):
    """The pack's loaded modules whose dotted name ends with ``suffix`` (ComfyUI names the pack's
    package after its folder, so the prefix is not known here)."""
    return [m for name, m in list(sys.modules.items())
            if m is not None and (name == suffix or name.endswith("." + suffix))]


def _pack_object_counts() -> dict[str, int]:
    counts: Counter = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        if cls.__name__ in PACK_CLASSES and ("cos_core" in cls.__module__ or ".nodes." in cls.__module__):
            counts[cls.__name__] += 1
    return dict(counts)


def _pack_threads(wait: float = 2.0) -> list[str]:
    """The pack's threads still alive (its preview workers are named "cos-..."), after giving the
    ones that are closing ``wait`` seconds to end."""
    threads = [t for t in threading.enumerate() if t.name.startswith("cos-")]
    for t in threads:
        t.join(timeout=wait / max(1, len(threads)))
    return sorted(t.name for t in threads if t.is_alive())


def _keys(value) -> list[str]:
    if isinstance(value, dict):
        return sorted(str(k) for k, v in value.items() if v)
    return []


class CoSTestInspectModel(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSTestInspectModel",
            display_name="CoS Test: inspect MODEL (test only)",
            category="Chain-of-Steps/testing",
            inputs=[io.Model.Input("model")],
            outputs=[io.String.Output()],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, model=None):
        return float("nan")  # always run

    @classmethod
    def execute(cls, model) -> io.NodeOutput:
        gc.collect()
        options = model.model_options.get("transformer_options", {})
        diffusion = model.model.diffusion_model
        report = {
            "patcher_id": id(model),
            "model_id": id(model.model),
            "patches_replace": {k: sorted(str(key) for key in v) for k, v in options.get("patches_replace", {}).items()
                                if v},
            "patches": _keys(options.get("patches", {})),
            "option_wrappers": _keys(options.get("wrappers", {})),
            "option_callbacks": _keys(options.get("callbacks", {})),
            "wrappers": sorted(f"{t}:{k}" for t, d in model.wrappers.items() for k, v in d.items() if v),
            "callbacks": sorted(f"{t}:{k}" for t, d in model.callbacks.items() for k, v in d.items() if v),
            "object_patches": sorted(model.object_patches),
            "weight_patches": len(model.patches),
            "forward_hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in diffusion.modules()),
            "checksum": float(sum(p.detach().double().sum() for p in diffusion.parameters())),
            "pack_objects": _pack_object_counts(),
            "threads": sorted(t.name for t in threading.enumerate()),
            "pack_threads": _pack_threads(),
        }
        text = json.dumps(report)
        return io.NodeOutput(text, ui={"cos_inspect": [report]})


def _fsync_full_in_output(fd):
    """os.fsync that fails with ENOSPC for files in ComfyUI's output folder (every pack writer
    fsyncs before it moves a file into place), and works elsewhere."""
    import folder_paths

    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    if target.startswith(os.path.realpath(folder_paths.get_output_directory()) + os.sep):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)
    return _real_fsync(fd)


def _disk_full_save_file(tensors, filename, metadata=None):
    with open(filename, "wb") as fh:  # half a file lands, then the disk is full
        fh.write(b"\0" * 4096)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


class CoSTestFault(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSTestFault",
            display_name="CoS Test: inject a fault (test only)",
            category="Chain-of-Steps/testing",
            inputs=[io.Combo.Input("fault", options=FAULTS, default="none")],
            outputs=[io.String.Output()],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, fault=None):
        return float("nan")

    @classmethod
    def execute(cls, fault) -> io.NodeOutput:
        modules = [m for m in _pack_modules("cos_core.trace") if hasattr(m, "Trace") and hasattr(m, "save_file")]
        if not modules:
            raise RuntimeError("the pack's cos_core.trace module is not loaded")
        for m in modules:  # put everything back first
            if m.__name__ in _saved:
                m.save_file = _saved.pop(m.__name__)
        os.fsync = _real_fsync
        if fault == FAULTS[1]:
            for m in modules:
                _saved[m.__name__] = m.save_file
                m.save_file = _disk_full_save_file
        elif fault == FAULTS[2]:
            os.fsync = _fsync_full_in_output
        text = f"{fault}: {len(modules)} module(s)"
        return io.NodeOutput(text, ui={"text": [text]})


class TestProbes(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [CoSTestInspectModel, CoSTestFault]


async def comfy_entrypoint() -> TestProbes:
    return TestProbes()


__all__ = ["comfy_entrypoint"]
