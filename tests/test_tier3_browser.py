"""Tier 3: the real ComfyUI frontend in headless Chromium, against a real server with the pack.

One ComfyUI server (``tools.comfy_server.ComfyServer``: the pack, the tiny random-weight stand-ins of
``tools/tiny.py`` and the test stand-in text encoder, every folder temporary) and one Chromium
(Debian's, driven by npm's ``playwright-core`` from ``tests/browser/``; no browser download). The
driver ``tests/browser/drive.mjs`` runs everything in one page and writes JSON; the tests below
assert on it.

For every workflow listed in ``workflows/meta/index.json`` the driver opens the Templates dialog, picks
the pack under *Extensions* and clicks the workflow's card, then makes the loaded graph tiny **in
the page** (how the tiny models are made visible to the shipped loaders): widget values from
:func:`tools.tiny_recipe.tiny_overrides` (the tiny file names in the loaders, 64×64, 9 frames, 6
steps, layer windows that exist in a 4-block model, latent2rgb instead of the VAE for the per-step
decoders to stay fast) and a graph edit that swaps every CLIPTextEncode for ``CoSTinyTextEncode``
(Wan) or ``CoSTinyLTXTextEncode`` (LTX-2.3) and drops CLIPLoader / LTXAVTextEncoderLoader (umt5-xxl and
Gemma 3 12B cannot be tiny). Then it presses Run, waits for the prompt, checks
the outputs of the index's output nodes, takes screenshots, drags the step scrubber, hovers and
clicks the energy viewer, checks the live preview, wraps the sampler in a subgraph and runs again,
opens node help pages and feeds the views a hostile file name.

Screenshots and the driver's JSON go to a new ``tests/artifacts/tier3/run_<time>_<pid>/`` (git-ignored;
``COS_ARTIFACTS`` names another base folder).
Skips with a one-line reason without ``COMFYUI_PATH``, Node.js, Chromium (``CHROMIUM`` or
``/usr/bin/chromium``) or ``tests/browser/node_modules/playwright-core`` (``npm install`` there).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from comfy_fixtures import SKIP_REASON, comfy_path

pytestmark = [pytest.mark.browser, pytest.mark.server]

REPO = Path(__file__).resolve().parent.parent
BROWSER_DIR = REPO / "tests" / "browser"
DRIVER = BROWSER_DIR / "drive.mjs"
WORKFLOWS = REPO / "workflows"
HELP_NODES = ["CoSEnergyMaps", "CoSSampler"]


def missing_tools() -> str | None:
    """The reason tier 3 cannot run here, or None."""
    if comfy_path() is None:
        return SKIP_REASON
    if shutil.which("node") is None:
        return "Node.js is not installed: tier-3 browser tests need node (and npm) on PATH"
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        return "Chromium is missing: apt-get install -y chromium (or set CHROMIUM to its path)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        return "playwright-core is missing: run 'npm install' in tests/browser"
    return None


def chromium_path() -> str:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def index_templates() -> list[dict]:
    groups = json.loads((WORKFLOWS / "meta" / "index.json").read_text(encoding="utf-8"))
    return [t for g in groups for t in g["templates"]]


def pack_name(object_info: dict) -> str:
    """The pack's folder name in the server (its /extensions/<name>/ and Templates category)."""
    return object_info["CoSSampler"]["python_module"].split(".", 1)[1]


def pack_node_ids(object_info: dict) -> list[str]:
    """The pack's nodes as the server lists them (nodes/__init__.py NODES)."""
    module = object_info["CoSSampler"]["python_module"]
    return sorted(k for k, v in object_info.items() if v.get("python_module") == module)


SEEDED = ("CoSSampler", "CoSSeedEnsemble", "CoSInformationFlow", "CoSLayerSwapSweep")


