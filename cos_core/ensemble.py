"""The training-free multi-seed ensemble (paper Sec. 6, App. A, Tab. 1-2).

K runs with different seeds sample together as one batch. At the ensemble steps (default the
first, s = 0) and in the layer window (default 20-29), each member's block output U⁽ˡ⁾ is pulled
towards the members' mean, separately inside each CFG half:

    U_k⁽ˡ⁾ ← (1 − α)·U_k⁽ˡ⁾ + α·mean_j U_j⁽ˡ⁾          (α = 1: every member gets the mean)

The paper says "a spatial-temporal averaging of the latents across layers 20 to 29". Read as
above ("per layer", the default), the members leave layer 29 identical. The other reading,
"window mean", averages once, at the window's last layer, over the members *and* the window's
layer outputs: U_k⁽ˡᵉⁿᵈ⁾ ← (1 − α)·U_k⁽ˡᵉⁿᵈ⁾ + α·mean_{j, l∈window} U_j⁽ˡ⁾.
"""
from __future__ import annotations

import torch

MERGES = ("per layer", "window mean")


def pull_to_mean(members: torch.Tensor, alpha: float, target: torch.Tensor | None = None) -> torch.Tensor:
    """(1 − α)·members + α·mean over members (dim 0), or towards ``target`` when given.

    Args:
        members: (K, N, D) block outputs of the K members of one CFG half.
        alpha: α in [0, 1].
        target: optional (1, N, D) or (N, D) mean to pull towards (the window mean).

    Returns:
        A new tensor (K, N, D) with the dtype of ``members``; the mean is accumulated in float32.

    Raises:
        ValueError: if α is outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: α = {alpha} must lie in [0, 1]")
    if target is None:
        mean = members.float().mean(dim=0, keepdim=True)
    else:
        mean = target.float().reshape(1, *members.shape[1:])
    if alpha == 1.0:
        return mean.to(members.dtype).expand_as(members).clone()
    return ((1.0 - alpha) * members.float() + alpha * mean).to(members.dtype)


def member_seeds(base_seed: int, count: int, seeds_text: str = "") -> list[int]:
    """The K seeds: listed in ``seeds_text`` ("1, 2, 3") or base_seed, base_seed+1, ….

    Raises:
        ValueError: naming ``seeds`` when the list is not K integers ≥ 0, or K < 1.
    """
    if count < 1:
        raise ValueError(f"members: K = {count} must be at least 1")
    text = (seeds_text or "").replace(",", " ").split()
    if not text:
        return [int(base_seed) + k for k in range(count)]
    try:
        seeds = [int(t) for t in text]
    except ValueError as err:
        raise ValueError(f"seeds: '{seeds_text}' is not a list of integers") from err
    if len(seeds) != count or any(s < 0 for s in seeds):
        raise ValueError(f"seeds: need {count} non-negative seeds (one per member), got {seeds_text!r}")
    return seeds


def primary_cost(members: int, ensemble_steps: int, total_steps: int) -> float:
    """Cost of ``continue = primary`` relative to one baseline run: 1 + (K − 1)·|steps| / S."""
    return 1.0 + (members - 1) * ensemble_steps / total_steps
