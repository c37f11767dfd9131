"""CoS Information Flow: the noise-injection sweep and its CKA heatmap (paper Sec. 3.2, Fig. 3c).

One clean run, then one perturbed run per injection. For "noise at step s" the perturbed run
starts from the clean run's recorded x_s (model space) instead of sampling steps 0..s−1 again:
with N injections the sweep costs S + Σ(S − s) steps instead of (N + 1)·S. "Noise at frame f"
perturbs every step, so each of its runs is a whole trajectory.
"""
from __future__ import annotations

import json
from pathlib import Path

import comfy.model_management
import comfy.utils
from comfy_api.latest import io, ui

from ..cos_core.files import write_new
from ..cos_core.flow import flow_figure, flow_matrix, sensitivity
from ..cos_core.perturb import MODES, NoiseInjection
from ..cos_core.render import pil_to_tensor
from ..cos_core.steps import SpecError, parse_spec, spec_ranges
from .adapters import nest, split_streams
from .sampler import check_settings, run_inputs, run_optional_inputs
from .sampling import plan_run, sample_run
from .trace_io import output_target


def sweep_cost(mode: str, injections: list[int], total_steps: int) -> dict:
    """Trajectories and model steps of a sweep, with the prefix reuse of step injections."""
    perturbed = sum(total_steps - s if mode == "step" else total_steps for s in injections)
    return {"trajectories": len(injections) + 1, "steps_evaluated": total_steps + perturbed,
            "steps_without_prefix_reuse": (len(injections) + 1) * total_steps}


class CoSInformationFlow(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="CoSInformationFlow",
            display_name="CoS Information Flow",
            category="Chain-of-Steps/perturb",
            description=("Runs the clean trajectory and one perturbed trajectory per injection, and draws the CKA "
                         "dissimilarity of x̂0 between them (injection × observed step, paper Fig. 3c) with the "
                         "sensitivity of each injection. Step noise runs resume from the clean run's state."),
            inputs=[
                *run_inputs(),
                io.Combo.Input("mode", options=list(MODES), default="step",
                               tooltip="step: noise at each chosen step (all frames); frame: noise at each chosen "
                               "latent frame (every step)."),
                io.String.Input("injections", default="all",
                                tooltip="Which steps (mode step) or latent frames (mode frame) to inject at: "
                                "'all', '0,5,10', '0-19'."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.05,
                               tooltip="λ: 1 replaces by noise, smaller values blend."),
                io.Int.Input("noise_seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the injected noise."),
                io.String.Input("filename_prefix", default="chain_of_steps/information_flow",
                                tooltip="The numbers are saved as JSON and CSV here, inside the output folder."),
                *run_optional_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="heatmap", tooltip="Injection × observed step, and sensitivity."),
                io.String.Output(display_name="numbers", tooltip="The matrix and the sweep's cost, as JSON."),
            ],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, steps=None, switch_mode=None, boundary=None, switch_step=None, mode=None,
                        injections=None, strength=None):
        message = check_settings(steps, "all", switch_mode, boundary, switch_step)
        if message is not True:
            return message
        if mode is not None and mode not in MODES:
            return f"mode: '{mode}' is not one of {list(MODES)}"
        if strength is not None and not 0.0 <= strength <= 1.0:
            return f"strength: λ = {strength} must lie in [0, 1]"
        try:
            if injections is not None:
                if mode == "step" and steps:
                    parse_spec(injections, steps, name="injections")
                else:
                    spec_ranges(injections, "injections")
        except SpecError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler, switch_mode,
                boundary, switch_step, mode, injections, strength, noise_seed, filename_prefix, model_low=None,
                noise=None, sampler=None) -> io.NodeOutput:
        run = plan_run(model_high, positive, negative, latent, seed, steps, cfg, sampler_name, scheduler,
                       switch_mode, boundary, switch_step, model_low=model_low, noise=noise, sampler=sampler)
        total = run.total_steps
        frames = run.latent_image.shape[2]
        chosen = parse_spec(injections, total if mode == "step" else frames, name="injections")
        plans = {i: NoiseInjection(mode, i, float(strength), int(noise_seed)) for i in chosen}
        for injection in plans.values():
            injection.validate(total, frames)
        folder, name = output_target(filename_prefix)
        cost = sweep_cost(mode, chosen, total)
        pbar = comfy.utils.ProgressBar(cost["steps_evaluated"], node_id=cls.hidden.unique_id)

        def recording(x0_store, x_store=None):
            def stage_callback(index, expert, start, end, model):
                def callback(step, x0, x, total_steps):
                    x0_store[start + step] = split_streams(x0)[0].detach().to("cpu")  # video x̂0 (LTX-2 AV too)
                    if x_store is not None:
                        x_store[start + step] = nest([t.detach().to("cpu") for t in split_streams(x)])
                    pbar.update(1)
                return callback
            return stage_callback

        clean_x0, clean_x = {}, {}
        sample_run(run, recording(clean_x0, clean_x))
        perturbed = {}
        for index, injection in plans.items():
            comfy.model_management.throw_exception_if_processing_interrupted()
            store = perturbed[index] = {}
            if mode == "step" and index > 0:
                sample_run(run, recording(store), injection=injection, start_step=index, start_x=clean_x[index])
            else:
                sample_run(run, recording(store), injection=injection)

        matrix = flow_matrix(clean_x0, perturbed, total)
        numbers = {"mode": mode, "injections": chosen, "observed_steps": list(range(total)),
                   "sigmas": run.meta["sigmas"], "switch_step": run.switch, "strength": strength,
                   "noise_seed": noise_seed, "measure": "1 - CKA_linear of x̂0 (model space), tokens × channels",
                   "dissimilarity": matrix.round(6).tolist(), "sensitivity": sensitivity(matrix).round(6).tolist(),
                   **cost}
        text = json.dumps(numbers, indent=1)
        write_new(folder, name, ".json", lambda tmp: Path(tmp).write_text(text))
        csv = "injection," + ",".join(f"t{t}" for t in range(total)) + "\n" + "\n".join(
            f"{i}," + ",".join(f"{v:.6f}" for v in row) for i, row in zip(chosen, matrix))
        write_new(folder, name, ".csv", lambda tmp: Path(tmp).write_text(csv + "\n"))
        title = (f"Information flow: noise at {'step' if mode == 'step' else 'frame'} (λ={strength:g}), "
                 f"CKA dissimilarity of x̂0 — {cost['trajectories']} trajectories, "
                 f"{cost['steps_evaluated']} of {cost['steps_without_prefix_reuse']} steps")
        image = pil_to_tensor(flow_figure(matrix, chosen, mode, title, run.meta["sigmas"], run.switch))
        return io.NodeOutput(image, text, ui=ui.PreviewImage(image, cls=cls))