def fresh_seeds(workflow: dict, object_info: dict, offset: int) -> dict:
    """Other seeds for every seeded Chain-of-Steps node, so no workflow reuses another's cached results
    (a cached node sends no new outputs to the page)."""
    from tools.tiny_recipe import widget_values

    out = {}
    for node in workflow["nodes"]:
        if node["type"] in SEEDED:
            seed = widget_values(node, object_info).get("seed")
            if isinstance(seed, int):
                out[str(node["id"])] = {"seed": seed + 1000 * offset}
    return out


def register_official_names(models: Path) -> None:
    """Make the tiny stand-ins visible under the shipped workflows' real file names (symlinks in the
    test's own model folder), so the loaders of a template find their files as they are."""
    from tools.tiny import TINY_FILES, TINY_FOLDERS

    for official, tiny in TINY_FILES.items():
        folder = TINY_FOLDERS[tiny]
        source = models / folder / tiny
        if source.is_file() and not (models / folder / official).exists():
            (models / folder / official).symlink_to(source)


def blocked() -> dict[str, list[str]]:
    """Workflows that cannot run on tiny stand-ins: name → the model files that have none."""
    from tools.tiny_recipe import tiny_blockers

    out = {}
    for entry in index_templates():
        files = tiny_blockers(json.loads((WORKFLOWS / f"{entry['name']}.json").read_text(encoding="utf-8")))
        if files:
            out[entry["name"]] = files
    return out


