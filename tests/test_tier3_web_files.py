"""The files the frontend serves: workflows + thumbnails + the templates index, node help pages, the web extension.

Tier 0 (no ComfyUI): every shipped workflow is in ``workflows/meta/index.json`` with a title, a description
and a real ``.jpg`` thumbnail; the index's output nodes exist; workflows are flat UI format and name
no path of this machine; the extension never writes HTML from data. Tier 1 (``COMFYUI_PATH``): every
node of ``nodes/__init__.py`` has ``web/docs/<node id>.md`` naming each of its inputs and outputs and
the paper section it implements. The browser checks (help shown, templates listed) are in
``test_tier3_browser.py``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
WEB = REPO / "web"
# Not workflows/index.json: ComfyUI's /api/workflow_templates lists every workflows/*.json of a pack as a
# template (app/custom_node_manager.py globs '<pack>/workflows/*.json'), so an index there shows up as a broken
# "index" template. A subfolder is not listed, and frontend 1.49 reads only the names of a pack's templates.
INDEX = WORKFLOWS / "meta" / "index.json"


def index_templates() -> list[dict]:
    groups = json.loads(INDEX.read_text(encoding="utf-8"))
    assert isinstance(groups, list) and groups, "index.json: a list of template groups (core Templates format)"
    return [t for g in groups for t in g["templates"]]


def shipped() -> list[str]:
    return sorted(p.stem for p in WORKFLOWS.glob("*.json"))


def test_every_workflow_is_in_the_index():
    entries = {t["name"]: t for t in index_templates()}
    assert sorted(entries) == shipped(), "workflows/meta/index.json and the workflow files differ"
    for name, entry in entries.items():
        assert entry["title"].strip() and len(entry["description"]) > 40, name
        assert entry["mediaType"] == "image" and entry["mediaSubtype"] == "jpg", name


def test_every_json_comfyui_lists_as_a_template_is_a_workflow():
    """ComfyUI lists every ``workflows/*.json`` as a template of the pack (names only); each must be a UI
    workflow, so the index and any other JSON live elsewhere. The live server's list is checked in tier 3."""
    assert not (WORKFLOWS / "index.json").exists(), "the templates index lives in workflows/meta/index.json"
    for path in WORKFLOWS.glob("*.json"):
        workflow = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list), f"{path.name}: not a workflow"


@pytest.mark.parametrize("name", shipped())
def test_workflow_has_a_thumbnail_from_a_tiny_run(name):
    """``python -m tools.workflow_thumbnails`` writes them; it needs tiny stand-ins for every model file."""
    from PIL import Image

    from tools.tiny_recipe import tiny_blockers

    blockers = tiny_blockers(json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8")))
    assert not blockers, f"{name}: no tiny stand-in (tools/tiny.py TINY_FILES) for {'; '.join(blockers)}"
    thumb = WORKFLOWS / f"{name}.jpg"
    assert thumb.is_file(), f"{name}: no thumbnail {thumb.name} (run python -m tools.workflow_thumbnails)"
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and min(im.size) >= 256, (name, im.format, im.size)
        low, high = im.convert("L").getextrema()
        assert high - low > 40, f"{name}: the thumbnail is blank"


@pytest.mark.parametrize("name", shipped())
def test_workflow_file_is_flat_ui_format_without_local_paths(name):
    text = (WORKFLOWS / f"{name}.json").read_text(encoding="utf-8")
    workflow = json.loads(text)
    assert isinstance(workflow.get("nodes"), list) and isinstance(workflow.get("links"), list)
    assert not (workflow.get("definitions") or {}).get("subgraphs"), "ship flat workflows (no subgraphs)"
    assert not re.search(r'"/(root|home|tmp|work|Users)/', text), "a path of this machine in a shipped workflow"
    nodes = {n["id"]: n["type"] for n in workflow["nodes"]}
    entry = next((t for t in index_templates() if t["name"] == name), None)
    for out in (entry or {}).get("io", {}).get("outputs", []):
        assert nodes.get(out["nodeId"]) == out["nodeType"], f"index.json output {out} is not in {name}"


def test_extension_writes_no_html_from_data():
    for path in (WEB / "js").glob("*.js"):
        code = path.read_text(encoding="utf-8")
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", code), path.name
        for spec in re.findall(r'from\s+"([^"]+)"', code):
            assert spec.startswith("./") or spec.startswith("../../../scripts/"), (path.name, spec)
    names = re.findall(r'registerExtension\(\{\s*name:\s*"([^"]+)"', "".join(
        p.read_text(encoding="utf-8") for p in (WEB / "js").glob("*.js")))
    assert names and all(n.startswith("chain_of_steps.") for n in names), names


@pytest.mark.comfy
def test_every_node_has_a_help_page(pack):
    nodes = __import__(f"{pack.__name__}.nodes", fromlist=["NODES"]).NODES
    for node in nodes:
        info = node.GET_NODE_INFO_V1()
        page = WEB / "docs" / f"{info['name']}.md"
        assert page.is_file(), f"{info['name']}: no help page {page.relative_to(REPO)}"
        text = page.read_text(encoding="utf-8")
        assert text.startswith(f"# {info['display_name']}"), info["name"]
        assert "## Paper" in text and "## Inputs" in text and "## Outputs" in text, info["name"]
        for section in ("required", "optional"):
            for name in (info["input"].get(section) or {}):
                assert f"`{name}`" in text, f"{info['name']}: help page does not describe input '{name}'"
        for name in info["output_name"]:
            assert f"`{name}`" in text, f"{info['name']}: help page does not describe output '{name}'"
