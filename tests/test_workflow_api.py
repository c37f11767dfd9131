"""Tier 0: UI-format → API-format conversion (tools/workflow_api.py) on a hand-written object_info."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.workflow_api import WorkflowError, expected_widget_count, find_nodes, ui_to_api, widget_slots

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = REPO_ROOT / "workflows" / "wan22_i2v_chain_of_steps.json"

# A small /object_info, shaped like ComfyUI v0.33's answer for these nodes.
OBJECT_INFO = {
    "UNETLoader": {"input": {"required": {"unet_name": [["a.safetensors", "b.safetensors"], {}],
                                          "weight_dtype": [["default", "fp8_e4m3fn"], {"advanced": True}]}},
                   "input_order": {"required": ["unet_name", "weight_dtype"]}, "output": ["MODEL"]},
    "ModelSamplingSD3": {"input": {"required": {"model": ["MODEL", {}], "shift": ["FLOAT", {"default": 3.0}]}},
                         "input_order": {"required": ["model", "shift"]}, "output": ["MODEL"]},
    "KSamplerAdvanced": {
        "input": {"required": {
            "model": ["MODEL", {}], "add_noise": [["enable", "disable"], {"advanced": True}],
            "noise_seed": ["INT", {"default": 0, "control_after_generate": True}], "steps": ["INT", {}],
            "cfg": ["FLOAT", {}], "sampler_name": [["euler", "heun"], {}], "scheduler": [["simple"], {}],
            "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}], "latent_image": ["LATENT", {}],
            "start_at_step": ["INT", {"advanced": True}], "end_at_step": ["INT", {"advanced": True}],
            "return_with_leftover_noise": [["disable", "enable"], {"advanced": True}]}},
        "input_order": {"required": ["model", "add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler",
                                     "positive", "negative", "latent_image", "start_at_step", "end_at_step",
                                     "return_with_leftover_noise"]},
        "output": ["LATENT"]},
    "OldSeedNode": {"input": {"required": {"seed": ["INT", {"default": 0}], "text": ["STRING", {}]}},
                    "output": ["STRING"]},
    "CoSSampler": {
        "input": {"required": {
            "model_high": ["MODEL", {}], "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
            "latent": ["LATENT", {}], "seed": ["INT", {"control_after_generate": True}], "steps": ["INT", {}],
            "cfg": ["FLOAT", {}], "sampler_name": ["COMBO", {"options": ["euler", "heun"]}],
            "capture_steps": ["STRING", {}], "preview_frames": ["INT", {"advanced": True}]},
            "optional": {"model_low": ["MODEL", {}], "noise": ["NOISE", {}]}},
        "input_order": {"required": ["model_high", "positive", "negative", "latent", "seed", "steps", "cfg",
                                     "sampler_name", "capture_steps", "preview_frames"],
                        "optional": ["model_low", "noise"]},
        "output": ["LATENT", "LATENT", "COS_TRACE"]},
    "CreateVideo": {"input": {"required": {"images": ["IMAGE", {}], "fps": ["FLOAT", {}]},
                              "optional": {"audio": ["AUDIO", {}], "bit_depth": ["INT", {"default": 8}]}},
                    "input_order": {"required": ["images", "fps"], "optional": ["audio", "bit_depth"]},
                    "output": ["VIDEO"]},
    "SaveVideo": {
        "input": {"required": {
            "video": ["VIDEO", {}], "filename_prefix": ["STRING", {}],
            "format": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                {"key": "auto", "inputs": {"required": {"codec": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                    {"key": "auto", "inputs": {"required": {}}},
                    {"key": "h264", "inputs": {"required": {}, "optional": {"encoding": ["COMFY_DYNAMICCOMBO_V3", {
                        "options": [{"key": "auto", "inputs": {"required": {}}},
                                    {"key": "re-encode", "inputs": {"required": {"crf": ["FLOAT", {}]}}}]}]}}}]}]}}},
                {"key": "webm", "inputs": {"required": {}}}]}]}},
            "input_order": {"required": ["video", "filename_prefix", "format"]}, "output": ["VIDEO"]},
    "LoadImage": {"input": {"required": {"image": [["example.png"], {"image_upload": True}]}},
                  "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"]},
    "RandomCombo": {"input": {"required": {"choice": [["a", "b"], {"control_after_generate": True}],
                                           "strength": ["FLOAT", {}]}}, "output": ["STRING"]},
    "ListWidget": {"input": {"required": {"values": ["FLOAT", {}], "flag": ["BOOLEAN", {}],
                                          "hidden_link": ["INT", {"forceInput": True}]}}, "output": ["FLOAT"]},
    "Passthrough": {"input": {"required": {"model": ["MODEL", {}], "strength": ["FLOAT", {}]}},
                    "output": ["MODEL"]},
}


def node(node_id, kind, widgets=None, inputs=(), mode=0, outputs=(), title=None):
    out = {"id": node_id, "type": kind, "mode": mode, "widgets_values": widgets if widgets is not None else [],
           "inputs": [dict(name=n, type=t, link=link) for n, t, link in inputs],
           "outputs": [dict(name=n, type=t) for n, t in outputs]}
    if title:
        out["title"] = title
    return out


def workflow(nodes, links=()):
    return {"nodes": nodes, "links": [list(link) for link in links], "version": 0.4}


def test_widgets_are_positional_with_control_after_generate_skipped():
    wf = workflow([
        node(1, "UNETLoader", ["b.safetensors", "default"], outputs=[("MODEL", "MODEL")]),
        node(2, "KSamplerAdvanced", ["enable", 264, "randomize", 20, 3.5, "euler", "simple", 0, 10, "enable"],
             inputs=[("model", "MODEL", 1)]),
    ], links=[(1, 1, 0, 2, 0, "MODEL")])
    api = ui_to_api(wf, OBJECT_INFO, strict=True)
    assert api["1"] == {"class_type": "UNETLoader", "inputs": {"unet_name": "b.safetensors", "weight_dtype": "default"},
                        "_meta": {"title": "UNETLoader"}}
    ks = api["2"]["inputs"]
    assert ks == {"add_noise": "enable", "noise_seed": 264, "steps": 20, "cfg": 3.5, "sampler_name": "euler",
                  "scheduler": "simple", "start_at_step": 0, "end_at_step": 10, "return_with_leftover_noise": "enable",
                  "model": ["1", 0]}


def test_seed_named_int_gets_a_control_value_even_without_the_flag():
    api = ui_to_api(workflow([node(1, "OldSeedNode", [7, "fixed", "hello"])]), OBJECT_INFO, strict=True)
    assert api["1"]["inputs"] == {"seed": 7, "text": "hello"}


def test_combo_with_control_after_generate_skips_value_and_filter():
    api = ui_to_api(workflow([node(1, "RandomCombo", ["b", "fixed", "", 0.5])]), OBJECT_INFO, strict=True)
    assert api["1"]["inputs"] == {"choice": "b", "strength": 0.5}


def test_v3_sampler_with_advanced_and_optional_sockets():
    wf = workflow([
        node(1, "UNETLoader", ["a.safetensors", "default"], outputs=[("MODEL", "MODEL")]),
        node(2, "UNETLoader", ["b.safetensors", "default"], outputs=[("MODEL", "MODEL")]),
        node(3, "CoSSampler", [42, "fixed", 20, 3.5, "euler", "all", 4],
             inputs=[("model_high", "MODEL", 1), ("positive", "CONDITIONING", None),
                     ("negative", "CONDITIONING", None), ("latent", "LATENT", None), ("model_low", "MODEL", 2),
                     ("noise", "NOISE", None)]),
    ], links=[(1, 1, 0, 3, 0, "MODEL"), (2, 2, 0, 3, 4, "MODEL")])
    inputs = ui_to_api(wf, OBJECT_INFO, strict=True)["3"]["inputs"]
    assert inputs == {"seed": 42, "steps": 20, "cfg": 3.5, "sampler_name": "euler", "capture_steps": "all",
                      "preview_frames": 4, "model_high": ["1", 0], "model_low": ["2", 0]}


def test_optional_widgets_follow_required_ones():
    api = ui_to_api(workflow([node(1, "CreateVideo", [16, 8])]), OBJECT_INFO, strict=True)
    assert api["1"]["inputs"] == {"fps": 16, "bit_depth": 8}


@pytest.mark.parametrize("values,expected", [
    (["video/x", "auto", "auto"], {"filename_prefix": "video/x", "format": "auto", "format.codec": "auto"}),
    (["video/x", "auto", "h264", "re-encode", 20.0],
     {"filename_prefix": "video/x", "format": "auto", "format.codec": "h264", "format.codec.encoding": "re-encode",
      "format.codec.encoding.crf": 20.0}),
    (["video/x", "webm"], {"filename_prefix": "video/x", "format": "webm"}),
])
def test_dynamic_combo_children_follow_their_parent(values, expected):
    assert ui_to_api(workflow([node(1, "SaveVideo", values)]), OBJECT_INFO, strict=True)["1"]["inputs"] == expected
    assert expected_widget_count(OBJECT_INFO["SaveVideo"], values) == len(values)


def test_upload_button_value_is_ignored_and_strict_mode_catches_stale_values():
    api = ui_to_api(workflow([node(1, "LoadImage", ["example.png", "image"])]), OBJECT_INFO, strict=True)
    assert api["1"]["inputs"] == {"image": "example.png"}
    with pytest.raises(WorkflowError, match="left over"):
        ui_to_api(workflow([node(1, "UNETLoader", ["a.safetensors", "default", "extra"])]), OBJECT_INFO, strict=True)
    with pytest.raises(WorkflowError, match="no value for \\[.weight_dtype.\\]"):
        ui_to_api(workflow([node(1, "UNETLoader", ["a.safetensors"])]), OBJECT_INFO, strict=True)
    # not strict: a short list fills what it can
    assert ui_to_api(workflow([node(1, "UNETLoader", ["a.safetensors"])]), OBJECT_INFO)["1"]["inputs"] == \
        {"unet_name": "a.safetensors"}


def test_list_values_are_wrapped_and_force_input_is_not_a_widget():
    api = ui_to_api(workflow([node(1, "ListWidget", [[1.0, 2.0], True])]), OBJECT_INFO, strict=True)
    assert api["1"]["inputs"] == {"values": {"__value__": [1.0, 2.0]}, "flag": True}
    assert [name for name, _ in widget_slots(OBJECT_INFO["ListWidget"])] == ["values", "flag"]


def test_dict_widgets_values_map_by_name():
    api = ui_to_api(workflow([node(1, "UNETLoader", {"weight_dtype": "fp8_e4m3fn", "unet_name": "a.safetensors"})]),
                    OBJECT_INFO)
    assert api["1"]["inputs"] == {"unet_name": "a.safetensors", "weight_dtype": "fp8_e4m3fn"}


def test_a_link_wins_over_the_widget_value_of_a_converted_widget():
    wf = workflow([
        node(1, "OldSeedNode", [1, "fixed", "text"], outputs=[("STRING", "STRING")]),
        node(2, "OldSeedNode", [5, "fixed", "ignored"], inputs=[("text", "STRING", 9)]),
    ], links=[(9, 1, 0, 2, 0, "STRING")])
    assert ui_to_api(wf, OBJECT_INFO)["2"]["inputs"] == {"seed": 5, "text": ["1", 0]}


def test_frontend_only_nodes_are_dropped_and_reroutes_followed():
    wf = workflow([
        node(1, "UNETLoader", ["a.safetensors", "default"], outputs=[("MODEL", "MODEL")]),
        node(2, "Reroute", [], inputs=[("", "*", 1)], outputs=[("", "MODEL")]),
        node(3, "ModelSamplingSD3", [5.0], inputs=[("model", "MODEL", 2)]),
        node(4, "MarkdownNote", ["# hello"]),
        node(5, "Note", ["text"]),
        node(6, "PrimitiveNode", [8.0, "fixed"], outputs=[("FLOAT", "FLOAT")]),
        node(7, "ModelSamplingSD3", [8.0], inputs=[("model", "MODEL", 4), ("shift", "FLOAT", 3)]),
    ], links=[(1, 1, 0, 2, 0, "*"), (2, 2, 0, 3, 0, "MODEL"), (3, 6, 0, 7, 1, "FLOAT"), (4, 1, 0, 7, 0, "MODEL")])
    api = ui_to_api(wf, OBJECT_INFO, strict=True)
    assert sorted(api) == ["1", "3", "7"]
    assert api["3"]["inputs"] == {"shift": 5.0, "model": ["1", 0]}
    assert api["7"]["inputs"] == {"shift": 8.0, "model": ["1", 0]}  # the primitive's value is the widget value


def test_muted_and_bypassed_nodes():
    wf = workflow([
        node(1, "UNETLoader", ["a.safetensors", "default"], outputs=[("MODEL", "MODEL")]),
        node(2, "Passthrough", [1.0], inputs=[("model", "MODEL", 1)], outputs=[("MODEL", "MODEL")], mode=4),
        node(3, "ModelSamplingSD3", [5.0], inputs=[("model", "MODEL", 2)]),
        node(4, "UNETLoader", ["b.safetensors", "default"], outputs=[("MODEL", "MODEL")], mode=2),
    ], links=[(1, 1, 0, 2, 0, "MODEL"), (2, 2, 0, 3, 0, "MODEL")])
    api = ui_to_api(wf, OBJECT_INFO)
    assert sorted(api) == ["1", "3"]
    assert api["3"]["inputs"]["model"] == ["1", 0], "a bypassed node passes its input of the same type through"
    wf["nodes"][0]["mode"] = 2  # the loader muted: the required model input comes to nothing
    with pytest.raises(WorkflowError, match="node 3 'ModelSamplingSD3': input 'model'"):
        ui_to_api(wf, OBJECT_INFO)


def test_unknown_node_type_and_subgraphs_are_refused():
    with pytest.raises(WorkflowError, match="node 12 'Foo' is not installed in this ComfyUI"):
        ui_to_api(workflow([node(12, "Foo", [1])]), OBJECT_INFO)
    wf = workflow([node(1, "5f0c2b0e-aaaa", [])])
    wf["definitions"] = {"subgraphs": [{"id": "5f0c2b0e-aaaa"}]}
    with pytest.raises(WorkflowError, match="subgraph"):
        ui_to_api(wf, OBJECT_INFO)


def test_dangling_link_is_reported():
    wf = workflow([node(3, "ModelSamplingSD3", [5.0], inputs=[("model", "MODEL", 77)])])
    with pytest.raises(WorkflowError, match="link 77"):
        ui_to_api(wf, OBJECT_INFO)


def test_find_nodes_orders_ids_numerically():
    prompt = {"10": {"class_type": "A"}, "9": {"class_type": "A"}, "2": {"class_type": "B"}}
    assert find_nodes(prompt, "A") == ["9", "10"]


def test_shipped_workflow_is_a_consistent_flat_graph():
    wf = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert wf["version"] == 0.4 and not (wf.get("definitions") or {}).get("subgraphs")
    ids = [n["id"] for n in wf["nodes"]]
    assert len(ids) == len(set(ids)) and wf["last_node_id"] == max(ids)
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])
    by_id = {n["id"]: n for n in wf["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert by_id[dst]["inputs"][dst_slot]["link"] == link_id
        assert by_id[dst]["inputs"][dst_slot]["type"] == kind == by_id[src]["outputs"][src_slot]["type"]
        assert link_id in by_id[src]["outputs"][src_slot]["links"]
    types = [n["type"] for n in wf["nodes"]]
    for kind in ("UNETLoader", "CoSSampler", "CoSDecodeSteps", "CoSSaveStepVideos", "CoSSaveTrace", "SaveVideo",
                 "MarkdownNote"):
        assert kind in types
    loaders = {n["widgets_values"][0] for n in wf["nodes"] if n["type"] in ("UNETLoader", "CLIPLoader", "VAELoader")}
    assert loaders == {"wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                       "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
                       "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors"}
    assert [g["title"] for g in wf["groups"]] == ["Models", "Prompt & image", "Chain-of-Steps sampling", "Outputs"]
