"""Maze grids, a shortest-path waypoint planner and the PD controller that builds the maze datasets.

The recipe of D4RL's maze2d and Minari's pointmaze datasets: plan a path of grid cells from the
ball's cell to the goal's cell, then steer the ball from waypoint to waypoint with a PD controller
on its position. Read in (commits of the stored snapshots):

* Minari's scripts, ``Farama-Foundation/minari-dataset-generation-scripts``
  ``scripts/pointmaze/controller.py`` @ 75fd1285 and ``scripts/pointmaze/maze_solver.py`` @
  f3d658ef: ``WaypointController(gains={"p": 10.0, "d": -1.0}, waypoint_threshold=0.1)``; the
  action is ``p * (waypoint - position) + d * velocity``; intermediate waypoints are the cell
  centre minus ``U[0, 1)^2 * 0.2``, the last waypoint is the goal itself; the path comes from
  Q-value iteration over the grid (reward 1 on entering the goal cell, discount 0.99, 50
  iterations, actions tried in the order (0, +1), (0, -1), (-1, 0), (+1, 0)).
* MBRCSL, ``zhaoyizhou1123/mbrcsl`` @ 8986317, ``envs/pointmaze/policies/maze_expert.py``: the same
  controller with the action clipped to [-1, 1] (gymnasium-robotics' ``PointEnv.step`` clips too).

Here the planner is a breadth-first search from the goal cell: with discount < 1, Q-iteration's
greedy path is a shortest path, and ties are broken in the same action order, so the waypoints are
the same. When the ball is already in the goal cell the controller steers to the goal directly (the
Minari controller special-cases this too, with a bug that reads a waypoint of the previous plan).
A controller is reset per episode: D4RL reused one across episodes, so its first action used a
stale target (``Farama-Foundation/D4RL`` issue 159).

Example:
    >>> grid = MazeGrid.from_map([[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1],
    ...                           [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]])
    >>> grid.path((1, 1), (3, 1))
    [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    >>> grid.cell_to_xy((1, 1)).tolist(), grid.xy_to_cell(np.array([-1.0, 1.0]))
    ([-1.0, 1.0], (1, 1))
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# (row, col) moves in the tie-breaking order of Minari's maze_solver.py (EXPLORATION_ACTIONS)
MOVES = ((0, 1), (0, -1), (-1, 0), (1, 0))
P_GAIN = 10.0
D_GAIN = -1.0
WAYPOINT_THRESHOLD = 0.1  # distance at which the controller moves on to the next waypoint
WAYPOINT_JITTER = 0.2  # intermediate waypoints: cell centre minus U[0, 1)^2 * 0.2
GOAL_RADIUS = 0.45  # gymnasium-robotics: success and the sparse reward within this distance


def is_wall(cell_value: Any) -> bool:
    """A maze-map entry is a wall when it is the integer 1 (``"r"``/``"g"``/``"c"``/0 are free)."""
    return not isinstance(cell_value, str) and int(cell_value) == 1


@dataclass
class MazeGrid:
    """A maze map (rows of 1 = wall, anything else free) with gymnasium-robotics' coordinates:
    cell ``(i, j)`` has its centre at ``x = (j + 0.5) s - W s / 2``, ``y = H s / 2 - (i + 0.5) s``
    (``H`` rows, ``W`` columns, ``s`` the scaling; PointMaze uses ``s = 1``)."""

    walls: np.ndarray  # [rows, cols] bool
    scaling: float = 1.0
    _distances: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_map(cls, maze_map: Sequence[Sequence[Any]], scaling: float = 1.0) -> MazeGrid:
        walls = np.array([[is_wall(v) for v in row] for row in maze_map], dtype=bool)
        return cls(walls=walls, scaling=float(scaling))

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.walls.shape[0]), int(self.walls.shape[1])

    def free_cells(self) -> list[tuple[int, int]]:
        return [(int(i), int(j)) for i, j in zip(*np.nonzero(~self.walls), strict=True)]

    def cell_to_xy(self, cell: Sequence[int]) -> np.ndarray:
        rows, cols = self.shape
        s = self.scaling
        return np.array(
            [(cell[1] + 0.5) * s - cols * s / 2, rows * s / 2 - (cell[0] + 0.5) * s],
            dtype=np.float64,
        )

    def xy_to_cell(self, xy: np.ndarray) -> tuple[int, int]:
        rows, cols = self.shape
        s = self.scaling
        i = int(np.floor((rows * s / 2 - float(xy[1])) / s))
        j = int(np.floor((float(xy[0]) + cols * s / 2) / s))
        return i, j

    def _inside_free(self, cell: tuple[int, int]) -> bool:
        rows, cols = self.shape
        return 0 <= cell[0] < rows and 0 <= cell[1] < cols and not self.walls[cell]

    def distances(self, goal: tuple[int, int]) -> np.ndarray:
        """Steps from every cell to ``goal`` (breadth-first; -1 for walls and unreachable cells)."""
        goal = (int(goal[0]), int(goal[1]))
        if goal not in self._distances:
            dist = np.full(self.shape, -1, dtype=np.int64)
            if self._inside_free(goal):
                dist[goal] = 0
                queue = deque([goal])
                while queue:
                    cell = queue.popleft()
                    for di, dj in MOVES:
                        nxt = (cell[0] + di, cell[1] + dj)
                        if self._inside_free(nxt) and dist[nxt] < 0:
                            dist[nxt] = dist[cell] + 1
                            queue.append(nxt)
            self._distances[goal] = dist
        return self._distances[goal]

    def next_cell(self, cell: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
        """The neighbour of ``cell`` one step closer to ``goal`` (first in :data:`MOVES` order);
        ``goal`` itself when ``cell`` is the goal or cannot reach it."""
        dist = self.distances(goal)
        here = dist[cell] if self._inside_free(cell) else -1
        if here <= 0:
            return (int(goal[0]), int(goal[1]))
        for di, dj in MOVES:
            nxt = (cell[0] + di, cell[1] + dj)
            if self._inside_free(nxt) and dist[nxt] == here - 1:
                return nxt
        return (int(goal[0]), int(goal[1]))  # unreachable: a shortest-path neighbour always exists

    def path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """The planner's cells from ``start`` to ``goal`` (both included)."""
        cells = [(int(start[0]), int(start[1]))]
        while cells[-1] != tuple(goal) and len(cells) <= self.walls.size:
            cells.append(self.next_cell(cells[-1], goal))
        return cells


