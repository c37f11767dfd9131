"""Tier 0: grouped device→host copies of probe results (cos_core/transfer.py)."""
from __future__ import annotations

import pytest
import torch

from cos_core.transfer import to_cpu_grouped


def mixed(device):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 4, 5, generator=gen).to(device),
            torch.rand(2, 3, 4, 5, 3, generator=gen).to(torch.float16).to(device),
            torch.randn(1, 7, generator=gen).to(torch.bfloat16).to(device),
            torch.randn(3, generator=gen).to(device),
            torch.zeros(0, 4, device=device)]


def test_cpu_tensors_come_back_unchanged():
    tensors = mixed("cpu")
    assert all(a is b for a, b in zip(to_cpu_grouped(tensors), tensors))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_device_tensors_come_back_equal_in_order():
    tensors = mixed("cuda")
    back = to_cpu_grouped(tensors)
    for a, b in zip(back, tensors):
        assert a.device.type == "cpu" and a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b.cpu())


def test_device_path_with_the_meta_device_keeps_shapes_and_order(monkeypatch):
    """On a CPU-only machine: tensors on the meta device take the grouped path (cat, one .cpu() per dtype)."""
    copies = []
    real_cpu = torch.Tensor.cpu

    def counting_cpu(self, *args, **kwargs):
        copies.append(self.dtype)
        return torch.zeros(self.shape, dtype=self.dtype) if self.device.type == "meta" else real_cpu(self)

    monkeypatch.setattr(torch.Tensor, "cpu", counting_cpu)
    tensors = [torch.empty(2, 3, device="meta"), torch.empty(4, dtype=torch.float16, device="meta"),
               torch.empty(5, 1, device="meta"), torch.ones(2)]
    back = to_cpu_grouped(tensors)
    assert [tuple(t.shape) for t in back] == [(2, 3), (4,), (5, 1), (2,)]
    assert [t.dtype for t in back] == [torch.float32, torch.float16, torch.float32, torch.float32]
    assert sorted(copies, key=str) == sorted([torch.float32, torch.float16], key=str)  # one copy per dtype
    assert back[3] is tensors[3]
    storages = {t.untyped_storage().data_ptr() for t in back if t.numel()}
    assert len(storages) == 4  # no shared storage: safetensors' save_file refuses shared tensors