def build_config(url: str, object_info: dict, shots: Path) -> dict:
    """The driver's configuration for a server at ``url`` (see drive.mjs)."""
    from tools.tiny_recipe import fast_unlinks, tiny_overrides

    workflows = []
    skip = blocked()
    for number, entry in enumerate(index_templates(), start=1):
        if entry["name"] in skip:
            continue
        workflow = json.loads((WORKFLOWS / f"{entry['name']}.json").read_text(encoding="utf-8"))
        overrides = tiny_overrides(workflow, object_info, fast=True, tiny_files={})
        for node_id, change in fresh_seeds(workflow, object_info, number).items():
            overrides.setdefault(node_id, {}).update(change)
        workflows.append({"name": entry["name"], "overrides": overrides, "outputs": entry["io"]["outputs"],
                          "unlink": fast_unlinks(workflow), "nodeCount": len(workflow["nodes"])})
    return {"url": url, "pack": pack_name(object_info), "shots": str(shots), "chromium": chromium_path(),
            "workflows": workflows, "listed": [t["name"] for t in index_templates()], "timeoutMs": 240000,
            "help": HELP_NODES, "docs": pack_node_ids(object_info),
            "subgraph": {"workflow": "wan22_i2v_chain_of_steps", "wrap": [11, 15]}}


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    from tools.comfy_server import ComfyClient, ComfyServer, comfy_python, write_tiny_models
    from tools.workflow_thumbnails import input_images

    root = comfy_path()
    python = comfy_python(root)
    # a new folder per run, so runs side by side never mix their screenshots
    base = Path(os.environ.get("COS_ARTIFACTS") or REPO / "tests" / "artifacts" / "tier3")
    shots = base / time.strftime(f"run_%Y%m%d_%H%M%S_{os.getpid()}")
    shots.mkdir(parents=True)
    work = tmp_path_factory.mktemp("tier3")
    models = write_tiny_models(python, root, work / "tiny_models")
    register_official_names(models)
    server = ComfyServer(root, python=python, cpu=True, tiny_models=models, log=lambda *_: None)
    server.start()
    try:
        client = ComfyClient(server.url)
        input_images(client, work / "inputs")  # example.png, example_alt.png: the names the workflows use
        config = build_config(server.url, server.object_info, shots)
        strict = {}
        for entry in index_templates():
            from tools.workflow_api import WorkflowError, ui_to_api

            try:
                ui_to_api(json.loads((WORKFLOWS / f"{entry['name']}.json").read_text(encoding="utf-8")),
                          server.object_info, strict=True)
                strict[entry["name"]] = None
            except WorkflowError as err:
                strict[entry["name"]] = str(err)
        config_path, result_path = work / "config.json", work / "result.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        started = time.monotonic()
        done = subprocess.run(["node", str(DRIVER), str(config_path), str(result_path)], cwd=str(BROWSER_DIR),
                              capture_output=True, text=True, timeout=900)
        result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else {}
        result["_driver"] = {"rc": done.returncode, "stderr": done.stderr[-4000:],
                             "seconds": time.monotonic() - started}
        result["_config"] = config
        result["_strict"] = strict
        result["_api_templates"] = client.request("/api/workflow_templates")
        result["_server_log"] = server.log_tail(80)
        (shots / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        yield result
    finally:
        server.stop()


def test_driver_ran(browser_run):
    assert browser_run["_driver"]["rc"] == 0 and not browser_run.get("fatal"), \
        f"{browser_run.get('fatal')}\n{browser_run['_driver']['stderr']}"


def test_every_workflow_converts_strictly_against_the_live_server(browser_run):
    """tools.workflow_api.ui_to_api(strict=True) with the server's /object_info: every node installed and
    every widgets_values list exactly as long as its widgets."""
    assert browser_run["_strict"] and not any(browser_run["_strict"].values()), browser_run["_strict"]


def test_server_lists_exactly_the_workflows_as_the_packs_templates(browser_run):
    """ComfyUI's /api/workflow_templates (every ``<pack>/workflows/*.json``) names each shipped workflow and
    nothing else: the templates index is not listed (it lives in workflows/meta/)."""
    listed = browser_run["_api_templates"][browser_run["_config"]["pack"]]
    assert sorted(listed) == sorted(t["name"] for t in index_templates()), listed


def test_templates_browser_lists_every_workflow_with_its_thumbnail(browser_run):
    shown = browser_run["templates"]["shown"]
    names = [t["name"] for t in index_templates()]
    assert set(names) <= set(shown), f"missing from the Templates dialog: {set(names) - set(shown)}"
    assert "index" not in shown, "the templates index must not show up as a template"
    thumbs = browser_run["templates"]["thumbnails"]
    assert len([t for t in thumbs if t["ok"]]) >= len(names), thumbs


@pytest.mark.parametrize("name", [t["name"] for t in index_templates()])
def test_workflow_runs_from_the_templates_browser(browser_run, name):
    files = blocked().get(name)
    assert not files, f"every shipped workflow must run here: no tiny stand-in (tools/tiny.py TINY_FILES) for {files}"
    res = browser_run["workflows"].get(name)
    assert res is not None, "the driver did not reach this workflow"
    assert not res.get("crash"), res.get("crash")
    assert res["openedFromTemplates"]
    assert res["status"] == "execution_success", res.get("error") or browser_run["_server_log"]
    for row in res["outputs"]:
        assert row["keys"], f"node {row['nodeId']} {row['nodeType']}: no outputs"
        if row["nodeType"] == "SaveVideo":
            assert row["files"], f"node {row['nodeId']}: no video file"
        elif row["nodeType"] == "CoSEnergyMaps" and "cos_energy" in row["keys"]:
            assert row["viewerLoaded"], f"node {row['nodeId']}: the energy viewer's picture did not load"
        else:
            assert row["imagesLoaded"], f"node {row['nodeId']} {row['nodeType']}: pictures not shown: {row}"
        assert all(f["status"] == 200 and f["bytes"] > 0 for f in row["fetched"]), row
    for shot in res["shots"]:
        assert Path(shot).stat().st_size > 10_000
    # the shipped layout leaves room for what the run shows (scrubbers, viewers, pictures)
    assert not res["overlaps"], f"nodes cover each other after the run: {res['overlaps']}"


def test_the_run_covers_every_shipped_workflow(browser_run):
    shipped = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    assert sorted(browser_run["workflows"]) == shipped == sorted(t["name"] for t in index_templates())


def test_live_preview_arrives_by_the_named_event(browser_run):
    ran = [r for r in browser_run["workflows"].values() if r.get("live")]
    assert ran, "no workflow with a CoS Sampler ran"
    for res in ran:
        assert res["previews"] > 0, f"{res['name']}: no chain_of_steps.preview event"
        for node_id, live in res["live"].items():
            assert live and "σ" in live["label"] and live["entries"] >= 1, (res["name"], node_id, live)


@pytest.mark.parametrize("name", ["wan22_i2v_chain_of_steps", "ltx23_i2v_chain_of_steps"])
def test_step_scrubber_moves_through_the_steps(browser_run, name):
    """Dragging the slider from the first step to the last, clicking the track's middle and pressing play
    change the step shown, its label and the picture drawn."""
    res = browser_run["workflows"][name]["scrubber"]
    assert res["max"] >= 5  # 6 steps (Wan tiny run) or 8 (LTX-2.3 stage 1)
    before, after, middle = res["before"], res["after"], res["middle"]
    assert before["step"] == "0" and "σ = 1.000" in before["text"]
    assert after["step"] == str(res["max"]) and after["text"] != before["text"]
    assert middle["step"] not in (before["step"], after["step"])
    # every step's x̂0 is another picture: the canvas changes with the step
    assert len({before["pixelSum"], after["pixelSum"], res["middleAll"]["pixelSum"]}) == 3, res
    assert res["middleAll"]["step"] == middle["step"]
    playing = res["playing"]
    assert playing["button"] == "Pause"
    assert len(set(playing["seen"])) >= 3, f"playing showed steps {playing['seen']}"
    assert res["pixels"]["lit"] > 100, "the scrubber drew nothing"


def test_energy_viewer_answers_hover_and_click(browser_run):
    res = browser_run["workflows"]["wan22_i2v_layer_energy_pca"]["energy"]
    cell = res["hover"]["cell"]
    assert res["hover"]["visible"]
    assert f"layer {cell['layer']}" in res["hover"]["text"] and cell["frame"] in res["hover"]["text"]
    assert "energy" in res["hover"]["text"] and "‖U‖₂" in res["hover"]["text"]
    assert res["hover"]["marked"] == f"{cell['layer']}/{cell['column']}"
    assert res["zoomed"]["visible"] and f"layer {cell['layer']}" in res["zoomed"]["text"]
    assert res["zoomed"]["closedByEscape"]


def test_views_work_inside_a_subgraph(browser_run):
    res = browser_run["subgraph"]
    assert res and not res.get("crash"), res
    assert res["wrapped"], "Convert to Subgraph did not make a subgraph node"
    assert res["status"] == "execution_success", res.get("error")
    assert ":" in str(res["lastPreview"]["node"]), "preview events of a node in a subgraph carry its execution id"
    views = {v["type"]: v for v in res["views"]}
    assert views["CoSSampler"]["live"] and "σ" in views["CoSSampler"]["live"]["label"]
    assert views["CoSDecodeSteps"]["scrubber"] and views["CoSDecodeSteps"]["scrubber"]["entries"] == 6


def test_node_help_pages(browser_run):
    for node_type, res in browser_run["help"].items():
        assert res.get("shown") and res.get("paper"), (node_type, res)
    for node_type, res in browser_run["docs"].items():
        assert res["status"] == 200 and "html" not in (res["type"] or ""), (node_type, res)
        assert res["head"].startswith("# "), (node_type, res)


def test_names_are_escaped(browser_run):
    res = browser_run["escaping"]
    assert res["injectedImgs"] == 0 and not res["pwned"]
    assert res["optionText"].startswith("<img"), res


def test_no_console_errors_from_the_extension(browser_run):
    assert browser_run["extensionErrors"] == [], browser_run["extensionErrors"]
