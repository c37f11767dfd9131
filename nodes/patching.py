"""Patched clones of a MODEL: hooks after DiT blocks, and an OUTER_SAMPLE wrapper.

Every patch node of the pack (CoS Capture x̂0, CoS Layer Probe, CoS Seed Ensemble, CoS Layer Swap
Sweep) works on a ``clone()`` of the user's MODEL, so the input MODEL is never changed. ComfyUI keeps
one ``patches_replace["dit"]`` function per block; a hook installed here *chains* with a function
already set on that block by an earlier patch node (it runs the earlier one, then the hook on its
output), so two probes on the same blocks, or a probe after an ensemble, both see every block.
"""
from __future__ import annotations

from collections.abc import Callable

import comfy.patcher_extension

BlockHook = Callable[[dict, dict], dict]  # (block output {"img": ...}, transformer_options) -> block output


def _chained(hook: BlockHook, inner):
    def replace(args, extra):
        out = inner(args, extra) if inner is not None else extra["original_block"](args)
        return hook(out, args["transformer_options"])

    return replace


def patched_clone(model, wrapper_key: str, outer_sample, adapter=None, hooks: dict[int, BlockHook] | None = None):
    """A clone of ``model`` with ``hooks`` after its blocks and ``outer_sample`` around sampling.

    Args:
        model: ComfyUI ModelPatcher; left untouched.
        wrapper_key: key of the OUTER_SAMPLE wrapper (several wrappers under one key all run).
        outer_sample: ``fn(executor, noise, latent_image, sampler, sigmas, *args, **kwargs)``.
        adapter: the architecture adapter (block keys, ``prepare``); needed when ``hooks`` is given.
        hooks: ``{block index: hook(out, transformer_options) -> out}``, run after the block (and after any
            block replace an earlier patch node set on it).

    Returns:
        The patched clone.
    """
    clone = model.clone()
    if hooks:
        adapter.prepare(clone)
        existing = clone.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        for layer, hook in hooks.items():
            key = adapter.block_key(layer)
            clone.set_model_patch_replace(_chained(hook, existing.get(key)), "dit", *key)
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, wrapper_key, outer_sample)
    return clone
