"""The pack's ComfyUI nodes (V3). Each module is one feature; this file lists them."""
from comfy_api.latest import ComfyExtension, io

from .capture import CoSCaptureX0
from .convergence import CoSConvergence
from .decode import CoSDecodeSteps
from .energy_maps import CoSEnergyMaps
from .ensemble import CoSSeedEnsemble
from .info_flow import CoSInformationFlow
from .noise import CoSNoiseInjection
from .probe import CoSLayerProbe
from .resume import CoSResume
from .sampler import CoSSampler
from .swap import CoSLayerSwapSweep
from .toy import TOY_NODES
from .trace_io import CoSLoadTrace, CoSSaveTrace
from .videos import CoSSaveStepVideos

NODES: list[type[io.ComfyNode]] = [
    CoSSampler, CoSResume, CoSCaptureX0, CoSLayerProbe, CoSNoiseInjection, CoSInformationFlow, CoSSeedEnsemble,
    CoSLayerSwapSweep, CoSDecodeSteps, CoSEnergyMaps, CoSConvergence, CoSSaveStepVideos, CoSSaveTrace, CoSLoadTrace,
    *TOY_NODES,
]


class ChainOfStepsExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> ChainOfStepsExtension:
    return ChainOfStepsExtension()
