"""Architecture adapters: everything that depends on the model family lives here.

One module per family (``wan.py``; ``ltx.py`` follows), each an :class:`~.base.Adapter`.
:func:`adapter_for` picks the one that handles a MODEL or raises a clear error.
"""
from .base import Adapter, LatentInfo, cfg_halves, require_flow_model, require_video_latent
from .wan import WanAdapter

ADAPTERS: list[Adapter] = [WanAdapter()]


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


__all__ = ["Adapter", "LatentInfo", "adapter_for", "cfg_halves", "require_flow_model", "require_video_latent",
           "ADAPTERS"]
