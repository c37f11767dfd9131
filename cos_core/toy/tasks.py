"""Procedural toy reasoning tasks and their automatic scorers.

Every task lives on a ``GRID`` × ``GRID`` board of cells; a cell is drawn as ``CELL`` × ``CELL`` pixels,
so one cell is exactly one latent pixel of the weight-free mapping (:mod:`cos_core.toy.latent`).
A video has ``FRAMES`` frames: frame 0 is the task (what the model is given), the last frame shows
the answer.

Tasks:

- ``maze``: a perfect maze (walls black, free cells white), a green start and a red goal; the video
  draws the path (blue) from start to goal a few cells per frame. Scored on the final frame: the
  blue cells plus start and goal must connect start to goal through free cells (4-connected), and
  the drawn path may not be a flood (at most twice the true path's length).
- ``door``: a wall (black) crosses the board with a single gap (the door); a green start on one side, a red
  goal on the other. The video draws a shortest route (blue) from start through the door to the goal.
  Start and goal rows are at least two cells from the door's row, so the straight route is always
  blocked: the model has to find the door. Scored like the maze (connected through free cells, no flood).
- ``dot``: a blue 2×2 dot and a yellow 2×2 marker in one corner; the video moves the dot in a
  straight line onto the marker. Scored on the final frame: the blue blob's centre lies within one
  cell of the marker's centre.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

GRID = 12
CELL = 8
FRAMES = 17
KINDS = ("maze", "dot", "door")

PALETTE = {
    "free": (1.0, 1.0, 1.0),
    "wall": (0.0, 0.0, 0.0),
    "start": (0.0, 0.8, 0.0),
    "goal": (0.9, 0.0, 0.0),
    "path": (0.0, 0.0, 1.0),
    "target": (1.0, 0.8, 0.0),
}
LABELS = tuple(PALETTE)
_COLOURS = np.array([PALETTE[k] for k in LABELS], dtype=np.float32)


@dataclass
class Instance:
    """One task: ``video`` (FRAMES, GRID, GRID, 3) float32 cell colours in [0, 1], plus what the scorer needs."""

    kind: str
    seed: int
    video: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def first(self) -> np.ndarray:
        return self.video[0]

    def pixels(self) -> np.ndarray:
        """The video at pixel resolution: (FRAMES, GRID·CELL, GRID·CELL, 3)."""
        return upsample(self.video)


def upsample(cells: np.ndarray, cell: int = CELL) -> np.ndarray:
    """Cells (..., G, G, 3) → pixels (..., G·cell, G·cell, 3) (nearest)."""
    return np.repeat(np.repeat(cells, cell, axis=-3), cell, axis=-2)


def downsample(pixels: np.ndarray, cell: int = CELL) -> np.ndarray:
    """Pixels (..., H, W, 3) → per-cell mean colours (..., H/cell, W/cell, 3)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    *lead, h, w, c = pixels.shape
    blocks = pixels.reshape(*lead, h // cell, cell, w // cell, cell, c)
    return blocks.mean(axis=(-4, -2))


def classify(cells: np.ndarray) -> np.ndarray:
    """Nearest palette label index per cell: (..., G, G, 3) → (..., G, G) int."""
    d = ((np.asarray(cells, np.float32)[..., None, :] - _COLOURS) ** 2).sum(-1)
    return d.argmin(-1)


def label(name: str) -> int:
    return LABELS.index(name)


# ---------------------------------------------------------------------------------------------- maze
def _maze_walls(rng: np.random.Generator, n: int, grid: int) -> np.ndarray:
    """A perfect maze of n×n rooms carved at odd coordinates of a grid×grid wall board (recursive backtracker)."""
    walls = np.ones((grid, grid), dtype=bool)
    seen = np.zeros((n, n), dtype=bool)
    stack = [(int(rng.integers(n)), int(rng.integers(n)))]
    seen[stack[0]] = True
    walls[2 * stack[0][0] + 1, 2 * stack[0][1] + 1] = False
    while stack:
        r, c = stack[-1]
        options = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))
                   if 0 <= r + dr < n and 0 <= c + dc < n and not seen[r + dr, c + dc]]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        seen[nr, nc] = True
        walls[2 * nr + 1, 2 * nc + 1] = False
        walls[r + nr + 1, c + nc + 1] = False
        stack.append((nr, nc))
    return walls


