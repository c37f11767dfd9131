import numpy as np
import pytest
import torch
from PIL import Image

from cos_core.render import ACCENT, BACKGROUND, pil_to_tensor, preview_strip, step_grid

ROWS, COLS, H, W = 3, 4, 16, 24


def labels(n: int, word: str) -> list[str]:
    return [f"{word} {i}" for i in range(n)]


def colour(r: int, c: int) -> tuple[int, int, int]:
    """A distinct saturated colour per cell, unlike the grey background and text."""
    return (40 + 60 * r, 30 + 50 * c, 250 - 20 * r - 10 * c)


def solid_cells() -> torch.Tensor:
    frames = torch.empty(ROWS, COLS, H, W, 3)
    for r in range(ROWS):
        for c in range(COLS):
            frames[r, c] = torch.tensor(colour(r, c), dtype=torch.float32) / 255.0
    return frames


def block_of(image: np.ndarray, rgb) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right) of the pixels that have exactly this colour."""
    ys, xs = np.nonzero(np.all(image == np.array(rgb, dtype=np.uint8), axis=-1))
    assert len(ys) >= H * W, f"colour {rgb} found in {len(ys)} pixels only"
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def test_step_grid_is_an_rgb_image_bigger_than_its_cells():
    image = step_grid(torch.rand(ROWS, COLS, H, W, 3), labels(ROWS, "step"), labels(COLS, "frame"))
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.width > COLS * W
    assert image.height > ROWS * H


def test_step_grid_places_every_cell_in_its_row_and_column():
    image = np.asarray(step_grid(solid_cells(), labels(ROWS, "step"), labels(COLS, "frame"), title="run"))
    boxes = {(r, c): block_of(image, colour(r, c)) for r in range(ROWS) for c in range(COLS)}
    for (r, c), (top, left, bottom, right) in boxes.items():
        assert (bottom - top, right - left) == (H, W)  # one solid, uncut block
        if c:
            assert left > boxes[r, c - 1][3]  # right of the previous column, same row
            assert top == boxes[r, c - 1][0]
        if r:
            assert top > boxes[r - 1, c][2]  # below the previous row, same column
            assert left == boxes[r - 1, c][1]


def test_step_grid_pixels_are_the_source_values():
    frames = torch.rand(1, 1, H, W, 3)
    image = np.asarray(step_grid(frames, ["s"], ["f"], gap=0))
    top, left = image.shape[0] - H, image.shape[1] - W  # with no gap the cell is bottom-right
    expected = (frames[0, 0].numpy() * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(image[top:, left:], expected)


def test_step_grid_clamps_values_outside_the_unit_interval():
    frames = torch.full((1, 1, H, W, 3), 2.0)
    frames[..., 1] = -1.0
    image = np.asarray(step_grid(frames, ["s"], ["f"]))
    block_of(image, (255, 0, 255))


def test_step_grid_draws_highlighted_rows_in_the_accent_colour():
    frames = torch.zeros(2, 1, H, W, 3)
    plain = np.asarray(step_grid(frames, ["step 0", "step 1"], ["f"]))
    marked = np.asarray(step_grid(frames, ["step 0", "step 1"], ["f"], highlight_rows=[1]))
    accent = np.all(marked == np.array(ACCENT, dtype=np.uint8), axis=-1)
    assert accent.any() and not np.all(plain == np.array(ACCENT, dtype=np.uint8), axis=-1).any()


def test_step_grid_background_colour():
    image = np.asarray(step_grid(torch.zeros(1, 1, H, W, 3), ["s"], ["f"]))
    assert tuple(image[-1, 0]) == BACKGROUND


@pytest.mark.parametrize("rows, cols", [(2, 4), (4, 4), (3, 3), (3, 5)])
def test_step_grid_with_mismatched_label_counts_is_an_error(rows, cols):
    with pytest.raises(ValueError, match="labels"):
        step_grid(torch.rand(ROWS, COLS, H, W, 3), labels(rows, "step"), labels(cols, "frame"))


@pytest.mark.parametrize("shape", [(COLS, H, W, 3), (ROWS, COLS, H, W, 4)])
def test_step_grid_of_a_wrong_shape_is_an_error(shape):
    with pytest.raises(ValueError, match="frames"):
        step_grid(torch.rand(shape), labels(ROWS, "step"), labels(COLS, "frame"))


def test_preview_strip_puts_frames_side_by_side_under_a_caption():
    image = preview_strip(torch.rand(3, H, W, 3), "step 3/20")
    assert image.mode == "RGB"
    assert image.width == 3 * W and image.height > H


@pytest.mark.parametrize("max_width", [1024, 200, 50])
def test_preview_strip_is_at_most_max_width(max_width):
    image = preview_strip(torch.rand(8, 32, 64, 3), "step 1/40  σ=0.99  high-noise expert", max_width)
    assert image.width <= max_width
    assert image.height > 0


def test_preview_strip_keeps_the_aspect_ratio_when_shrinking():
    small = preview_strip(torch.rand(8, 32, 64, 3), "c", max_width=256)
    assert small.width == 256
    assert small.height - 22 == 16  # 512×32 strip scaled by 1/2 under a 22-pixel caption bar


def test_preview_strip_of_a_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="frames"):
        preview_strip(torch.rand(1, 3, H, W, 3), "c")


def test_pil_to_tensor_gives_a_comfyui_image():
    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    tensor = pil_to_tensor(Image.fromarray(pixels))
    assert tensor.shape == (1, H, W, 3) and tensor.dtype == torch.float32
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    assert torch.allclose(tensor[0] * 255, torch.from_numpy(pixels).float(), atol=1e-3)


def test_pil_to_tensor_converts_other_modes_to_rgb():
    tensor = pil_to_tensor(Image.new("L", (W, H), 255))
    assert tensor.shape == (1, H, W, 3)
    assert torch.all(tensor == 1.0)


def test_grid_survives_a_round_trip_to_a_comfyui_image():
    image = step_grid(solid_cells(), labels(ROWS, "step"), labels(COLS, "frame"))
    tensor = pil_to_tensor(image)
    assert tensor.shape == (1, image.height, image.width, 3)
