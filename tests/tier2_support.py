"""Shared pieces of the tier-2 bad-input, fault, load and untrusted-file tests.

- :func:`module_server`: the body of a module-scoped ``server`` fixture (one ComfyUI server per
  test module, with the pack, the tiny stand-ins and the test-only probes of
  ``tests/server_nodes`` loaded; always stopped).
- :class:`Graph`: a tiny API-prompt builder (``g.node("Class", **inputs)``; a node passed as an
  input is a link to its first output, ``node.out(i)`` to another one).
- Tiny graph pieces (models, conditioning, latents, the CoS Sampler with small settings) and
  client helpers that expect a validation error, an execution error or success.

Sizes are kept minimal (32×32 pixels, 5 frames → 2 latent frames, 3 steps): the tests check the
machinery, not pictures, and share 2 CPU cores.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from comfy_fixtures import SKIP_REASON, comfy_path

TEST_NODES = Path(__file__).resolve().parent / "server_nodes" / "cos_test_probes"
TINY_FLUX = "cos-tiny_flux_image_model.safetensors"
TINY_T2V = "cos-tiny_wan2.1_t2v.safetensors"
TINY_HIGH = "cos-tiny_wan2.2_i2v_high_noise.safetensors"
TINY_LOW = "cos-tiny_wan2.2_i2v_low_noise.safetensors"
TINY_VAE = "cos-tiny_wan_2.1_vae.safetensors"

# A tiny Flux (an image model ComfyUI detects from its weights; a flow model with no Chain-of-Steps
# adapter), built in ComfyUI's Python like tools/tiny.py builds the Wan stand-ins.
_FLUX_CODE = """
import sys, os
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from comfy.cli_args import args; args.cpu = True
import torch, comfy.ops, comfy.ldm.flux.model
from safetensors.torch import save_file
from tools.tiny import _init
with torch.device("meta"):
    m = comfy.ldm.flux.model.Flux(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768,
        context_in_dim=4096, hidden_size=128, mlp_ratio=4.0, num_heads=1, depth=1, depth_single_blocks=1,
        axes_dim=[16, 56, 56], theta=10000, patch_size=2, qkv_bias=True, guidance_embed=False, txt_ids_dims=[],
        operations=comfy.ops.disable_weight_init)
sd = _init(dict(m.state_dict()), 7)
tmp = sys.argv[3] + ".tmp"
save_file({k: v.contiguous() for k, v in sd.items()}, tmp)
os.replace(tmp, sys.argv[3])
"""


def write_tiny_flux(python: str, root: Path, models: Path) -> None:
    from tools.comfy_server import REPO_ROOT

    target = models / "diffusion_models" / TINY_FLUX
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([python, "-c", _FLUX_CODE, str(root), str(REPO_ROOT), str(target)], cwd=str(REPO_ROOT),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"writing the tiny Flux failed:\n{done.stderr[-3000:]}")


def module_server(tmp_path_factory, extra_args=(), flux: bool = False):
    """Generator body of a module-scoped ``server`` fixture: ``yield from module_server(...)``."""
    root = comfy_path()
    if root is None:
        pytest.skip(SKIP_REASON)
    from tools.comfy_server import ComfyServer, comfy_python, write_tiny_models

    class ProbedServer(ComfyServer):
        """The runner's server plus the test-only probes (tests/server_nodes)."""

        def _prepare(self):
            args = super()._prepare()
            (self.root / "custom_nodes" / TEST_NODES.name).symlink_to(TEST_NODES, target_is_directory=True)
            return args

    python = comfy_python(root)
    models = write_tiny_models(python, root, tmp_path_factory.mktemp("tiny_models"))
    if flux:
        write_tiny_flux(python, root, models)
    srv = ProbedServer(root, python=python, cpu=True, tiny_models=models, extra_args=list(extra_args),
                       log=lambda *_: None)
    try:
        srv.start()
        if "CoSTestInspectModel" not in srv.object_info:
            raise RuntimeError(f"the test probes did not load; log ends:\n{srv.log_tail(60)}")
        yield srv
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# building prompts
# ---------------------------------------------------------------------------------------------

class Node:
    def __init__(self, node_id: str):
        self.id = node_id

    def out(self, index: int) -> list:
        return [self.id, index]


