#!/usr/bin/env bash
# The main job in one command: run the shipped Chain-of-Steps workflow headless and save its outputs.
#
#   COMFYUI_PATH=/path/to/ComfyUI bash tools/main.sh --out out/              # real Wan2.2 weights
#   COMFYUI_PATH=/path/to/ComfyUI bash tools/main.sh --tiny --out out/       # CoS-Toy on a CPU, no downloads
#   COMFYUI_PATH=/path/to/ComfyUI bash tools/main.sh --tiny random --out out/  # Wan2.2 graph, random stand-ins
#   bash tools/main.sh --server http://127.0.0.1:8188 --out out/             # a running ComfyUI with the pack
#
# It picks ComfyUI's Python (tools/comfy_python.sh: COMFYUI_PYTHON, $COMFYUI_PATH/.venv or /venv, python3), installs
# the pack's requirements.txt into it only when one of them does not import, and runs
# `python -m tools.cos_run "$@"` from the repository root. All options: bash tools/main.sh --help
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

want_server=0
want_help=0
for arg in "$@"; do
  case "$arg" in
    --server|--server=*) want_server=1 ;;
    -h|--help) want_help=1 ;;
  esac
done

if [[ -z "${COMFYUI_PATH:-}" && $want_server -eq 0 && $want_help -eq 0 ]]; then
  cat >&2 <<'EOF'
Chain-of-Steps needs ComfyUI to run its workflow. Either
  - point COMFYUI_PATH at a ComfyUI checkout (it is started here, with this pack loaded from this
    repository and temporary output folders; your ComfyUI's own folders are not touched):
        COMFYUI_PATH=/path/to/ComfyUI bash tools/main.sh --tiny --out out/
  - or pass the URL of a running ComfyUI that has this pack installed in its custom_nodes:
        bash tools/main.sh --server http://127.0.0.1:8188 --out out/
EOF
  exit 2
fi

# Relative --out / --image / --workflow paths mean the caller's folder, not the repository's.
export COS_RUN_CWD="$PWD"
cd "$repo"
source tools/comfy_python.sh
comfy_python
python="$COMFY_PY"

# The pack's requirements must import in ComfyUI's Python (it loads the pack); the runner itself
# only needs the standard library, so with --server alone nothing is installed.
if [[ -n "${COMFYUI_PATH:-}" || -n "${COMFYUI_PYTHON:-}" ]]; then
  if ! "$python" - requirements.txt <<'EOF'
import importlib.util, re, sys
names = {"pillow": "PIL"}
missing = []
for line in open(sys.argv[1], encoding="utf-8"):
    req = re.split(r"[\s#;<>=!~\[]", line.strip(), maxsplit=1)[0]
    if req:
        module = names.get(req.lower(), req.replace("-", "_"))
        if importlib.util.find_spec(module) is None:
            missing.append(req)
if missing:
    print("missing in ComfyUI's Python: " + ", ".join(missing), file=sys.stderr)
    sys.exit(1)
EOF
  then
    echo "[cos] installing the pack's requirements into $python" >&2
    "$python" -m pip install -r requirements.txt
  fi
fi

exec "$python" -m tools.cos_run "$@"
