"""Socket types the pack adds to ComfyUI."""
from comfy_api.latest import io

# A cos_core Trace (a finished run) or a TraceHandle (filled while a patched model samples).
CosTrace = io.Custom("COS_TRACE")

# A cos_core.perturb.NoiseInjection, for the CoS Sampler and the sweeps.
CosPerturb = io.Custom("COS_PERTURB")
