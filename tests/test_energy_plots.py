"""Tier 0: labelled energy / PCA pictures (cos_core.energy_plots), no ComfyUI."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cos_core.energy_plots import (
    NORMS,
    CurveLayout,
    GridLayout,
    cross_step_curves,
    energy_grid,
    figure_to_image,
    pca_grid,
    temporal_curves,
)
from cos_core.render import ACCENT, BACKGROUND, TEXT

FRAMES, H, W = 5, 6, 10
LABELS = [f"frame {i}" for i in range(FRAMES)]
HOT_LAYER, HOT_FRAME = 1, 3


def hot_maps(quiet=None) -> dict[int, np.ndarray]:
    """3 layers × 5 frames of ones; only frame 3 of layer 1 is hot (10). ``quiet``: values per
    frame for layers 0 and 2 instead of ones."""
    maps = {layer: np.ones((FRAMES, H, W), np.float32) for layer in (0, 1, 2)}
    if quiet is not None:
        for layer in (0, 2):
            maps[layer] *= np.asarray(quiet, np.float32)[:, None, None]
    maps[HOT_LAYER][HOT_FRAME] = 10.0
    return maps


def luminance(image: Image.Image, box, inset: int = 3) -> float:
    left, top, right, bottom = box
    rgb = np.asarray(image, dtype=np.float64)[top + inset:bottom - inset, left + inset:right - inset]
    return float((rgb @ np.array([0.299, 0.587, 0.114])).mean())


def cell_luminance(image: Image.Image, layout: GridLayout) -> dict[tuple[int, int], float]:
    return {key: luminance(image, box) for key, box in layout.cells.items()}


def centre(box) -> tuple[int, int]:
    left, top, right, bottom = box
    return (left + right) // 2, (top + bottom) // 2


def is_rgb_preview(image) -> bool:
    return isinstance(image, Image.Image) and image.mode == "RGB" and 900 <= image.width <= 1650


# ----------------------------------------------------------------------------- energy_grid


@pytest.mark.parametrize("norm", NORMS)
def test_energy_grid_is_a_labelled_rgb_image_of_preview_size(norm):
    image, layout = energy_grid(hot_maps(), LABELS, "synthetic", norm=norm, return_layout=True)
    assert is_rgb_preview(image)
    assert 150 < image.height < 2400
    assert layout.size == image.size
    text = np.all(np.asarray(image) == np.array(TEXT, np.uint8), axis=-1)
    assert text[: layout.cells[(0, 0)][1]].sum() > 200  # title and frame labels above the cells
    assert text[:, : layout.cells[(0, 0)][0]].sum() > 50  # layer labels left of the cells


def test_energy_grid_puts_layers_in_rows_sorted_and_frames_in_columns():
    maps = {39: np.ones((3, H, W)), 0: np.ones((3, H, W)), 20: np.ones((3, H, W))}
    image, layout = energy_grid(maps, ["a", "b", "c"], "order", return_layout=True)
    assert set(layout.cells) == {(layer, f) for layer in (0, 20, 39) for f in range(3)}
    sizes = {(r - l_, b - t) for l_, t, r, b in layout.cells.values()}
    assert len(sizes) == 1  # every cell the same size
    (cw, ch), = sizes
    assert abs(ch / cw - H / W) < 0.05  # the map's aspect ratio
    for f in range(3):
        tops = [layout.cells[(layer, f)][1] for layer in (0, 20, 39)]
        assert tops == sorted(tops) and len(set(tops)) == 3
    for layer in (0, 20, 39):
        lefts = [layout.cells[(layer, f)][0] for f in range(3)]
        assert lefts == sorted(lefts) and len(set(lefts)) == 3
    for left, top, right, bottom in layout.cells.values():
        assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height


def test_global_norm_shows_only_the_hot_cell_bright():
    image, layout = energy_grid(hot_maps(), LABELS, "global", norm="global", return_layout=True)
    lum = cell_luminance(image, layout)
    hot = lum.pop((HOT_LAYER, HOT_FRAME))
    assert hot > 200
    assert max(lum.values()) < 30
    assert set(layout.limits.values()) == {(1.0, 10.0)}


def test_per_layer_norm_keeps_the_hot_cell_brightest_in_its_row_and_other_rows_visible():
    image, layout = energy_grid(hot_maps(), LABELS, "per layer", norm="per layer", return_layout=True)
    lum = cell_luminance(image, layout)
    row = [lum[(HOT_LAYER, f)] for f in range(FRAMES)]
    assert max(range(FRAMES), key=row.__getitem__) == HOT_FRAME
    assert row[HOT_FRAME] > max(row[:HOT_FRAME] + row[HOT_FRAME + 1:]) + 150
    for layer in (0, 2):  # constant rows: middle colour, not black
        assert all(60 < lum[(layer, f)] < 200 for f in range(FRAMES))
    assert layout.limits == {0: (1.0, 1.0), 1: (1.0, 10.0), 2: (1.0, 1.0)}


def test_per_layer_norm_brings_up_quiet_rows_that_global_norm_leaves_dark():
    ramp = [1.0, 1.1, 1.2, 1.3, 1.4]  # quiet layers: < 5 % of the global range
    image, layout = energy_grid(hot_maps(ramp), LABELS, "g", norm="global", return_layout=True)
    lum = cell_luminance(image, layout)
    assert max(lum[(layer, f)] for layer in (0, 2) for f in range(FRAMES)) < 40
    image, layout = energy_grid(hot_maps(ramp), LABELS, "p", norm="per layer", return_layout=True)
    lum = cell_luminance(image, layout)
    for layer in (0, 2):
        row = [lum[(layer, f)] for f in range(FRAMES)]
        assert row == sorted(row)  # brighter with the ramp
        assert row[0] < 30 and row[-1] > 200
        assert layout.limits[layer] == pytest.approx((1.0, 1.4))


def test_global_grid_has_one_colour_bar_per_layer_grid_one_per_row():
    image, layout = energy_grid(hot_maps(), LABELS, "g", norm="global", return_layout=True)
    assert list(layout.colorbars) == [None]
    _, layout_rows = energy_grid(hot_maps(), LABELS, "p", norm="per layer", return_layout=True)
    assert sorted(layout_rows.colorbars) == [0, 1, 2]
    for key, box in layout_rows.colorbars.items():  # each row's bar beside its row
        assert box[1] == layout_rows.cells[(key, 0)][1] and box[3] == layout_rows.cells[(key, 0)][3]
    left, top, right, bottom = layout.colorbars[None]
    pixels = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    x = (left + right) // 2
    assert pixels[top + 4, x] > 200 and pixels[bottom - 4, x] < 30  # bright top, dark bottom: a real bar


def test_energy_grid_shows_non_finite_values_grey():
    maps = hot_maps()
    maps[0][2] = np.nan
    image, layout = energy_grid(maps, LABELS, "nan", return_layout=True)
    assert image.getpixel(centre(layout.cells[(0, 2)])) == (89, 89, 89)
    assert layout.limits[0] == (1.0, 10.0)  # NaN ignored in the colour limits


def test_maps_larger_than_their_cells_keep_an_isolated_hot_token():
    maps = {layer: np.ones((8, 20, 400), np.float32) for layer in (0, 1)}
    maps[1][5, 9, 204] = 1000.0  # one token, on a row and column that nearest-neighbour shrinking skips
    image, layout = energy_grid(maps, [str(i) for i in range(8)], "shrink", return_layout=True)
    left, top, right, bottom = layout.cells[(1, 5)]
    assert (right - left, bottom - top) == (320, 16)  # 400 × 20 tokens shrunk by 1.25
    lum = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    assert lum[top:bottom, left:right].max() > 20  # averaged over the pixels it covers, still visible
    quiet = layout.cells[(1, 4)]
    assert lum[quiet[1]:quiet[3], quiet[0]:quiet[2]].max() < 5


def test_torch_inputs_and_the_probe_batch_axis_render_like_numpy():
    maps = hot_maps()
    as_numpy = energy_grid(maps, LABELS, "t")
    as_torch = energy_grid({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in maps.items()}, LABELS, "t")
    batched = energy_grid({k: torch.from_numpy(v)[None] for k, v in maps.items()}, LABELS, "t")
    assert as_numpy.tobytes() == as_torch.tobytes() == batched.tobytes()


def test_a_full_wan_grid_fits_the_preview():
    rng = np.random.default_rng(0)
    maps = {layer: rng.gamma(2.0, 10.0, (21, 30, 52)).astype(np.float32) for layer in range(40)}
    image, layout = energy_grid(maps, [f"frame {4 * i}" for i in range(21)], "40 × 21", norm="per layer",
                                return_layout=True)
    assert is_rgb_preview(image) and image.height < 2200
    assert len(layout.cells) == 40 * 21 and len(layout.colorbars) == 40


# ----------------------------------------------------------------------------- pca_grid


def solid_colour(layer: int, frame: int) -> tuple[float, float, float]:
    return (0.1 + 0.2 * layer, 0.9 - 0.15 * frame, 0.3 + 0.1 * ((layer + frame) % 4))


def test_pca_grid_cells_show_the_input_colours():
    maps = {layer: np.empty((FRAMES, H, W, 3), np.float32) for layer in range(3)}
    for layer in maps:
        for f in range(FRAMES):
            maps[layer][f] = solid_colour(layer, f)
    tensors = {k: torch.from_numpy(v).to(torch.float16) for k, v in maps.items()}  # the probe's dtype
    image, layout = pca_grid(tensors, LABELS, "pca", return_layout=True)
    assert is_rgb_preview(image) and layout.size == image.size
    for (layer, f), box in layout.cells.items():
        want = np.array(solid_colour(layer, f)) * 255
        assert np.abs(np.array(image.getpixel(centre(box))) - want).max() <= 1.5, (layer, f)
    assert layout.colorbars == {} and layout.limits == {}


def test_pca_grid_clips_values_outside_the_unit_interval():
    rgb = np.zeros((2, H, W, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 2.0, -1.0, 0.5
    image, layout = pca_grid({7: rgb}, ["a", "b"], "clip", return_layout=True)
    assert image.getpixel(centre(layout.cells[(7, 1)])) == (255, 0, 128)


# ----------------------------------------------------------------------------- curves


def profiles(count: int, frames: int = 21) -> dict[int, np.ndarray]:
    t = np.arange(frames)
    return {layer: 50 + 3 * layer + 10 * np.sin(t / 3 + layer / 10) for layer in range(count)}


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("count", [5, 40])
def test_temporal_curves_with_few_or_many_layers(count, norm):
    labels = [f"f{4 * i}" for i in range(21)]
    image, layout = temporal_curves(profiles(count), "temporal", frame_labels=labels, norm=norm, return_layout=True)
    assert is_rgb_preview(image) and isinstance(layout, CurveLayout) and layout.size == image.size
    assert sorted(layout.colors) == list(range(count))
    assert len(set(layout.colors.values())) == count  # one colour per layer
    columns = [layout.x_pixels[float(f)] for f in range(21)]
    assert columns == sorted(columns) and layout.plot[0] < columns[0] < columns[-1] < layout.plot[2]
    if norm == "per layer":
        assert 0.5 < layout.y_range[1] < 1.1  # every curve ÷ its own max: the top is 1
    else:
        assert layout.y_range[1] > max(v.max() for v in profiles(count).values()) > 50  # raw ‖U‖₂


def test_temporal_curves_accept_torch_and_the_probe_batch_axis():
    data = profiles(3, 6)
    a = temporal_curves(data, "t")
    b = temporal_curves({k: torch.tensor(v, dtype=torch.float64)[None] for k, v in data.items()}, "t")
    assert a.tobytes() == b.tobytes()


def cross_data(layers: int = 40, steps: int = 40):
    t = np.arange(steps)
    means = {layer: list(100 + 5 * layer + 30 * np.exp(-t / 10) * (1 + layer / 40)) for layer in range(layers)}
    return list(range(steps)), means, list(np.linspace(1.0, 0.025, steps))


def accent_count(image: Image.Image, x: int, top: int, bottom: int) -> int:
    column = np.asarray(image, dtype=np.int32)[top:bottom, x]
    return int((np.abs(column - np.array(ACCENT)).max(axis=-1) < 24).sum())


@pytest.mark.parametrize("norm", NORMS)
def test_cross_step_curves_with_40_layers_sigmas_and_the_expert_switch(norm):
    steps, means, sigmas = cross_data()
    image, layout = cross_step_curves(steps, means, "40 layers", sigmas=sigmas, switch_step=15, norm=norm,
                                      return_layout=True)
    assert is_rgb_preview(image) and layout.size == image.size
    assert len(layout.colors) == 40
    assert layout.switch_x == layout.x_pixels[15.0]
    assert layout.x_pixels[14.0] < layout.switch_x < layout.x_pixels[16.0]
    _, top, _, bottom = layout.plot
    assert accent_count(image, layout.switch_x, top, bottom) > 0.3 * (bottom - top)  # the dashed line
    plain, plain_layout = cross_step_curves(steps, means, "40 layers", sigmas=sigmas, norm=norm, return_layout=True)
    assert plain_layout.switch_x is None
    assert accent_count(plain, layout.switch_x, top, bottom) < 0.05 * (bottom - top)


def test_cross_step_curves_make_room_for_the_sigma_axis():
    steps, means, sigmas = cross_data(5, 10)
    _, with_sigma = cross_step_curves(steps, means, "s", sigmas=sigmas, return_layout=True)
    _, without = cross_step_curves(steps, means, "s", return_layout=True)
    assert with_sigma.plot[1] > without.plot[1] + 30


def test_cross_step_curves_sort_steps_with_their_values():
    steps, means, sigmas = cross_data(3, 6)
    order = [3, 0, 5, 1, 4, 2]
    shuffled = cross_step_curves([steps[i] for i in order], {k: [v[i] for i in order] for k, v in means.items()},
                                 "s", sigmas=[sigmas[i] for i in order], switch_step=2)
    assert shuffled.tobytes() == cross_step_curves(steps, means, "s", sigmas=sigmas, switch_step=2).tobytes()


# ----------------------------------------------------------------------------- errors


def bad(**changes):
    args = {"maps": hot_maps(), "frame_labels": LABELS, "title": "t"}
    args.update(changes)
    return args


@pytest.mark.parametrize("args, error, pattern", [
    (bad(norm="per-layer"), ValueError, r"^norm: 'per-layer' is not one of \['global', 'per layer'\]"),
    (bad(norm="per_layer"), ValueError, r"^norm"),
    (bad(maps={}), ValueError, r"^maps: is empty"),
    (bad(maps={0: np.ones((5, H, W)), 1: np.ones((4, H, W))}), ValueError, r"^maps: .*F=5 .*F=4"),
    (bad(maps={0: np.ones((5, H, W)), 1: np.ones((5, H + 1, W))}), ValueError, r"^maps: .*same map shape"),
    (bad(maps={0: np.ones((H, W))}), ValueError, r"^maps: L00 must be \(F, H, W\)"),
    (bad(frame_labels=LABELS[:-1]), ValueError, r"^frame_labels: need 5 labels"),
    (bad(frame_labels=LABELS + ["x"]), ValueError, r"^frame_labels"),
    (bad(cmap="no-such-map"), ValueError, r"^cmap"),
    (bad(maps={"L0": np.ones((5, H, W))}), TypeError, r"^maps: keys"),
    (bad(maps=[np.ones((5, H, W))]), TypeError, r"^maps"),
])
def test_energy_grid_rejects_bad_input_naming_the_argument(args, error, pattern):
    with pytest.raises(error, match=pattern):
        energy_grid(**args)


@pytest.mark.parametrize("maps, labels, pattern", [
    ({0: np.ones((5, H, W))}, LABELS, r"^maps: L00 must be \(F, H, W, 3\)"),
    ({0: np.ones((5, H, W, 4))}, LABELS, r"^maps"),
    ({}, LABELS, r"^maps: is empty"),
    ({0: np.ones((5, H, W, 3)), 1: np.ones((3, H, W, 3))}, LABELS, r"^maps: .*F="),
    ({0: np.ones((5, H, W, 3))}, LABELS[:2], r"^frame_labels"),
])
def test_pca_grid_rejects_bad_input_naming_the_argument(maps, labels, pattern):
    with pytest.raises(ValueError, match=pattern):
        pca_grid(maps, labels, "t")


@pytest.mark.parametrize("kwargs, pattern", [
    ({"norm": "max"}, r"^norm: 'max' is not one of"),
    ({"profiles": {}}, r"^profiles: is empty"),
    ({"profiles": {0: np.ones(5), 1: np.ones(4)}}, r"^profiles: every layer needs 5 values"),
    ({"profiles": {0: np.ones((5, 2))}}, r"^profiles: L00 must be a 1-D"),
    ({"frame_labels": ["a"]}, r"^frame_labels: need 5 labels"),
])
def test_temporal_curves_reject_bad_input_naming_the_argument(kwargs, pattern):
    args = {"profiles": {0: np.ones(5), 3: np.ones(5)}, "title": "t"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        temporal_curves(**args)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"norm": "local"}, r"^norm: 'local' is not one of"),
    ({"steps": []}, r"^steps: is empty"),
    ({"steps": [0, 1, 1]}, r"^steps: must be distinct"),
    ({"steps": [0.0, 1.5, 2.0]}, r"^steps: must be a flat list of integers"),
    ({"means": {}}, r"^means: is empty"),
    ({"means": {0: [1.0, 2.0]}}, r"^means: every layer needs 3 values"),
    ({"sigmas": [1.0, 0.5]}, r"^sigmas: need 3 values"),
    ({"switch_step": 1.5}, r"^switch_step"),
])
def test_cross_step_curves_reject_bad_input_naming_the_argument(kwargs, pattern):
    args = {"steps": [0, 1, 2], "means": {0: [1.0, 2.0, 3.0]}, "title": "t"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=pattern):
        cross_step_curves(**args)


# ----------------------------------------------------------------------------- plumbing


def test_every_picture_is_deterministic():
    steps, means, sigmas = cross_data(12, 10)
    pca = {0: np.random.default_rng(1).random((FRAMES, H, W, 3))}
    for render in (lambda: energy_grid(hot_maps(), LABELS, "d", norm="global"),
                   lambda: energy_grid(hot_maps(), LABELS, "d", norm="per layer"),
                   lambda: pca_grid(pca, LABELS, "d"),
                   lambda: temporal_curves(profiles(12), "d"),
                   lambda: cross_step_curves(steps, means, "d", sigmas=sigmas, switch_step=4)):
        assert render().tobytes() == render().tobytes()


def test_figure_to_image_renders_without_pyplot():
    fig = Figure(figsize=(3, 2), dpi=50, facecolor=(1.0, 0.0, 0.0))
    image = figure_to_image(fig)
    assert image.mode == "RGB" and image.size == (150, 100)
    assert image.getpixel((75, 50)) == (255, 0, 0)
    clear = figure_to_image(Figure(figsize=(1, 1), dpi=20, facecolor=(0, 0, 0, 0)))
    assert clear.getpixel((10, 10)) == BACKGROUND  # transparency over the pack's background


def test_the_module_never_imports_pyplot():
    code = ("import sys, numpy as np\n"
            "from cos_core.energy_plots import energy_grid, pca_grid, temporal_curves, cross_step_curves\n"
            "energy_grid({0: np.ones((2, 3, 4))}, ['a', 'b'], 't', norm='per layer')\n"
            "pca_grid({0: np.ones((2, 3, 4, 3))}, ['a', 'b'], 't')\n"
            "temporal_curves({0: np.ones(2)}, 't')\n"
            "cross_step_curves([0, 1], {0: [1.0, 2.0]}, 't', sigmas=[1.0, 0.5], switch_step=1)\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n")
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
