"""What the nodes send to the web extension (in process, tiny models; needs ``COMFYUI_PATH``).

- CoS Decode Steps' ``cos_steps``: one small JPEG strip per grid row in ComfyUI's temp folder, with the
  step, σ and expert of each; and the "batch items × frames" layout.
- CoS Energy Maps' ``cos_energy``: every cell's pixel box inside the saved picture, with its layer,
  frame and energy (the mean over the box's tokens equals the probe's map).
- The CoS Sampler's named websocket event ``chain_of_steps.preview``, sent through
  ``PromptServer.send_sync`` (a stand-in server here) with a JPEG data URL, never from the worker thread.
"""
from __future__ import annotations

import base64
import io
import os
import sys
import threading
import types

import pytest

pytestmark = [pytest.mark.comfy, pytest.mark.usefixtures("pack")]


@pytest.fixture(scope="module")
def run(tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    node = CoSSampler.PREPARE_CLASS_CLONE(None)
    return node.execute(model_high=tiny.high, model_low=tiny.low, positive=i2v_inputs.positive,
                        negative=i2v_inputs.negative, latent=i2v_inputs.latent, seed=3, steps=5, cfg=3.5,
                        sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9, switch_step=2,
                        capture_steps="all", preview_frames=3).result


def temp_file(entry) -> str:
    import folder_paths

    assert entry["type"] == "temp"
    return os.path.join(folder_paths.get_temp_directory(), entry["subfolder"], entry["filename"])


def test_decode_steps_sends_one_strip_per_step(run):
    from PIL import Image

    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps

    out = CoSDecodeSteps.PREPARE_CLASS_CLONE(None).execute(run[2], "latent2rgb (fast)", "grid: steps × frames",
                                                           "all", 3, -1)
    ui = out.ui if isinstance(out.ui, dict) else out.ui.as_dict()
    assert ui["images"], "the grid preview stays"
    (payload,) = ui["cos_steps"]
    assert [e["step"] for e in payload["steps"]] == [0, 1, 2, 3, 4]
    assert [e["expert"] for e in payload["steps"]] == ["high", "high", "low", "low", "low"]
    assert payload["steps"][0]["sigma"] == pytest.approx(1.0)
    assert len(payload["frame_labels"]) == 3 and payload["total_steps"] == 5
    for entry in payload["steps"]:
        with Image.open(temp_file(entry["image"])) as im:
            assert im.format == "JPEG"
            assert im.size == (3 * payload["frame_width"], payload["frame_height"])


def test_batch_items_layout_shows_every_item_at_the_last_recorded_step(tiny, i2v_inputs):
    from chain_of_steps_pack.nodes.decode import CoSDecodeSteps
    from chain_of_steps_pack.nodes.ensemble import CoSSeedEnsemble
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    high, low, latent, noise, sampler = CoSSeedEnsemble.PREPARE_CLASS_CLONE(None).execute(
        tiny.high, i2v_inputs.latent, 3, 5, "0", "1-2", 0.0, "per layer", "all", model_low=tiny.low).result
    trace = CoSSampler.PREPARE_CLASS_CLONE(None).execute(
        model_high=high, model_low=low, positive=i2v_inputs.positive, negative=i2v_inputs.negative, latent=latent,
        seed=5, steps=5, cfg=3.5, sampler_name="euler", scheduler="simple", switch_mode="step", boundary=0.9,
        switch_step=2, capture_steps="all", stop_after_step=1, preview_frames=0, noise=noise,
        sampler=sampler).result[2]
    node = CoSDecodeSteps.PREPARE_CLASS_CLONE(None)
    items = node.execute(trace, "latent2rgb (fast)", "grid: batch items × frames", "all", 3, -1).result[0]
    one = node.execute(trace, "latent2rgb (fast)", "grid: steps × frames", "1", 3, -1).result[0]
    assert items.shape[1] > 2 * one.shape[1] * 0.8, "three rows (items) against one row (a step)"
    with pytest.raises(ValueError, match="step"):
        node.execute(trace, "latent2rgb (fast)", "grid: batch items × frames", "all", 3, 4)


@pytest.fixture(scope="module")
def probed(tiny, i2v_inputs):
    import nodes

    from chain_of_steps_pack.nodes.probe import CoSLayerProbe

    high, low, handle = CoSLayerProbe.PREPARE_CLASS_CLONE(None).execute(
        tiny.high, layers="all", steps="all", cfg_half="cond", energy=True, pca=True,
        pca_basis="shared (first probed step)", raw_states=False, raw_cap_mib=64, model_low=tiny.low).result
    sampler = nodes.KSamplerAdvanced()
    (mid,) = sampler.sample(high, "enable", 1, 4, 3.5, "euler", "simple", i2v_inputs.positive, i2v_inputs.negative,
                            i2v_inputs.latent, 0, 2, "enable")
    sampler.sample(low, "disable", 1, 4, 3.5, "euler", "simple", i2v_inputs.positive, i2v_inputs.negative, mid, 2,
                   10000, "disable")
    return handle.snapshot()


@pytest.mark.parametrize("view", ["energy grid (layers × frames)", "PCA grid (layers × frames)"])
def test_energy_maps_send_the_cell_layout(probed, view):
    from PIL import Image

    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps

    out = CoSEnergyMaps.PREPARE_CLASS_CLONE(None).execute(probed, view, 1, "all", "global", 0, "cond")
    ui = out.ui if isinstance(out.ui, dict) else out.ui.as_dict()
    assert "images" not in ui, "the grid is shown by the energy viewer"
    (payload,) = ui["cos_energy"]
    frames = probed[1].tensors["energy/L00/cond"].shape[1]
    assert len(payload["cells"]) == 4 * frames and payload["layers"] == [0, 1, 2, 3]
    assert payload["step"] == 1 and payload["sigma"] == pytest.approx(probed[1].sigma)
    with Image.open(temp_file(payload["image"])) as im:
        assert list(im.size) == payload["size"]
    for cell in payload["cells"]:
        left, top, right, bottom = cell["box"]
        assert 0 <= left < right <= payload["size"][0] and 0 <= top < bottom <= payload["size"][1]
        expected = probed[1].tensors[f"energy/L{cell['layer']:02d}/cond"][0, cell["column"]].float()
        assert cell["mean"] == pytest.approx(float(expected.mean()), rel=1e-5)
        assert cell["max"] == pytest.approx(float(expected.max()), rel=1e-5)


def test_curves_stay_plain_previews(probed):
    from chain_of_steps_pack.nodes.energy_maps import CoSEnergyMaps

    out = CoSEnergyMaps.PREPARE_CLASS_CLONE(None).execute(probed, "mean energy across steps", 0, "all", "global", 0,
                                                          "cond")
    ui = out.ui if isinstance(out.ui, dict) else out.ui.as_dict()
    assert ui["images"] and "cos_energy" not in ui


def test_live_preview_event_goes_through_the_server_from_the_sampler_thread(run, tiny, i2v_inputs, monkeypatch):
    from PIL import Image

    from chain_of_steps_pack.nodes.live_preview import PREVIEW_EVENT
    from chain_of_steps_pack.nodes.sampler import CoSSampler

    sent, threads = [], set()

    class Server:
        client_id = "client-1"

        def send_sync(self, event, data, sid=None):
            threads.add(threading.current_thread().name)
            sent.append((event, data, sid))

    fake = types.ModuleType("server")
    fake.PromptServer = types.SimpleNamespace(instance=Server())
    monkeypatch.setitem(sys.modules, "server", fake)
    node = CoSSampler.PREPARE_CLASS_CLONE(None)
    node.execute(model_high=tiny.high, model_low=tiny.low, positive=i2v_inputs.positive, negative=i2v_inputs.negative,
                 latent=i2v_inputs.latent, seed=4, steps=6, cfg=3.5, sampler_name="euler", scheduler="simple",
                 switch_mode="step", boundary=0.9, switch_step=3, capture_steps="-1", preview_frames=2)
    assert sent and {e for e, _, _ in sent} == {PREVIEW_EVENT} and {s for _, _, s in sent} == {"client-1"}
    assert not any(name.startswith("cos-preview") for name in threads), "sent from the worker thread"
    steps = [d["step"] for _, d, _ in sent]
    assert steps == sorted(steps) and steps[-1] == 5, "the last step's picture is sent too"
    data = sent[-1][1]
    assert data["total"] == 6 and data["expert"] == "low" and data["frames"] == [0, 2]
    assert data["image"].startswith("data:image/jpeg;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(data["image"].split(",", 1)[1])))
    assert picture.size == (data["width"], data["height"]) and 0 < data["strip_top"] < data["height"]


def test_no_server_no_event(run, tiny, i2v_inputs, monkeypatch):
    from chain_of_steps_pack.nodes.live_preview import preview_sender

    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert preview_sender() is None
