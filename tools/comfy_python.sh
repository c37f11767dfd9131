# Sourced by tools/main.sh and tools/test.sh: sets COMFY_PY to the Python that runs ComfyUI.
# Order: $COMFYUI_PYTHON, $COMFYUI_PATH/.venv, $COMFYUI_PATH/venv, then python3 on PATH.
comfy_python() {
  if [ -n "${COMFYUI_PYTHON:-}" ]; then COMFY_PY="$COMFYUI_PYTHON"; return; fi
  local root="${COMFYUI_PATH:-}"
  for candidate in "$root/.venv/bin/python" "$root/venv/bin/python"; do
    if [ -n "$root" ] && [ -x "$candidate" ]; then COMFY_PY="$candidate"; return; fi
  done
  COMFY_PY="$(command -v python3)"
}
