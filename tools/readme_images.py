"""The README's node pictures, made by running the pack's nodes in process on tiny random-weight models.

(The x̂0 grid at the top of the README is the main job's own output, ``bash tools/main.sh --tiny random``,
passed through :func:`labelled` with ``--label-only FILE``.)

    COMFYUI_PATH=/path/to/ComfyUI $COMFYUI_PATH/.venv/bin/python -m tools.readme_images [--out web/docs/img]

Every picture is real node output (CoS Sampler → CoS Convergence; CoS Layer Probe →
CoS Energy Maps; CoS Information Flow; CoS Layer Swap Sweep) on a 30-block Wan2.2-I2V-shaped expert
pair with random weights (``tools/tiny.py``), a random text-conditioning stand-in and matplotlib's
photograph of Grace Hopper as the start image, on the CPU. A band under each picture says so: the
layout, labels and scales are what the nodes draw; the content is not Wan2.2's.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
PACK = "chain_of_steps_pack"
STEPS, SIZE, FRAMES, LAYERS, SEED = 12, 96, 17, 30, 42
MAIN_JOB_BAND = "main job --tiny: tiny random-weight stand-ins (4 blocks, CPU); the content is not Wan2.2's"
BAND = "tiny random-weight stand-in models (30 blocks, CPU): the layout is the node's, the content is not Wan2.2's"


def comfy_imports():
    root = os.environ.get("COMFYUI_PATH")
    if not root:
        raise SystemExit("set COMFYUI_PATH to a ComfyUI checkout")
    sys.path.insert(0, str(Path(root).resolve()))
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_management  # noqa: F401  (device set-up honours --cpu)

    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)


def conditioning(seed: int):
    import torch

    return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]


def models(cache: Path):
    import comfy.sd
    import comfy.utils
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    from tools.tiny import TINY_FILES, wan_state_dict, write_tiny_models

    write_tiny_models(cache)
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(cache / "vae" / TINY_FILES["wan_2.1_vae.safetensors"])))

    def expert(seed):
        model = comfy.sd.load_diffusion_model_state_dict(wan_state_dict(seed, in_dim=36, num_layers=LAYERS))
        return ModelSamplingSD3().patch(model, 5.0)[0]

    return expert(11), expert(12), vae


def start_inputs(vae, seed: int, mirror: bool = False):
    import matplotlib.cbook
    import torch
    from comfy_extras.nodes_wan import WanImageToVideo

    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        side = min(photo.size)
        photo = photo.convert("RGB").crop((0, 0, side, side)).resize((SIZE, SIZE), Image.LANCZOS)
        if mirror:
            photo = photo.transpose(Image.FLIP_LEFT_RIGHT)
    image = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0)[None]
    out = WanImageToVideo.execute(conditioning(seed), conditioning(seed + 1), vae, SIZE, SIZE, FRAMES, 1,
                                  start_image=image)
    return out[0], out[1], out[2]


def to_pil(image) -> Image.Image:
    array = (image[0].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def labelled(image: Image.Image, text: str = BAND) -> Image.Image:
    import matplotlib.font_manager as fm

    size = max(11, min(16, image.width // 60))
    font = ImageFont.truetype(fm.findfont(fm.FontProperties(family="DejaVu Sans")), size)
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if ImageDraw.Draw(image).textlength(trial, font=font) > image.width - 16 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    band = size * len(lines) + 6 * (len(lines) + 1)
    out = Image.new("RGB", (image.width, image.height + band), (250, 236, 200))
    out.paste(image.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((8, image.height + 6 + i * (size + 6)), line, font=font, fill=(90, 60, 0))
    return out


def save(image: Image.Image, path: Path, max_bytes: int = 300_000, band: str = BAND) -> None:
    image = labelled(image, band)
    image.save(path, optimize=True)
    if path.stat().st_size > max_bytes:  # photographs of noise compress badly: fall back to a palette
        image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.name}: {image.size[0]}×{image.size[1]}, {path.stat().st_size // 1024} KiB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.readme_images", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "web" / "docs" / "img")
    parser.add_argument("--label-only", nargs=2, type=Path, metavar=("SOURCE", "TARGET"),
                        help="only add the tiny-model band to an existing picture (e.g. the main job's x̂0 grid)")
    args = parser.parse_args(argv)
    if args.label_only:
        with Image.open(args.label_only[0]) as picture:
            save(picture.convert("RGB"), args.label_only[1], band=MAIN_JOB_BAND)
        return
    comfy_imports()
    import folder_paths

    from chain_of_steps_pack.nodes.convergence import CoSConvergence
    from chain_of_steps_pack.nodes.energy_maps import VIEWS, CoSEnergyMaps
    from chain_of_steps_pack.nodes.info_flow import CoSInformationFlow
    from chain_of_steps_pack.nodes.probe import PCA_BASES, CoSLayerProbe
    from chain_of_steps_pack.nodes.sampler import CoSSampler
    from chain_of_steps_pack.nodes.swap import CoSLayerSwapSweep

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="cos_readme_"))
    folder_paths.output_directory = str(work / "output")
    high, low, vae = models(REPO / ".cos_cache" / "tiny_models")
    positive, negative, latent = start_inputs(vae, SEED)
    run = dict(positive=positive, negative=negative, latent=latent, seed=SEED, steps=STEPS, cfg=3.5,
               sampler_name="euler", scheduler="simple", switch_mode="boundary sigma", boundary=0.9, switch_step=6)

    def node(cls):
        return cls.PREPARE_CLASS_CLONE(None)

    # the x̂0 trajectory and its convergence
    _, _, trace, _ = node(CoSSampler).execute(model_high=high, model_low=low, capture_steps="all", stop_after_step=-1,
                                              preview_frames=0, **run).result
    image = node(CoSConvergence).execute(trace, 0.05, 2).result[0]
    save(to_pil(image), args.out / "convergence_tiny.png")

    # layer probe → energy maps
    probed_high, probed_low, handle = node(CoSLayerProbe).execute(
        high, "all", "all", "cond", True, True, PCA_BASES[0], model_low=low).result
    node(CoSSampler).execute(model_high=probed_high, model_low=probed_low, capture_steps="-1", stop_after_step=-1,
                             preview_frames=0, **run)
    shown = "0,5,10,15,20,25,29"
    for view, name, step in [(VIEWS[0], "energy_grid_tiny.png", 0), (VIEWS[1], "pca_grid_tiny.png", 0),
                             (VIEWS[2], "temporal_energy_tiny.png", 0), (VIEWS[3], "cross_step_energy_tiny.png", 0)]:
        layers = shown if view != VIEWS[3] else "0,10,20,25,29"
        image = node(CoSEnergyMaps).execute(handle, view, step, layers, "global", 0, "cond").result[0]
        save(to_pil(image), args.out / name)

    # noise at step: the information-flow map
    image = node(CoSInformationFlow).execute(model_high=high, model_low=low, mode="step", injections="all",
                                             strength=1.0, noise_seed=1, filename_prefix="cos/flow", **run).result[0]
    save(to_pil(image), args.out / "information_flow_tiny.png")

    # layer swap sweep against another start (another conditioning and image)
    alt_positive, alt_negative, alt_latent = start_inputs(vae, SEED + 100, mirror=True)
    image = node(CoSLayerSwapSweep).execute(model_high=high, model_low=low, alt_positive=alt_positive,
                                            alt_negative=alt_negative, alt_latent=alt_latent, swap_step=0,
                                            layers="0,3,6,9,12,15,18,21,24,27,29",
                                            show_frame=-1, **run).result[0]
    save(to_pil(image), args.out / "layer_swap_tiny.png")


if __name__ == "__main__":
    main()
