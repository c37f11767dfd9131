"""Moving many small probe results off the device in few copies."""
from __future__ import annotations

import torch


def to_cpu_grouped(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors on the CPU, copied with one device→host transfer per dtype instead of one each.

    A probe of 40 layers leaves 40–120 small device tensors per step (energy float32, PCA float16,
    raw states bf16); copying them one by one costs one synchronisation each. Here the tensors of a
    dtype are flattened into one buffer on the device, copied once, and split back into tensors of
    their shapes (each with its own storage) on the host. CPU tensors are returned as they are.

    Args:
        tensors: any shapes and dtypes, on one device or on the CPU.

    Returns:
        CPU tensors with the same shapes, dtypes and values, in the same order.
    """
    out: list[torch.Tensor | None] = [t if t.device.type == "cpu" else None for t in tensors]
    groups: dict[torch.dtype, list[int]] = {}
    for i, t in enumerate(tensors):
        if out[i] is None:
            groups.setdefault(t.dtype, []).append(i)
    for members in groups.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in members]).cpu()
        for i, piece in zip(members, flat.split([tensors[i].numel() for i in members])):
            out[i] = piece.view(tensors[i].shape).clone()  # own storage: safetensors refuses shared tensors
    return out