def shortest_path(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]] | None:
    """BFS over 4-connected ``free`` cells; the cells from start to goal inclusive, or None."""
    prev = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        if cur == goal:
            path = []
            while cur is not None:
                path.append(cur)
                cur = prev[cur]
            return path[::-1]
        r, c = cur
        for nxt in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nxt[0] < free.shape[0] and 0 <= nxt[1] < free.shape[1] and free[nxt] and nxt not in prev:
                prev[nxt] = cur
                queue.append(nxt)
    return None


def make_maze(seed: int, grid: int = GRID, frames: int = FRAMES, rooms: int | None = None,
              min_len: int = 7) -> Instance:
    """A maze instance; ``rooms`` × ``rooms`` rooms (default: as many as fit the board)."""
    rng = np.random.default_rng([seed, 1])
    n = rooms or (grid - 1) // 2
    walls = _maze_walls(rng, n, grid)
    rooms_rc = [(2 * r + 1, 2 * c + 1) for r in range(n) for c in range(n)]
    while True:
        i, j = rng.choice(len(rooms_rc), size=2, replace=False)
        start, goal = rooms_rc[int(i)], rooms_rc[int(j)]
        path = shortest_path(~walls, start, goal)
        if len(path) >= min_len:
            break
    board = np.where(walls[..., None], _COLOURS[label("wall")], _COLOURS[label("free")]).astype(np.float32)
    board[start] = PALETTE["start"]
    board[goal] = PALETTE["goal"]
    return Instance("maze", seed, _draw_route(board, path, frames),
                    {"walls": walls, "start": start, "goal": goal, "path": path})


def _draw_route(board: np.ndarray, path: list[tuple[int, int]], frames: int) -> np.ndarray:
    """A video of ``board`` with the inner cells of ``path`` drawn blue progressively (all by the last frame)."""
    inner = path[1:-1]
    video = np.repeat(board[None], frames, axis=0)
    for f in range(1, frames):
        k = int(round(len(inner) * f / (frames - 1)))
        for cell in inner[:k]:
            video[f][cell] = PALETTE["path"]
    return video


# ---------------------------------------------------------------------------------------------- door
def make_door(seed: int, grid: int = GRID, frames: int = FRAMES) -> Instance:
    """A vertical wall with one door; start left of it, goal right of it, both rows ≥ 2 away from the door."""
    rng = np.random.default_rng([seed, 3])
    wall_c = int(rng.integers(4, grid - 4))
    door_r = int(rng.integers(grid))
    rows = [r for r in range(grid) if abs(r - door_r) >= 2]
    start = (int(rng.choice(rows)), int(rng.integers(0, wall_c - 1)))
    goal = (int(rng.choice(rows)), int(rng.integers(wall_c + 2, grid)))
    walls = np.zeros((grid, grid), dtype=bool)
    walls[:, wall_c] = True
    walls[door_r, wall_c] = False
    path = [start]

    def walk(to):
        r, c = path[-1]
        while (r, c) != to:
            if c != to[1]:
                c += 1 if to[1] > c else -1
            else:
                r += 1 if to[0] > r else -1
            path.append((r, c))

    walk((start[0], wall_c - 1))           # to the wall, along the door side, through the door, to the goal
    walk((door_r, wall_c - 1))
    walk((door_r, wall_c + 1))
    walk((goal[0], wall_c + 1))
    walk(goal)
    board = np.where(walls[..., None], _COLOURS[label("wall")], _COLOURS[label("free")]).astype(np.float32)
    board[start] = PALETTE["start"]
    board[goal] = PALETTE["goal"]
    return Instance("door", seed, _draw_route(board, path, frames),
                    {"walls": walls, "start": start, "goal": goal, "path": path, "door": (door_r, wall_c)})


