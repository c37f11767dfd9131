"""Tier 0: the CoS-Toy variant of the Wan2.2 workflows (tools/toy_recipe.py): which graphs it takes, the edit."""
from __future__ import annotations

import json

import pytest

from comfy_fixtures import REPO_ROOT
from test_cos_run import api_prompt
from tools.toy_recipe import TOY_FRAMES, toy_blockers, toy_rewrite
from tools.workflow_api import WorkflowError

WORKFLOWS = REPO_ROOT / "workflows"


def shipped(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(p.stem for p in WORKFLOWS.glob("wan22_i2v_*.json")))
def test_every_wan22_i2v_workflow_can_run_on_the_toy(name):
    assert toy_blockers(shipped(name)) == []


def test_ltx_and_text_to_video_graphs_are_refused_with_the_reason():
    blockers = toy_blockers(shipped("ltx23_i2v_chain_of_steps"))
    assert any("ltx-2.3-22b-dev-fp8.safetensors" in b for b in blockers), blockers
    t2v = shipped("wan22_i2v_chain_of_steps")
    t2v["nodes"] = [n for n in t2v["nodes"] if n["type"] != "LoadImage"]
    assert toy_blockers(t2v) == ["no LoadImage: CoS-Toy is an image-to-video model (its start frame is the puzzle)"]
    lora = shipped("wan22_i2v_chain_of_steps")
    lora["nodes"].append({"id": 99, "type": "LoraLoaderModelOnly", "widgets_values": ["lightx2v_4step.safetensors", 1]})
    assert toy_blockers(lora) == ["node 99 LoraLoaderModelOnly: lightx2v_4step.safetensors (CoS-Toy stands in for "
                                  "the Wan2.2 I2V experts, the Wan 2.1 VAE and umt5 only)"]


def test_rewrite_puts_the_toy_in_place_of_models_image_and_text():
    prompt = api_prompt()
    prompt["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["6", 0]}}
    prompt["15"] = {"class_type": "CoSDecodeSteps", "inputs": {"mode": "latent2rgb (fast)", "steps": "all"}}
    prompt["17"]["inputs"] |= {"mode": "vae", "vae": ["6", 0]}
    notes = toy_rewrite(prompt, "door", 7)
    assert prompt["9"]["class_type"] == "CoSToyTask"
    assert prompt["9"]["inputs"] == {"kind": "door", "seed": 7, "maze_rooms": 3}
    assert prompt["1"]["class_type"] == prompt["2"]["class_type"] == "CoSToyModel"
    assert prompt["1"]["inputs"] == {"shift": 5.0}
    assert prompt["6"] == {"class_type": "CoSToyVAE", "inputs": {}, "_meta": {"title": "CoS Toy VAE"}}
    assert not {"5", "7", "8"} & set(prompt)                   # CLIPLoader and both text encoders are gone
    assert prompt["10"]["inputs"]["positive"] == prompt["10"]["inputs"]["negative"] == ["9", 2]
    (score,) = [k for k, v in prompt.items() if v["class_type"] == "CoSToyScore"]
    assert prompt[score]["inputs"] == {"images": ["12", 0], "kind": "door", "seed": 7, "maze_rooms": 3,
                                       "frames": TOY_FRAMES}
    assert int(score) > max(int(k) for k in api_prompt())
    assert prompt["15"]["inputs"] == {"mode": "vae", "steps": "all", "vae": ["6", 0]}  # Wan's latent2rgb: wrong here
    assert prompt["17"]["inputs"]["mode"] == "vae"
    assert len(notes) == 9 and "node 9 LoadImage → CoSToyTask door seed 7" in notes


def test_rewrite_defaults_to_a_maze_and_gives_a_second_image_the_next_seed():
    prompt = api_prompt()
    prompt["13"] = {"class_type": "LoadImage", "inputs": {"image": "example_alt.png"}}
    prompt["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["6", 0]}}
    toy_rewrite(prompt)
    assert prompt["9"]["inputs"] == {"kind": "maze", "seed": 0, "maze_rooms": 3}
    assert prompt["13"]["inputs"] == {"kind": "maze", "seed": 1, "maze_rooms": 3}
    assert not [v for v in prompt.values() if v["class_type"] == "CoSToyScore"]  # two puzzles: nothing to score against


def test_rewrite_refuses_what_the_toy_cannot_give():
    prompt = api_prompt()
    prompt["30"] = {"class_type": "SetLatentNoiseMask", "inputs": {"mask": ["9", 1]}}
    with pytest.raises(WorkflowError, match="node 9 LoadImage's MASK is used"):
        toy_rewrite(prompt)
    prompt = api_prompt()
    del prompt["9"]
    with pytest.raises(WorkflowError, match="no LoadImage"):
        toy_rewrite(prompt)
    prompt = api_prompt()
    prompt["30"] = {"class_type": "SomethingWithClip", "inputs": {"clip": ["5", 0]}}
    with pytest.raises(WorkflowError, match="CLIPLoader still feeds"):
        toy_rewrite(prompt)
