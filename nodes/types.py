"""Socket types the pack adds to ComfyUI."""
from comfy_api.latest import io

# A cos_core Trace (a finished run) or a TraceHandle (filled while a patched model samples).
CosTrace = io.Custom("COS_TRACE")