def score_maze(inst: Instance, final_cells: np.ndarray) -> dict:
    """Success if the drawn path (blue, on free cells) plus start and goal connects start to goal."""
    labels = classify(final_cells)
    walls = inst.info["walls"]
    drawn = labels == label("path")
    usable = (drawn & ~walls)
    usable[inst.info["start"]] = True
    usable[inst.info["goal"]] = True
    found = shortest_path(usable, inst.info["start"], inst.info["goal"])
    true_inner = inst.info["path"][1:-1]
    n_drawn = int(drawn.sum())
    flood = n_drawn > 2 * max(len(true_inner), 1)
    success = found is not None and not flood
    hit = sum(bool(drawn[c]) for c in true_inner)
    recall = hit / max(len(true_inner), 1)
    precision = hit / n_drawn if n_drawn else 0.0
    return {"success": float(success), "soft": float(2 * recall * precision / (recall + precision + 1e-9)),
            "drawn": n_drawn, "true_len": len(true_inner)}


# ----------------------------------------------------------------------------------------------- dot
CORNERS = ((0, 0), (0, GRID - 2), (GRID - 2, 0), (GRID - 2, GRID - 2))


def make_dot(seed: int, grid: int = GRID, frames: int = FRAMES) -> Instance:
    rng = np.random.default_rng([seed, 2])
    corners = ((0, 0), (0, grid - 2), (grid - 2, 0), (grid - 2, grid - 2))
    target = corners[int(rng.integers(4))]
    while True:
        pos = (2 * int(rng.integers(grid // 2)), 2 * int(rng.integers(grid // 2)))
        if abs(pos[0] - target[0]) + abs(pos[1] - target[1]) >= 4:
            break
    board = np.ones((grid, grid, 3), dtype=np.float32)
    board[target[0]:target[0] + 2, target[1]:target[1] + 2] = PALETTE["target"]
    video = np.repeat(board[None], frames, axis=0)
    for f in range(frames):
        a = f / (frames - 1)
        r = int(round(pos[0] + a * (target[0] - pos[0])))
        c = int(round(pos[1] + a * (target[1] - pos[1])))
        video[f, r:r + 2, c:c + 2] = PALETTE["path"]
    return Instance("dot", seed, video, {"target": target, "start": pos})


def score_dot(inst: Instance, final_cells: np.ndarray) -> dict:
    """Success if a blue blob of 2–8 cells has its centre within one cell of the marker's centre."""
    drawn = classify(final_cells) == label("path")
    n = int(drawn.sum())
    centre = np.array(inst.info["target"], dtype=np.float32) + 0.5
    if n == 0:
        return {"success": 0.0, "soft": 0.0, "drawn": 0, "dist": float("inf")}
    rc = np.argwhere(drawn).mean(0)
    dist = float(np.abs(rc - centre).max())
    start_dist = float(np.abs(np.array(inst.info["start"]) + 0.5 - centre).max())
    soft = max(0.0, 1.0 - dist / max(start_dist, 1.0))
    return {"success": float(2 <= n <= 8 and dist <= 1.0), "soft": soft, "drawn": n, "dist": dist}


# ------------------------------------------------------------------------------------------- general
def make_task(kind: str, seed: int, **kw) -> Instance:
    if kind == "maze":
        return make_maze(seed, **kw)
    if kind == "dot":
        return make_dot(seed, **kw)
    if kind == "door":
        return make_door(seed, **kw)
    raise ValueError(f"kind: '{kind}' is not one of {KINDS}")


def score(inst: Instance, video: np.ndarray, pixels: bool = True) -> dict:
    """Score a generated video's final frame. ``video``: (F, H, W, 3) pixels (or cells if not ``pixels``)."""
    final = np.asarray(video, dtype=np.float32)[-1]
    cells = downsample(final) if pixels else final
    return score_dot(inst, cells) if inst.kind == "dot" else score_maze(inst, cells)


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (float(mid - half), float(mid + half))


def task(kind: str, seed: int, rooms: int = 5) -> Instance:
    """The held-out evaluation instance used by the trainer, the toy nodes and the tests (``rooms``: maze only).

    Training uses seeds ≥ 1 000 000 (``tools/toy/train.py``); evaluate on smaller seeds.
    """
    if kind == "maze":
        return make_maze(seed, rooms=rooms, min_len=3 if rooms <= 3 else 7)
    return make_task(kind, seed)
