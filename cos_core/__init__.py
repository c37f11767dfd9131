"""The science of the Chain-of-Steps pack, free of ComfyUI.

Every module here works on plain torch tensors, numpy arrays and PIL images, so it can be tested
on a CPU in milliseconds. One concept per module, named as in the paper "Demystifying Video
Reasoning" (arXiv 2603.16870): step specs, x̂0, the trace, latent→RGB, rendering.
"""
