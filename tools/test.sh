#!/usr/bin/env bash
# The README's test command. Sets up what the tests need, then runs every tier that can run here:
#   tier 0 always; tiers 1-2 when COMFYUI_PATH names a ComfyUI checkout (they skip otherwise).
# Extra arguments go to pytest, e.g.  bash tools/test.sh -k trace
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/comfy_python.sh

if [ -n "${COMFYUI_PATH:-}" ]; then
  comfy_python
  PY="$COMFY_PY"
  echo "[tests] ComfyUI at $COMFYUI_PATH, python $PY: tiers 0-2"
  "$PY" -c "import pytest, hypothesis" 2>/dev/null || "$PY" -m pip install -q pytest hypothesis
  "$PY" -c "import safetensors, einops, numpy, PIL, matplotlib, huggingface_hub" 2>/dev/null \
    || "$PY" -m pip install -q -r requirements.txt
else
  echo "[tests] COMFYUI_PATH is not set: tier 0 only (tiers 1-2 will skip)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  PY=.venv/bin/python
  "$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "${TORCH_SPEC:-torch}"
  "$PY" -m pip install -q -r requirements.txt pytest hypothesis
fi

set +e
"$PY" -m pytest -q tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "[tests] pytest collected no tests"
  exit 0
fi
exit "$rc"
