"""Shared pytest setup for the Chain-of-Steps tests.

Tier 0 (pure CPU, no ComfyUI) only needs ``cos_core`` importable from the repository root. The
root is *appended* to ``sys.path``: the pack has a ``nodes/`` package and ComfyUI a ``nodes.py``
module, and ComfyUI's must win when the tier-1/2 fixtures (``tests/comfy_fixtures.py``) load it.
"""
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

pytest_plugins = ["comfy_fixtures"]
