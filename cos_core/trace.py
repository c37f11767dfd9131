"""The trace: what a sampling run recorded, step by step.

A trace holds one :class:`StepRecord` per recorded denoising step, identified by its σ and its
global step index (0 = noisiest, even across Wan2.2's two sampler stages), plus the stage and the
expert that evaluated it, and small tensors (x̂0 latents, energy maps, ...). It is saved as one
safetensors file whose header carries the JSON metadata, written atomically; loading reads only
safetensors and bounded JSON (no pickle).
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .files import atomic_write

FORMAT = "cos-trace/1"
MAX_HEADER_BYTES = 16 * 1024 * 1024


class TraceFormatError(ValueError):
    """A trace file that is not a valid Chain-of-Steps trace."""


@dataclass
class StepRecord:
    """What was recorded at one denoising step.

    Attributes:
        step: global step index (0 = noisiest).
        sigma: σ of the step (the noise level of the model input), float.
        stage: index of the sampler call that ran it (0 for the first KSamplerAdvanced).
        expert: "high", "low" or "single".
        tensors: name → CPU tensor, e.g. ``"x0_hat"`` of shape (B, C, F, H, W) in latent space.
    """

    step: int
    sigma: float
    stage: int = 0
    expert: str = "single"
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        return {"step": self.step, "sigma": self.sigma, "stage": self.stage, "expert": self.expert,
                "tensors": sorted(self.tensors)}


class Trace:
    """Records keyed by global step, plus run metadata (model, schedule, seed, ...).

    ``meta`` is a JSON-serialisable dict; conventional keys: ``sigmas`` (full schedule, S+1
    floats), ``total_steps`` (S), ``latent_format`` (e.g. "Wan21"), ``switch_step``.
    """

    def __init__(self, meta: dict[str, Any] | None = None):
        self.meta: dict[str, Any] = dict(meta or {})
        self._records: dict[int, StepRecord] = {}

    def add(self, record: StepRecord) -> None:
        """Insert or replace the record of ``record.step``."""
        self._records[record.step] = record

    def put(self, step: int, sigma: float, stage: int, expert: str, name: str, tensor: torch.Tensor) -> None:
        """Store one tensor at ``step``, creating the record if needed (a later put replaces the tensor)."""
        record = self._records.get(step)
        if record is None:
            record = self._records[step] = StepRecord(step, sigma, stage, expert)
        record.tensors[name] = tensor

    def clear(self) -> None:
        """Forget all records and metadata (a new run starts)."""
        self._records.clear()
        self.meta.clear()

    def filtered(self, steps) -> "Trace":
        """A trace with the same metadata and only the records of ``steps``."""
        wanted = set(steps)
        out = Trace(self.meta)
        for record in self.records():
            if record.step in wanted:
                out.add(record)
        return out

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, step: int) -> bool:
        return step in self._records

    def __getitem__(self, step: int) -> StepRecord:
        return self._records[step]

    @property
    def steps(self) -> list[int]:
        return sorted(self._records)

    def records(self) -> list[StepRecord]:
        return [self._records[s] for s in self.steps]

    def stack(self, name: str) -> tuple[list[int], torch.Tensor]:
        """Steps that hold tensor ``name`` and those tensors stacked: (steps, (S', *shape)).

        Raises:
            KeyError: when no record holds ``name``.
        """
        steps = [s for s in self.steps if name in self._records[s].tensors]
        if not steps:
            raise KeyError(f"the trace holds no '{name}' tensors (it has: {self.tensor_names() or 'none'})")
        return steps, torch.stack([self._records[s].tensors[name] for s in steps])

    def tensor_names(self) -> list[str]:
        return sorted({n for r in self._records.values() for n in r.tensors})

    def copy(self) -> "Trace":
        """A snapshot: new containers, same (immutable by convention) tensors."""
        out = Trace(json.loads(json.dumps(self.meta)))
        for r in self.records():
            out.add(StepRecord(r.step, r.sigma, r.stage, r.expert, dict(r.tensors)))
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for r in self._records.values() for t in r.tensors.values())

    def __repr__(self) -> str:
        return f"Trace({len(self)} steps, tensors={self.tensor_names()}, {self.nbytes() / 2**20:.1f} MiB)"

    # ---- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the trace to ``path`` (a ``.safetensors`` file) atomically.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is False.
            OSError: on write failure; no partial file is left.
        """
        tensors = {f"{r.step:05d}/{name}": t.detach().to("cpu").contiguous()
                   for r in self.records() for name, t in r.tensors.items()}
        header = {"format": FORMAT, "meta": self.meta, "records": [r.meta() for r in self.records()]}
        metadata = {"cos_trace": json.dumps(header)}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Trace":
        """Read a trace written by :meth:`save`.

        Raises:
            TraceFormatError: not a safetensors file, header too large, not a CoS trace, or
                records that do not match the stored tensors.
            FileNotFoundError: if ``path`` does not exist.
        """
        path = Path(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
        if len(head) < 8:
            raise TraceFormatError(f"{path.name}: not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES or header_len > path.stat().st_size:
            raise TraceFormatError(f"{path.name}: header of {header_len} bytes is invalid or over the "
                                   f"{MAX_HEADER_BYTES} byte limit")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                raw = (f.metadata() or {}).get("cos_trace")
                if raw is None:
                    raise TraceFormatError(f"{path.name}: a safetensors file, but not a Chain-of-Steps trace")
                header = json.loads(raw)
                if not isinstance(header, dict) or header.get("format") != FORMAT:
                    raise TraceFormatError(f"{path.name}: unknown trace format {header.get('format')!r}"
                                           if isinstance(header, dict) else f"{path.name}: bad header")
                trace = cls(header.get("meta") or {})
                keys = set(f.keys())
                for meta in header.get("records", []):
                    names = meta.get("tensors", [])
                    wanted = {f"{int(meta['step']):05d}/{n}" for n in names}
                    if not wanted <= keys:
                        raise TraceFormatError(f"{path.name}: record {meta.get('step')} names missing tensors")
                    trace.add(StepRecord(int(meta["step"]), float(meta["sigma"]), int(meta.get("stage", 0)),
                                         str(meta.get("expert", "single")),
                                         {n: f.get_tensor(f"{int(meta['step']):05d}/{n}") for n in names}))
                return trace
        except TraceFormatError:
            raise
        except (KeyError, TypeError, ValueError, json.JSONDecodeError, AttributeError, RecursionError,
                OverflowError) as err:
            raise TraceFormatError(f"{path.name}: corrupted trace ({err})") from err
        except Exception as err:  # safetensors' SafetensorError, torch's RuntimeError on impossible shapes
            if type(err).__name__ in ("SafetensorError", "RuntimeError"):
                raise TraceFormatError(f"{path.name}: not a valid trace file ({err})") from err
            raise
