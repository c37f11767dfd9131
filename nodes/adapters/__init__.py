"""Architecture adapters: everything that depends on the model family lives here.

One module per family (``wan.py``, ``ltx.py``), each an :class:`~.base.Adapter`.
:func:`adapter_for` picks the one that handles a MODEL or raises a clear error.
"""
from .base import (CFG_HALF_NAMES, Adapter, LatentInfo, call_sigma, cfg_halves, latent_out, nest, packed,
                   require_flow_model, require_video_latent, split_streams)
from .ltx import LtxAdapter
from .wan import WanAdapter

ADAPTERS: list[Adapter] = [WanAdapter(), LtxAdapter()]


def adapter_for(model, input_name: str = "model") -> Adapter:
    """The adapter for a ComfyUI MODEL (ModelPatcher).

    Raises:
        ValueError: naming ``input_name`` and the supported families when none matches.
    """
    for adapter in ADAPTERS:
        if adapter.matches(model):
            return adapter
    kind = type(getattr(getattr(model, "model", None), "diffusion_model", None)).__name__
    names = ", ".join(a.family for a in ADAPTERS)
    raise ValueError(f"{input_name}: a {kind} model is not supported; Chain-of-Steps handles {names} video models")


def check_expert_pair(model, model_low, input_name: str = "model_low", high_name: str = "model_high") -> Adapter:
    """The adapter of ``model``, after checking that a second (low-noise) expert makes sense.

    Wan2.2 A14B's two-expert switch needs two Wan models; LTX-2 runs one model.

    Raises:
        ValueError: naming ``input_name`` when ``model_low`` is given for a family without experts
            or is another family than ``model``.
    """
    adapter = adapter_for(model, high_name)
    if model_low is None:
        return adapter
    low = adapter_for(model_low, input_name)
    if not adapter.has_experts() or not low.has_experts():
        raise ValueError(f"{input_name}: the high-/low-noise expert switch is a Wan2.2 A14B option; "
                         f"{high_name} is {adapter.family} and {input_name} is {low.family}. LTX-2 runs one "
                         f"model: leave {input_name} empty")
    if low is not adapter:
        raise ValueError(f"{input_name}: a {low.family} model cannot be the low-noise expert of a "
                         f"{adapter.family} model")
    return adapter


__all__ = ["CFG_HALF_NAMES", "Adapter", "LatentInfo", "adapter_for", "call_sigma", "check_expert_pair", "cfg_halves",
           "latent_out", "nest", "packed", "require_flow_model", "require_video_latent", "split_streams", "ADAPTERS"]
