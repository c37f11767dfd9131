"""Run every shipped workflow on CPU-sized models and write its Templates-browser thumbnail.

Usage (repository root, ComfyUI's Python, ``COMFYUI_PATH`` set or ``--server URL`` of a server
started with the tiny stand-ins)::

    python -m tools.workflow_thumbnails [--only NAME ...] [--check]

For each ``workflows/<name>.json`` listed in ``workflows/meta/index.json``: convert it to API format
(strict, against the server's ``/object_info``), make it CPU-sized, run it, and turn the picture of
the node named by the index entry's ``thumbnailNode`` (a list: the pictures side by side, or stacked
when they are wide; else the first picture the run made) into ``workflows/<name>.jpg``: 512×512, the
picture fitted on the pack's dark background, with a line saying what made it:

- CoS-Toy workflows (a CoS Toy Model node) run as shipped;
- Wan2.2 I2V workflows run as their CoS-Toy variant (:mod:`tools.toy_recipe`: the trained toy model
  stands in for both experts, on a maze), so their thumbnails show a real model solving a puzzle, not
  what Wan2.2 makes;
- the others (LTX-2.3), or every workflow with ``--random``, run on tiny random-weight stand-ins
  (:mod:`tools.tiny_recipe` and :func:`tools.cos_run.tiny_rewrite`): their pictures are noise, and the
  thumbnail shows what the workflow draws.

``--check`` runs without writing. A workflow whose model files have no tiny stand-in
(:func:`tools.tiny_recipe.tiny_blockers`) is skipped with the list of those files (exit code 3).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

from tools.comfy_server import REPO_ROOT, ComfyClient, ComfyServer, comfy_python, exit_on_sigterm, write_tiny_models
from tools.cos_run import DEFAULT_CACHE, default_image, is_toy_workflow, output_files, tiny_rewrite
from tools.tiny_recipe import apply_to_prompt, tiny_blockers, tiny_overrides
from tools.toy_recipe import apply_toy_variant, toy_blockers
from tools.workflow_api import find_nodes, ui_to_api

WORKFLOWS = REPO_ROOT / "workflows"
THUMB = 512
LABEL = "tiny random-weight run: shows the layout, not the real model's output"
TOY_LABEL = "real run of the CoS-Toy model on a CPU (a toy task, not Wan2.2)"
TOY_VARIANT_LABEL = "real run with CoS-Toy in place of Wan2.2, on a CPU (a toy maze)"


def index_entries() -> list[dict]:
    """The templates of ``workflows/meta/index.json`` (the core Templates index format: a list of groups)."""
    groups = json.loads((WORKFLOWS / "meta" / "index.json").read_text(encoding="utf-8"))
    return [t for group in groups for t in group.get("templates", [])]


def input_images(client: ComfyClient, workdir: Path) -> dict[str, str]:
    """Upload the start pictures the workflows name: example.png (a portrait) and example_alt.png (it mirrored)."""
    from PIL import Image, ImageOps

    workdir.mkdir(parents=True, exist_ok=True)
    with Image.open(default_image()) as im:
        portrait = im.convert("RGB")
    names = {}
    for name, picture in (("example.png", portrait), ("example_alt.png", ImageOps.mirror(portrait))):
        path = workdir / name
        picture.save(path)
        names[name] = client.upload_image(path, name)
    return names


def variant(workflow: dict, random: bool = False) -> str:
    """How a workflow runs here: ``"toy"`` (as shipped), ``"toy variant"`` (Wan2.2 I2V on CoS-Toy) or ``"random"``."""
    if is_toy_workflow(workflow):
        return "toy"
    return "random" if random or toy_blockers(workflow) else "toy variant"


def tiny_prompt(workflow: dict, object_info: dict, images: dict[str, str], fast: bool = False,
                random: bool = False) -> dict:
    """The workflow as a CPU-sized API prompt (strict conversion; :func:`variant` says which recipe)."""
    prompt = ui_to_api(workflow, object_info, strict=True)
    if variant(workflow, random) == "toy variant":
        apply_toy_variant(prompt, workflow, object_info, fast=fast)
        return prompt
    apply_to_prompt(prompt, tiny_overrides(workflow, object_info, fast=fast))
    tiny_rewrite(prompt)
    for node_id in find_nodes(prompt, "LoadImage"):
        name = prompt[node_id]["inputs"].get("image")
        prompt[node_id]["inputs"]["image"] = images.get(name, images["example.png"])
    return prompt


def pictures(history: dict) -> list[dict]:
    """Every picture a run showed or saved, with its node: ``images`` entries and the pack's views."""
    found = [f for f in output_files(history) if f["filename"].lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
    for node_id, outputs in (history.get("outputs") or {}).items():
        for view in (outputs or {}).get("cos_energy") or []:
            if isinstance(view, dict) and view.get("image"):
                found.append({"node": node_id, **view["image"]})
    return found


def combine(pictures: list):
    """Several pictures as one: side by side, or stacked when they are wider than tall."""
    from PIL import Image

    from cos_core.render import BACKGROUND

    if len(pictures) == 1:
        return pictures[0]
    wide = sum(p.width for p in pictures) > sum(p.height for p in pictures)
    # one scale for the row (same height) or the column (same width), so a small picture is not lost
    side = max(p.width for p in pictures) if wide else max(p.height for p in pictures)
    pictures = [p.resize((side, max(1, round(p.height * side / p.width))) if wide
                         else (max(1, round(p.width * side / p.height)), side), Image.LANCZOS) for p in pictures]
    gap = 8
    if wide:
        width = max(p.width for p in pictures)
        out = Image.new("RGB", (width, sum(p.height for p in pictures) + gap * (len(pictures) - 1)), BACKGROUND)
        y = 0
        for p in pictures:
            out.paste(p, ((width - p.width) // 2, y))
            y += p.height + gap
    else:
        height = max(p.height for p in pictures)
        out = Image.new("RGB", (sum(p.width for p in pictures) + gap * (len(pictures) - 1), height), BACKGROUND)
        x = 0
        for p in pictures:
            out.paste(p, (x, (height - p.height) // 2))
            x += p.width + gap
    return out


def make_thumbnail(data: list[bytes], label: str = LABEL):
    """A THUMB×THUMB RGB picture: the pictures in ``data`` fitted on a dark background above a label."""
    from PIL import Image, ImageDraw

    from cos_core.render import BACKGROUND, TEXT, _font

    loaded = []
    for blob in data:
        with Image.open(io.BytesIO(blob)) as im:
            loaded.append(im.convert("RGB"))
    picture = combine(loaded)
    band = 26
    box = (THUMB - 12, THUMB - band - 12)
    scale = min(box[0] / picture.width, box[1] / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.NEAREST if scale >= 2 else Image.LANCZOS)
    canvas = Image.new("RGB", (THUMB, THUMB), BACKGROUND)
    canvas.paste(picture, ((THUMB - size[0]) // 2, 6 + (box[1] - size[1]) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((THUMB // 2, THUMB - band // 2 - 2), label, fill=TEXT, font=_font(13), anchor="mm")
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.workflow_thumbnails", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="workflow names (default: all in index.json)")
    parser.add_argument("--server", default=None, help="a running ComfyUI started with the tiny stand-ins")
    parser.add_argument("--check", action="store_true", help="run, but write no thumbnail")
    parser.add_argument("--random", action="store_true",
                        help="Wan2.2 workflows on tiny random-weight stand-ins too (default: their CoS-Toy variant)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    entries = [e for e in index_entries() if not args.only or e["name"] in args.only]
    server = None
    try:
        if args.server:
            client = ComfyClient(args.server)
        else:
            root = os.environ.get("COMFYUI_PATH")
            if not root:
                print("set COMFYUI_PATH (or pass --server)", file=sys.stderr)
                return 2
            python = comfy_python(root)
            models = write_tiny_models(python, root, DEFAULT_CACHE / "tiny_models")
            server = ComfyServer(root, python=python, tiny_models=models).start()
            client = ComfyClient(server.url)
        object_info = client.object_info()
        images = input_images(client, DEFAULT_CACHE / "thumbnail_inputs")
        blocked = 0
        for entry in entries:
            workflow = json.loads((WORKFLOWS / f"{entry['name']}.json").read_text(encoding="utf-8"))
            blockers = tiny_blockers(workflow)
            if blockers:
                blocked += 1
                print(f"{entry['name']}: SKIPPED, no tiny stand-in for: {'; '.join(blockers)}", file=sys.stderr)
                continue
            prompt = tiny_prompt(workflow, object_info, images, random=args.random)
            started = time.monotonic()
            history = client.run(prompt, timeout=1800)
            shots = pictures(history)
            wanted = entry.get("thumbnailNode")
            wanted = [str(n) for n in (wanted if isinstance(wanted, list) else [wanted] if wanted else [])]
            chosen = [next(p for p in shots if p["node"] == n) for n in wanted if any(p["node"] == n for p in shots)]
            chosen = chosen or shots[:1]
            if not chosen:
                print(f"{entry['name']}: the run made no picture", file=sys.stderr)
                return 1
            data = [client.view(c["filename"], c.get("subfolder", ""), c.get("type", "output")) for c in chosen]
            print(f"{entry['name']}: {time.monotonic() - started:.1f} s, thumbnail from node(s) "
                  + ", ".join(f"{c['node']} ({prompt[c['node']]['class_type']})" for c in chosen))
            if not args.check:
                label = {"toy": TOY_LABEL, "toy variant": TOY_VARIANT_LABEL}.get(variant(workflow, args.random), LABEL)
                make_thumbnail(data, label).save(WORKFLOWS / f"{entry['name']}.jpg", quality=88)
        return 3 if blocked else 0
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
