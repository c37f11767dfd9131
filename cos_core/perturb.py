"""Noise injection (paper Sec. 3.2, Fig. 3a): break the trajectory at a step or at a frame.

- **Noise at step s**: x_{s, all frames} ← N(0, I): the latent entering step s is replaced.
- **Noise at frame f**: x_{all steps, f} ← N(0, I): latent frame f is replaced before every step.

With a strength λ < 1 the latent is blended instead, x ← (1 − λ)·x + λ·ε. The noise is seeded
by a mix of (seed, step), so a run is reproducible, each step of a frame injection gets fresh
noise, and the injected noise is never the sampler's own initial noise drawn again.
Latents are in model space, (B, C, F, H, W); latent frame f covers the VAE's temporal stride of
pixel frames (Wan: 4; frame 0 is pixel frame 0 alone).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("step", "frame")


@dataclass(frozen=True)
class NoiseInjection:
    """A perturbation of the sampling trajectory.

    Attributes:
        mode: "step" or "frame".
        index: the global step s (mode "step") or the latent frame f (mode "frame").
        strength: λ in [0, 1]; 1 replaces, smaller values blend.
        seed: seed of the injected noise.
    """

    mode: str
    index: int
    strength: float = 1.0
    seed: int = 0

    def validate(self, total_steps: int, latent_frames: int) -> None:
        """Raise ValueError naming the input when the injection does not fit the run."""
        if self.mode not in MODES:
            raise ValueError(f"mode: '{self.mode}' is not one of {list(MODES)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength: λ = {self.strength} must lie in [0, 1]")
        limit = total_steps if self.mode == "step" else latent_frames
        what = "step" if self.mode == "step" else "latent frame"
        if not 0 <= self.index < limit:
            raise ValueError(f"index: {what} {self.index} is outside 0..{limit - 1}")

    def touches(self, step: int) -> bool:
        """Whether the latent entering global ``step`` is perturbed."""
        return self.mode == "frame" or step == self.index

    def noise(self, like: torch.Tensor, step: int) -> torch.Tensor:
        """ε for ``step``: float32 N(0, I) drawn on the CPU from a stream mixed from (seed, step), so it
        never coincides with the sampler's own seed streams (torch.manual_seed(seed))."""
        mixed = (int(self.seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) % 2**63
        gen = torch.Generator(device="cpu").manual_seed(mixed)
        return torch.randn(like.shape, generator=gen, dtype=torch.float32).to(like.device, like.dtype)

    def apply(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """The perturbed latent entering ``step`` (a new tensor; ``x`` is not modified).

        Args:
            x: (B, C, F, H, W) model-space latent.
        """
        if not self.touches(step) or self.strength == 0.0:
            return x
        eps = self.noise(x, step)
        if self.mode == "frame":
            mask = torch.zeros(x.shape[2], dtype=x.dtype, device=x.device)
            mask[self.index] = 1.0
            lam = self.strength * mask.view(1, 1, -1, *([1] * (x.ndim - 3)))
        else:
            lam = self.strength
        return (1 - lam) * x + lam * eps

    def segments(self, start: int, end: int) -> list[tuple[int, int]]:
        """Split global steps [start, end) into sampler runs so every perturbed step starts a run.

        Step mode gives at most two runs; frame mode one run per step. Single-step samplers (euler,
        heun, ...) give exactly the unsplit trajectory; multistep samplers restart their history at
        each split (documented in the README).
        """
        cuts = sorted({start, end} | {s for s in range(start, end) if self.touches(s) and self.strength > 0})
        return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]

    def describe(self) -> str:
        where = f"step {self.index}" if self.mode == "step" else f"latent frame {self.index}"
        return f"noise at {where}, λ={self.strength:g}, seed {self.seed}"
