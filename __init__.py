"""Chain-of-Steps for ComfyUI: see how video diffusion models reason along the denoising steps.

ComfyUI loads this file as the pack's entry point. It exports the V3 entry point and the web
folder, nothing else (ARCHITECTURE §1).
"""
from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
