"""Global step numbers across sampler stages.

ComfyUI's Wan2.2 template runs two KSamplerAdvanced stages whose step counters both start at 0;
hooks only see the σ of each model call. A :class:`StageClock` keeps the global schedule: a
stage that starts where the previous one stopped (its first σ equals the previous stage's last
σ > 0) continues the run; any other stage starts a new run (ARCHITECTURE §2: identify a step by
its σ, not by a call counter).
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def same_sigma(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


class StageClock:
    def __init__(self):
        self.schedule: list[float] = []
        self.stage = 0
        self.stage_start = 0
        self.stage_starts: list[int] = []

    @property
    def total_steps(self) -> int:
        return max(0, len(self.schedule) - 1)

    def begin(self, sigmas: Sequence[float]) -> tuple[int, bool]:
        """Register a stage's schedule (its σ values, last one included).

        Returns:
            (global step of the stage's first σ, whether this stage starts a new run).
        """
        values = [float(s) for s in sigmas]
        continues = bool(self.schedule and self.schedule[-1] > 0 and values
                         and same_sigma(self.schedule[-1], values[0]))
        if continues:
            self.stage_start = len(self.schedule) - 1
            self.schedule.extend(values[1:])
            self.stage += 1
            self.stage_starts.append(self.stage_start)
        else:
            self.schedule, self.stage, self.stage_start, self.stage_starts = values, 0, 0, [0]
        return self.stage_start, not continues

    def step_of(self, sigma: float) -> int | None:
        """Global step of a model call at ``sigma`` in the current stage, or None if σ is off the
        schedule (e.g. the midpoint evaluation of dpmpp_2s)."""
        for i in range(self.stage_start, len(self.schedule) - 1):
            if same_sigma(self.schedule[i], sigma):
                return i
        return None
