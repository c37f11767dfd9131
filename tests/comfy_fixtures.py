"""Fixtures for tiers 1 and 2: a ComfyUI checkout named by COMFYUI_PATH, tiny checkpoints, the pack.

Everything here skips with a one-line reason when COMFYUI_PATH is unset, so tier 0 runs anywhere.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_MODULE = "chain_of_steps_pack"
SKIP_REASON = "COMFYUI_PATH is not set: tier-1/2 tests need a ComfyUI checkout (README, 'Tests')"


def comfy_path() -> Path | None:
    value = os.environ.get("COMFYUI_PATH")
    return Path(value).resolve() if value else None


def _import_comfy():
    root = comfy_path()
    if root is None:
        pytest.skip(SKIP_REASON)
    if not (root / "comfy" / "sd.py").is_file():
        pytest.skip(f"COMFYUI_PATH={root} is not a ComfyUI checkout (no comfy/sd.py)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    mod = sys.modules.get("nodes")
    if mod is not None and not str(getattr(mod, "__file__", "")).startswith(str(root)):
        del sys.modules["nodes"]
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_management  # noqa: F401  (device set-up honours --cpu)
    return root


def load_pack():
    """Import the pack as ComfyUI does: from its ``__init__.py``, relative imports inside."""
    if PACK_MODULE in sys.modules:
        return sys.modules[PACK_MODULE]
    spec = importlib.util.spec_from_file_location(PACK_MODULE, REPO_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def comfy_root():
    return _import_comfy()


@pytest.fixture(scope="session")
def pack(comfy_root):
    return load_pack()


@pytest.fixture(scope="session")
def tiny_dir(comfy_root, tmp_path_factory):
    from tools.tiny import write_tiny_models

    models = tmp_path_factory.mktemp("models")
    write_tiny_models(models)
    return models


@pytest.fixture(scope="session")
def tiny(comfy_root, tiny_dir):
    """Loaded tiny models: Wan2.2 I2V high/low experts (shift 5, as the template), Wan2.1 T2V, VAE."""
    import comfy.sd
    import comfy.utils
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    from tools.tiny import TINY_FILES, TINY_T2V

    def unet(name):
        model = comfy.sd.load_diffusion_model(str(tiny_dir / "diffusion_models" / name))
        return ModelSamplingSD3().patch(model, 5.0)[0]

    return types.SimpleNamespace(
        high=unet(TINY_FILES["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"]),
        low=unet(TINY_FILES["wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]),
        t2v=unet(TINY_T2V),
        vae=comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tiny_dir / "vae" / TINY_FILES["wan_2.1_vae.safetensors"]))),
    )


def text_conditioning(seed: int, tokens: int = 8):
    """A stand-in for umt5 text conditioning: [[(1, tokens, 4096) tensor, {}]] (COMFYUI_NOTES §8.1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, 4096, generator=gen), {}]]


@pytest.fixture(scope="session")
def i2v_inputs(tiny):
    """positive, negative, latent from ComfyUI's own WanImageToVideo on a 32×32, 9-frame start image."""
    import torch
    from comfy_extras.nodes_wan import WanImageToVideo

    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(5))
    out = WanImageToVideo.execute(text_conditioning(1), text_conditioning(2), tiny.vae, 32, 32, 9, 1,
                                  start_image=image)
    positive, negative, latent = out[0], out[1], out[2]
    return types.SimpleNamespace(positive=positive, negative=negative, latent=latent)


@pytest.fixture(scope="session")
def deep(comfy_root):
    """A 30-block tiny Wan2.2 I2V expert pair (blocks 20-29 exist), built in memory, shift 5."""
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    from tools.tiny import wan_state_dict

    def build(seed):
        model = comfy.sd.load_diffusion_model_state_dict(wan_state_dict(seed, in_dim=36, num_layers=30))
        return ModelSamplingSD3().patch(model, 5.0)[0]

    return types.SimpleNamespace(high=build(11), low=build(12))


@pytest.fixture(scope="module")
def client(server):
    """A client of the module's ``server`` fixture (each tier-2 module starts its own server)."""
    from tools.comfy_server import ComfyClient

    return ComfyClient(server.url)
