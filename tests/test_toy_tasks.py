"""Tier 0: CoS-Toy task generators, scorers and the weight-free latent mapping (no ComfyUI)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cos_core.toy import latent as toy_latent
from cos_core.toy import tasks


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("rooms", [3, 4, 5])
def test_maze_solution_scores_one_and_empty_scores_zero(seed, rooms):
    inst = tasks.task("maze", seed, rooms)
    assert tasks.score(inst, inst.pixels())["success"] == 1.0
    assert tasks.score(inst, inst.pixels())["soft"] == pytest.approx(1.0)
    assert tasks.score(inst, np.repeat(inst.pixels()[:1], tasks.FRAMES, 0))["success"] == 0.0


def test_maze_path_runs_through_free_cells_and_connects():
    inst = tasks.task("maze", 3, 5)
    path = inst.info["path"]
    assert path[0] == inst.info["start"] and path[-1] == inst.info["goal"]
    assert not any(inst.info["walls"][c] for c in path)
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(path, path[1:]))


def test_maze_wrong_answers_score_zero():
    inst = tasks.task("maze", 7, 5)
    final = inst.video[-1].copy()
    broken = final.copy()
    broken[inst.info["path"][len(inst.info["path"]) // 2]] = tasks.PALETTE["free"]     # a gap
    assert tasks.score(inst, broken[None], pixels=False)["success"] == 0.0
    flood = final.copy()
    flood[~inst.info["walls"]] = tasks.PALETTE["path"]                                # paint everything
    flood[inst.info["start"]] = tasks.PALETTE["start"]
    flood[inst.info["goal"]] = tasks.PALETTE["goal"]
    assert tasks.score(inst, flood[None], pixels=False)["success"] == 0.0
    through_wall = inst.video[0].copy()                                              # straight line over walls
    (r0, c0), (r1, c1) = inst.info["start"], inst.info["goal"]
    for c in range(min(c0, c1), max(c0, c1) + 1):
        through_wall[r0, c] = tasks.PALETTE["path"]
    for r in range(min(r0, r1), max(r0, r1) + 1):
        through_wall[r, c1] = tasks.PALETTE["path"]
    through_wall[inst.info["start"]] = tasks.PALETTE["start"]
    through_wall[inst.info["goal"]] = tasks.PALETTE["goal"]
    walls_crossed = any(inst.info["walls"][r0, c] for c in range(min(c0, c1), max(c0, c1) + 1)) or \
        any(inst.info["walls"][r, c1] for r in range(min(r0, r1), max(r0, r1) + 1))
    if walls_crossed:
        assert tasks.score(inst, through_wall[None], pixels=False)["success"] == 0.0


def test_maze_video_draws_the_path_progressively():
    inst = tasks.task("maze", 11, 5)
    drawn = [(tasks.classify(f) == tasks.label("path")).sum() for f in inst.video]
    assert drawn[0] == 0 and drawn[-1] == len(inst.info["path"]) - 2
    assert all(a <= b for a, b in zip(drawn, drawn[1:]))


@pytest.mark.parametrize("seed", range(30))
def test_door_solution_is_a_shortest_route_through_the_only_gap(seed):
    inst = tasks.task("door", seed)
    walls, path = inst.info["walls"], inst.info["path"]
    door_r, wall_c = inst.info["door"]
    assert walls[:, wall_c].sum() == tasks.GRID - 1 and not walls[door_r, wall_c] and walls.sum() == tasks.GRID - 1
    assert abs(inst.info["start"][0] - door_r) >= 2 and abs(inst.info["goal"][0] - door_r) >= 2
    assert inst.info["start"][1] < wall_c < inst.info["goal"][1]
    assert path[0] == inst.info["start"] and path[-1] == inst.info["goal"] and (door_r, wall_c) in path
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(path, path[1:]))
    assert len(path) == len(tasks.shortest_path(~walls, inst.info["start"], inst.info["goal"]))
    assert tasks.score(inst, inst.pixels())["success"] == 1.0
    assert tasks.score(inst, np.repeat(inst.pixels()[:1], tasks.FRAMES, 0))["success"] == 0.0


@pytest.mark.parametrize("seed", range(10))
def test_door_straight_route_through_the_wall_and_gaps_score_zero(seed):
    inst = tasks.task("door", seed)
    (r0, c0), (r1, c1) = inst.info["start"], inst.info["goal"]
    naive = inst.video[0].copy()                                   # along the start row, then down/up: hits the wall
    for c in range(c0 + 1, c1 + 1):
        naive[r0, c] = tasks.PALETTE["path"]
    for r in range(min(r0, r1), max(r0, r1) + 1):
        naive[r, c1] = tasks.PALETTE["path"]
    naive[inst.info["goal"]] = tasks.PALETTE["goal"]
    assert tasks.score(inst, naive[None], pixels=False)["success"] == 0.0
    gap = inst.video[-1].copy()
    gap[inst.info["door"]] = tasks.PALETTE["free"]                  # the route stops short of the door
    assert tasks.score(inst, gap[None], pixels=False)["success"] == 0.0


def test_two_room_mazes_for_the_curriculum():
    for seed in range(10):
        inst = tasks.task("maze", seed, 2)
        assert inst.info["walls"][5:].all() and inst.info["walls"][:, 5:].all()
        assert tasks.score(inst, inst.pixels())["success"] == 1.0


def test_training_loss_weights_follow_only_the_given_first_frame():
    from tools.toy.train import FIXED_WEIGHT, FREE_WEIGHT, loss_weights

    insts = [tasks.task("maze", 2, 3), tasks.task("dot", 2)]
    cells = torch.from_numpy(np.stack([i.video for i in insts]))
    w = loss_weights(cells, toy_latent.latent_frames(tasks.FRAMES))
    assert w.shape == (2, 1, 5, tasks.GRID, tasks.GRID)
    assert (w[:, :, 0] == FIXED_WEIGHT).all()                                     # given by the conditioning
    maze = insts[0].info
    fixed = maze["walls"].copy()
    fixed[maze["start"]] = fixed[maze["goal"]] = True
    assert (w[0, 0, 1:][:, torch.from_numpy(fixed)] == FIXED_WEIGHT).all()
    assert (w[0, 0, 1:][:, torch.from_numpy(~fixed)] == FREE_WEIGHT).all()
    assert (w[1, 0, 1:] == FREE_WEIGHT).all()                                     # dot: every cell may change
    for cell in maze["path"][1:-1]:                                               # every answer cell is weighted fully
        assert (w[0, 0, 1:, cell[0], cell[1]] == FREE_WEIGHT).all()


@pytest.mark.parametrize("seed", range(20))
def test_dot_solution_scores_one_and_start_scores_zero(seed):
    inst = tasks.task("dot", seed)
    assert tasks.score(inst, inst.pixels())["success"] == 1.0
    assert tasks.score(inst, np.repeat(inst.pixels()[:1], tasks.FRAMES, 0))["success"] == 0.0


def test_dot_wrong_corner_and_missing_dot_score_zero():
    inst = tasks.task("dot", 4)
    final = inst.video[0].copy()
    final[final.sum(-1) < 1.5] = 1.0                                                 # erase the dot
    assert tasks.score(inst, final[None], pixels=False)["success"] == 0.0
    (tr, tc) = inst.info["target"]
    other = (tasks.GRID - 2 - tr, tasks.GRID - 2 - tc)
    final[other[0]:other[0] + 2, other[1]:other[1] + 2] = tasks.PALETTE["path"]
    assert tasks.score(inst, final[None], pixels=False)["success"] == 0.0


def test_generators_are_deterministic_and_seeds_differ():
    a, b, c = tasks.task("maze", 5, 5), tasks.task("maze", 5, 5), tasks.task("maze", 6, 5)
    assert np.array_equal(a.video, b.video) and not np.array_equal(a.video, c.video)


def test_wilson_interval():
    lo, hi = tasks.wilson(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.192, abs=0.01)
    assert tasks.wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def test_latent_roundtrip_is_lossless_on_toy_videos_and_shapes_follow_wan21():
    inst = tasks.task("maze", 1, 5)
    pixels = torch.from_numpy(inst.pixels())
    mean, std = torch.linspace(-1, 1, 16), torch.linspace(0.5, 3, 16)
    raw = toy_latent.encode(pixels, mean, std)
    assert raw.shape == (1, 16, 5, tasks.GRID, tasks.GRID)
    back = toy_latent.decode(raw, mean, std)
    assert back.shape == (1, 17, 96, 96, 3)
    assert torch.allclose(back[0], pixels, atol=1e-5)
    code = (raw - mean.view(1, 16, 1, 1, 1)) / std.view(1, 16, 1, 1, 1)
    assert torch.allclose(code, toy_latent.to_code(pixels), atol=1e-5)
    assert code.abs().max() <= 1.0 + 1e-5


def test_latent_cells_and_pixels_agree_and_grey_is_zero():
    inst = tasks.task("dot", 2)
    assert torch.allclose(toy_latent.to_code(torch.from_numpy(inst.pixels())),
                          toy_latent.to_code(torch.from_numpy(inst.video), stride=1), atol=1e-6)
    grey = torch.full((5, 16, 16, 3), 0.5)
    assert toy_latent.to_code(grey).abs().max() < 1e-6


def test_i2v_inputs_mask_and_first_frame():
    inst = tasks.task("dot", 3)
    first = torch.from_numpy(inst.pixels()[:1])
    mask, image = toy_latent.i2v_inputs(first, 17)
    assert mask.shape == (1, 4, 5, 12, 12) and image.shape == (1, 16, 5, 12, 12)
    assert (mask[:, :, 0] == 1).all() and (mask[:, :, 1:] == 0).all()
    assert torch.allclose(image[:, :, 0], toy_latent.to_code(first)[:, :, 0])
    assert image[:, :, 1:].abs().max() < 1e-6