class Graph:
    """An API-format prompt under construction."""

    def __init__(self):
        self.prompt: dict[str, dict] = {}

    def node(self, class_type: str, **inputs) -> Node:
        node_id = str(len(self.prompt) + 1)
        self.prompt[node_id] = {"class_type": class_type,
                                "inputs": {k: ([v.id, 0] if isinstance(v, Node) else v) for k, v in inputs.items()}}
        return Node(node_id)

    def set(self, node: Node, **inputs) -> None:
        self.prompt[node.id]["inputs"].update({k: ([v.id, 0] if isinstance(v, Node) else v) for k, v in inputs.items()})

    def drop(self, node: Node, *names: str) -> None:
        for name in names:
            self.prompt[node.id]["inputs"].pop(name, None)


def wan_model(g: Graph, name: str = TINY_T2V) -> Node:
    """UNETLoader → ModelSamplingSD3 (shift 5), as the Wan2.2 template wires it."""
    return g.node("ModelSamplingSD3", model=g.node("UNETLoader", unet_name=name, weight_dtype="default"), shift=5.0)


def conditioning(g: Graph, text: str = "a tiny test") -> tuple[Node, Node]:
    return g.node("CoSTinyTextEncode", text=text), g.node("CoSTinyTextEncode", text="negative " + text)


def video_latent(g: Graph, frames: int = 5, size: int = 32, batch: int = 1) -> Node:
    return g.node("EmptyHunyuanLatentVideo", width=size, height=size, length=frames, batch_size=batch)


def sampler_inputs(**overrides) -> dict:
    values = dict(seed=1, steps=3, cfg=3.5, sampler_name="euler", scheduler="simple", switch_mode="step",
                  boundary=0.9, switch_step=1, capture_steps="all", stop_after_step=-1, preview_frames=0)
    values.update(overrides)
    return values


def t2v_run(g: Graph, **overrides) -> tuple[Node, Node, tuple[Node, Node], Node]:
    """A CoS Sampler on the tiny Wan2.1 T2V: returns (sampler, model, (positive, negative), latent)."""
    model = wan_model(g)
    pos, neg = conditioning(g)
    latent = video_latent(g)
    sampler = g.node("CoSSampler", model_high=model, positive=pos, negative=neg, latent=latent,
                     **sampler_inputs(**overrides))
    return sampler, model, (pos, neg), latent


def ksampler(g: Graph, model: Node, pos: Node, neg: Node, latent, seed: int = 1, steps: int = 3, cfg: float = 3.5,
             sampler_name: str = "euler") -> Node:
    return g.node("KSampler", model=model, positive=pos, negative=neg, latent_image=latent, seed=seed, steps=steps,
                  cfg=cfg, sampler_name=sampler_name, scheduler="simple", denoise=1.0)


# ---------------------------------------------------------------------------------------------
# running prompts
# ---------------------------------------------------------------------------------------------

def post_prompt(client, prompt: dict) -> tuple[int, dict]:
    """``POST /prompt`` as is: (HTTP status, JSON answer), 400 included."""
    import urllib.error

    try:
        return 200, client.request("/prompt", body={"prompt": prompt, "client_id": client.client_id})
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def rejected(client, prompt: dict) -> dict:
    """Queue a prompt that must fail validation as a whole (HTTP 400); returns the server's answer.

    ComfyUI answers 200 and runs the valid outputs when only some outputs fail validation (their
    errors are then in the answer's ``node_errors``), so the prompts given here have one output.
    """
    status, body = post_prompt(client, prompt)
    if status == 200:
        wait_all(client, [body["prompt_id"]])
    assert status == 400, f"the prompt was accepted ({status}): {json.dumps(body)[:2000]}"
    return body


def node_error_text(body: dict, node: Node | str) -> str:
    node_id = node.id if isinstance(node, Node) else node
    errors = (body.get("node_errors") or {}).get(node_id, {}).get("errors", [])
    assert errors, f"no validation error on node {node_id}: {json.dumps(body)[:2000]}"
    return " | ".join(f"{e.get('type')}: {e.get('message')}: {e.get('details')}" for e in errors)


def names_input(message: str, name: str) -> bool:
    """Whether an error message of the pack names ``name`` as the faulty input: its messages start
    with the input(s), ``"<input>[, <input>...]: <what is wrong>"``."""
    head = message.strip().split(":", 1)[0]
    return ":" in message and name in [part.strip() for part in head.split(",")]