class WaypointController:
    """The PD waypoint controller of one ball (state: the current plan), reset per episode.

    ``act(position, velocity, goal, rng)`` returns the PD action, not clipped: the data recipe adds
    its noise first and clips after, as Minari's script does (the environment clips to [-1, 1]
    anyway). ``rng`` jitters the intermediate waypoints as Minari's controller does (the reference
    "expert" passes a seeded generator too, so its evaluation is reproducible).
    """

    def __init__(self, grid: MazeGrid):
        self.grid = grid
        self.reset()

    def reset(self) -> None:
        self.goal_xy: np.ndarray | None = None
        self.goal_cell: tuple[int, int] | None = None
        self.target_cell: tuple[int, int] | None = None
        self.target_xy: np.ndarray | None = None

    def _plan(self, position: np.ndarray, goal: np.ndarray) -> None:
        self.goal_xy = np.array(goal, dtype=np.float64)
        self.goal_cell = self.grid.xy_to_cell(goal)
        here = self.grid.xy_to_cell(position)
        if here == self.goal_cell:
            self.target_cell, self.target_xy = self.goal_cell, self.goal_xy
            return
        self.target_cell = self.grid.next_cell(here, self.goal_cell)
        self.target_xy = (
            self.goal_xy
            if self.target_cell == self.goal_cell
            else self.grid.cell_to_xy(self.target_cell)
        )

    def act(
        self,
        position: np.ndarray,
        velocity: np.ndarray,
        goal: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        px, py = float(position[0]), float(position[1])
        if self.goal_xy is None or _distance(self.goal_xy, goal) > 1e-3:
            self._plan(position, goal)
        assert self.target_xy is not None and self.target_cell is not None
        close = _distance(self.target_xy, position) <= WAYPOINT_THRESHOLD
        if close and self.target_cell != self.goal_cell:
            self.target_cell = self.grid.next_cell(self.target_cell, self.goal_cell)
            if self.target_cell == self.goal_cell:
                self.target_xy = self.goal_xy
            else:
                jitter = rng.uniform(size=2) * WAYPOINT_JITTER
                self.target_xy = self.grid.cell_to_xy(self.target_cell) - jitter
        tx, ty = float(self.target_xy[0]), float(self.target_xy[1])
        return np.array(
            [
                P_GAIN * (tx - px) + D_GAIN * float(velocity[0]),
                P_GAIN * (ty - py) + D_GAIN * float(velocity[1]),
            ]
        )


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance of two 2-vectors (``math.hypot``: a step costs microseconds here)."""
    return math.hypot(float(a[0]) - float(b[0]), float(a[1]) - float(b[1]))


def clip_action(action: np.ndarray) -> np.ndarray:
    """``action`` clipped to the PointMaze action box [-1, 1]."""
    return np.minimum(np.maximum(action, -1.0), 1.0)


__all__ = ["GOAL_RADIUS", "MOVES", "MazeGrid", "WaypointController", "clip_action", "is_wall"]
