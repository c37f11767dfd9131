"""Tier 0: the pack is what the Comfy Registry and ComfyUI-Manager expect (pyproject, requirements, images,
no exec/eval or runtime pip in the code ComfyUI loads). The ComfyUI side (a fresh ComfyUI lists every
node) is tests/test_tier2_*; this file needs no ComfyUI."""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
RAW_PREFIX = "https://raw.githubusercontent.com/"


def requirement_lines() -> list[str]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_project_table_follows_the_registry_rules():
    project = PYPROJECT["project"]
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name), name
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["license"] == {"file": "LICENSE"} and (REPO / "LICENSE").is_file()
    assert project["description"] and project["requires-python"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    classifiers = project["classifiers"]
    assert any(c.startswith("Operating System ::") for c in classifiers)
    assert any(c.startswith("Environment :: GPU ::") for c in classifiers)


def test_dependencies_match_requirements_txt():
    """Manager installs requirements.txt, the Registry reads [project] dependencies: they must agree."""
    assert PYPROJECT["project"]["dependencies"] == requirement_lines()
    assert not any(line.split(">")[0].split("=")[0].strip().lower() == "torch" for line in requirement_lines())


def test_tool_comfy_table_and_images():
    from PIL import Image

    comfy = PYPROJECT["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert re.fullmatch(r"(>=|>|~=)\d+\.\d+\.\d+(,<\d+\.\d+\.\d+)?", comfy["requires-comfyui"])
    repo_url = PYPROJECT["project"]["urls"]["Repository"]
    for key, check in (("Icon", lambda w, h: w == h and w <= 400),
                       ("Banner", lambda w, h: abs(w / h - 21 / 9) < 0.01)):
        url = comfy[key]
        prefix = RAW_PREFIX + repo_url.removeprefix("https://github.com/") + "/main/"
        assert url.startswith(prefix), f"{key} should point at this repository's main branch: {url}"
        path = REPO / url.removeprefix(prefix)
        assert path.is_file(), f"{key}: {path} is missing"
        with Image.open(path) as image:
            assert check(*image.size), f"{key}: {image.size}"
        assert path.stat().st_size < 300_000


def tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in out.splitlines() if line]


def test_no_exec_eval_or_runtime_pip_in_the_loaded_code():
    """Registry standards: no eval/exec, no pip at run time, in what ComfyUI imports (the pack's code)."""
    loaded = [p for p in tracked("__init__.py", "nodes/*.py", "nodes/**/*.py", "cos_core/*.py", "cos_core/**/*.py")]
    assert loaded
    banned = re.compile(r"(?<![\w.])(exec|eval|__import__)\s*\(|subprocess|os\.system|pip\s+install|ensurepip")
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in loaded if p.is_file()
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if banned.search(line)]
    assert not hits, hits


def test_no_absolute_paths_of_this_machine_in_tracked_files():
    home = str(Path.home())
    parent = str(REPO.parent)
    needles = {home + "/", str(REPO) + "/"}
    if Path(parent).resolve() not in {Path(tempfile.gettempdir()).resolve(), Path("/")}:
        needles.add(parent + "/")  # e.g. the workspace the checkout lives in; a clean CI clone in /tmp is no hint
    hits = []
    for path in tracked():
        binary = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".safetensors"}
        if path.suffix.lower() in binary or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for needle in needles:
            if needle in text:
                hits.append(f"{path.relative_to(REPO)} holds {needle}")
    assert not hits, hits


def test_publish_workflow_uses_the_registry_action():
    text = (REPO / ".github" / "workflows" / "publish.yml").read_text(encoding="utf-8")
    assert "Comfy-Org/publish-node-action" in text and "REGISTRY_ACCESS_TOKEN" in text
    assert '"pyproject.toml"' in text