def validation_names_input(body: dict, node: Node | str, name: str) -> bool:
    """Whether the validation errors of ``node`` name ``name``: ComfyUI's own checks put the input in
    ``details``; a ``validate_inputs`` message comes as ``"<input> - <message>"``."""
    node_id = node.id if isinstance(node, Node) else node
    for err in (body.get("node_errors") or {}).get(node_id, {}).get("errors", []):
        details = str(err.get("details", ""))
        if err.get("type") == "custom_validation_failed":
            if names_input(details.split(" - ", 1)[-1], name):
                return True
        elif details == name or (err.get("extra_info") or {}).get("input_name") == name:
            return True
    return False


def failed(client, prompt: dict, timeout: float = 120) -> dict:
    """Run a prompt that must fail while executing; returns the execution_error data."""
    from tools.comfy_server import PromptFailed

    with pytest.raises(PromptFailed) as caught:
        client.run(prompt, timeout=timeout)
    assert not caught.value.interrupted, "the prompt was interrupted instead of failing"
    return caught.value.data


def succeeded(client, prompt: dict, timeout: float = 120) -> dict:
    history = client.run(prompt, timeout=timeout)
    assert history["status"]["status_str"] == "success", history["status"]
    return history


def wait_all(client, prompt_ids: list[str], timeout: float = 300) -> dict[str, dict]:
    """Wait until every queued prompt has a finished /history entry."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    while len(done) < len(prompt_ids):
        for prompt_id in prompt_ids:
            if prompt_id not in done:
                entry = client.history(prompt_id)
                if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                    done[prompt_id] = entry
        if len(done) < len(prompt_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(prompt_ids) - len(done)} prompts did not finish in {timeout} s")
            time.sleep(0.2)
    return done


def ui_output(history: dict, node: Node | str, key: str):
    node_id = node.id if isinstance(node, Node) else node
    return ((history.get("outputs") or {}).get(node_id) or {}).get(key)


def fetch_trace(client, history: dict, node: Node | str, folder: Path):
    """Download the trace a CoS Save Trace node wrote and load it."""
    from cos_core.trace import Trace

    (entry,) = ui_output(history, node, "cos_trace")
    data = client.view(entry["filename"], entry["subfolder"], entry["type"])
    path = folder / f"{entry['subfolder'].replace('/', '_')}_{entry['filename']}"
    path.write_bytes(data)
    return Trace.load(path)


def inspect_shared_model(client, name: str = TINY_T2V, graph: Graph | None = None) -> dict:
    """What is attached to the shared (cached) UNETLoader → ModelSamplingSD3 MODEL right now."""
    g = graph or Graph()
    probe = g.node("CoSTestInspectModel", model=wan_model(g, name))
    history = succeeded(client, g.prompt)
    (report,) = ui_output(history, probe, "cos_inspect")
    return report


def clean_model_report(report: dict) -> dict:
    """The parts of an inspection that must be empty on an untouched MODEL."""
    return {k: report[k] for k in ("patches_replace", "patches", "option_wrappers", "option_callbacks", "wrappers",
                                   "callbacks", "object_patches", "weight_patches", "forward_hooks")}


EMPTY_MODEL = {"patches_replace": {}, "patches": [], "option_wrappers": [], "option_callbacks": [], "wrappers": [],
               "callbacks": [], "object_patches": [], "weight_patches": 0, "forward_hooks": 0}


def stray_files(output_dir: Path) -> list[str]:
    """Temporary or hidden files anywhere under the output folder (half-written outputs)."""
    return sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*")
                  if p.is_file() and (p.name.startswith(".") or p.suffix in (".tmp", ".part")))


def same_trace(a, b) -> list[str]:
    """Differences between two traces (steps, σ, experts, tensors bit for bit); [] when equal."""
    problems = []
    if a.steps != b.steps:
        return [f"steps {a.steps} != {b.steps}"]
    for s in a.steps:
        ra, rb = a[s], b[s]
        if (ra.sigma, ra.stage, ra.expert) != (rb.sigma, rb.stage, rb.expert):
            problems.append(f"step {s}: {(ra.sigma, ra.stage, ra.expert)} != {(rb.sigma, rb.stage, rb.expert)}")
        if sorted(ra.tensors) != sorted(rb.tensors):
            problems.append(f"step {s}: tensors {sorted(ra.tensors)} != {sorted(rb.tensors)}")
            continue
        for name, t in ra.tensors.items():
            if not t.equal(rb.tensors[name]):
                problems.append(f"step {s}: {name} differs")
    return problems
