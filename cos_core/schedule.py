"""Noise schedules and the Wan2.2 A14B expert split.

Wan2.2 A14B runs a high-noise expert while σ ≥ boundary and a low-noise expert after
(official Wan: ``boundary = 0.900`` for I2V, ``0.875`` for T2V; the check is t ≥ boundary·1000
with t = 1000·σ). Steps are global: 0 is the noisiest, S−1 the last (ARCHITECTURE §2).
"""
from __future__ import annotations

from collections.abc import Sequence

WAN22_I2V_BOUNDARY = 0.900
WAN22_T2V_BOUNDARY = 0.875


def switch_step(sigmas: Sequence[float], boundary: float) -> int:
    """Global step at which the low-noise expert takes over.

    Args:
        sigmas: the full schedule σ_0 > σ_1 > … > σ_S (S+1 values, last usually 0), floats.
        boundary: σ boundary in (0, 1).

    Returns:
        The first step i in [0, S] with σ_i < boundary; S when every step is high-noise.

    Raises:
        ValueError: if boundary is not in (0, 1) or the schedule has fewer than 2 values.
    """
    if not 0.0 < boundary < 1.0:
        raise ValueError(f"boundary must lie in (0, 1) (official Wan2.2: 0.900 I2V, 0.875 T2V), got {boundary}")
    if len(sigmas) < 2:
        raise ValueError("a schedule needs at least two sigmas")
    steps = len(sigmas) - 1
    for i in range(steps):
        if float(sigmas[i]) < boundary:
            return i
    return steps


def expert_of_step(step: int, switch: int, two_experts: bool) -> str:
    """Name of the expert that evaluates ``step``: "high", "low" or "single"."""
    if not two_experts:
        return "single"
    return "high" if step < switch else "low"


def plan_stages(total_steps: int, switch: int, two_experts: bool) -> list[tuple[str, int, int]]:
    """Split S global steps into sampler stages, one per expert, as the two-KSamplerAdvanced graph does.

    Returns:
        ``[(expert, start_step, end_step), ...]`` with end exclusive; stages with no steps are left
        out, so a switch at 0 or at S gives one stage.

    Raises:
        ValueError: if ``switch`` is outside [0, S] or S < 1.
    """
    if total_steps < 1:
        raise ValueError(f"steps must be at least 1, got {total_steps}")
    if not two_experts:
        return [("single", 0, total_steps)]
    if not 0 <= switch <= total_steps:
        raise ValueError(f"switch step {switch} is outside 0..{total_steps}")
    stages = [("high", 0, switch), ("low", switch, total_steps)]
    return [s for s in stages if s[2] > s[1]]
