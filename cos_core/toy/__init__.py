"""CoS-Toy: procedural reasoning videos, their automatic scorers and a weight-free latent mapping.

Pure numpy/torch, no ComfyUI: the trainer (``tools/toy``), the toy nodes (``nodes/toy.py``) and the
tests share this code.
"""
