"""The PointMaze environments of the maze datasets: layouts, evaluation environments, registration.

Everything runs gymnasium-robotics' ``PointMazeEnv`` (``gymnasium_robotics.envs.maze.point_maze``,
1.4.2: a force-actuated ball, actions in [-1, 1]^2, dict observations ``observation`` = (x, y,
vx, vy), ``achieved_goal`` = (x, y), ``desired_goal``; sparse reward ``1[|g - xy| <= 0.45]`` or
dense ``exp(-|g - xy|)``; ``continuing_task=True`` never terminates, and with
``reset_target=True`` draws a new goal once the ball is within 0.45 of it).

Layouts (``maze_map`` rows, 1 = wall; ``"g"`` goal cells, ``"r"`` reset cells, else any free cell):

* ``umaze``, ``medium``, ``large``: gymnasium-robotics' ``U_MAZE``, ``MEDIUM_MAZE``,
  ``LARGE_MAZE`` (``envs/maze/maps.py``; D4RL's maze2d layouts). Data are collected on the plain
  map (goals and resets anywhere). The evaluation map fixes the goal cell and resets the ball in
  any other free cell, D4RL's maze2d evaluation; the goal cells are those of Minari's
  ``EVAL_ENV_MAPS`` (``Farama-Foundation/minari-dataset-generation-scripts``,
  ``scripts/pointmaze/create_pointmaze_dataset.py`` @ fb65edb7: umaze (1, 1), medium (6, 6),
  large (7, 9)), with ``continuing_task=True, reset_target=False`` (the reward keeps coming while
  the ball stays at the goal) and the registered episode lengths 300 / 600 / 800 steps.
* ``stitch``: MBRCSL's point maze (``zhaoyizhou1123/mbrcsl`` @ 8986317,
  ``envs/pointmaze/config/maze_default.json``), a 4 x 6 map, start cell (1, 2), goal cell (2, 4),
  dense reward, 200 steps (``scripts/pointmaze/run.sh``: ``horizon=200``). MBRCSL evaluates with
  ``continuing_task=False`` but ignores ``terminated`` (``utils/maze_utils.py``,
  ``PointMazeObsWrapper.step``), so every episode runs 200 steps: the same as
  ``continuing_task=True, reset_target=False`` here.

The evaluation environments are registered with gymnasium as ``policyfit/PointMaze_<Maze>-v3``
(``...Dense-v3`` for the dense reward; the stitch maze is ``policyfit/PointMaze_Stitch-v3``); they
return the flat observation ``observation ++ desired_goal`` (6 numbers, as the datasets are read,
:mod:`policyfit.data.spaces`), so training's rollouts and ``policyfit eval`` run them by id.

Example:
    >>> eval_env_id("umaze", dense=True)
    'policyfit/PointMaze_UMazeDense-v3'
    >>> MAZES["stitch"].episode_steps, MAZES["large"].goal_cell
    (200, (7, 9))
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.data.spaces import flatten_goal_observation
from policyfit.errors import PolicyfitError

INSTALL_HINT = "pip install 'gymnasium-robotics>=1.4'"

U_MAZE = [
    [1, 1, 1, 1, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1],
]
MEDIUM_MAZE = [
    [1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 1, 1, 0, 0, 1],
    [1, 0, 0, 1, 0, 0, 0, 1],
    [1, 1, 0, 0, 0, 1, 1, 1],
    [1, 0, 0, 1, 0, 0, 0, 1],
    [1, 0, 1, 0, 0, 1, 0, 1],
    [1, 0, 0, 0, 1, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1],
]
LARGE_MAZE = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
    [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
    [1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1],
    [1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1],
    [1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1],
    [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
]
# MBRCSL maze_default.json "map"
STITCH_MAZE = [
    [1, 1, 1, 1, 1, 1],
    [1, 0, 0, 1, 1, 1],
    [1, 0, 0, 0, 0, 1],
    [1, 1, 1, 1, 1, 1],
]


@dataclass(frozen=True)
class MazeLayout:
    """One maze: its map, the evaluation task's goal (and start) cell and episode length."""

    key: str  # umaze, medium, large, stitch
    title: str  # UMaze, Medium, Large, Stitch: the gymnasium id part
    maze_map: tuple[tuple[Any, ...], ...]
    goal_cell: tuple[int, int]
    start_cell: tuple[int, int] | None  # None: the evaluation resets anywhere else
    episode_steps: int
    robotics_id: str  # the gymnasium-robotics env whose dynamics these are (sparse reward)

    @property
    def map_list(self) -> list[list[Any]]:
        return [list(row) for row in self.maze_map]

    def eval_map(self) -> list[list[Any]]:
        """The map with the goal cell ``"g"`` (and the start cell ``"r"``)."""
        out = self.map_list
        out[self.goal_cell[0]][self.goal_cell[1]] = "g"
        if self.start_cell is not None:
            out[self.start_cell[0]][self.start_cell[1]] = "r"
        return out


def _layout(key, title, maze_map, goal, start, steps, robotics_id) -> MazeLayout:
    frozen = tuple(tuple(row) for row in maze_map)
    return MazeLayout(key, title, frozen, goal, start, steps, robotics_id)


MAZES: dict[str, MazeLayout] = {
    "umaze": _layout("umaze", "UMaze", U_MAZE, (1, 1), None, 300, "PointMaze_UMaze-v3"),
    "medium": _layout("medium", "Medium", MEDIUM_MAZE, (6, 6), None, 600, "PointMaze_Medium-v3"),
    "large": _layout("large", "Large", LARGE_MAZE, (7, 9), None, 800, "PointMaze_Large-v3"),
    "stitch": _layout("stitch", "Stitch", STITCH_MAZE, (2, 4), (1, 2), 200, "PointMaze_UMaze-v3"),
}


def eval_env_id(maze: str, dense: bool) -> str:
    """The registered id of ``maze``'s flat evaluation environment (the stitch maze has the dense
    reward only, and no suffix)."""
    suffix = "Dense" if dense and maze != "stitch" else ""
    return f"policyfit/PointMaze_{MAZES[maze].title}{suffix}-v3"


def eval_env_kwargs(maze: str, dense: bool) -> dict[str, Any]:
    """``PointMazeEnv`` keyword arguments of the evaluation task."""
    return {
        "maze_map": MAZES[maze].eval_map(),
        "reward_type": "dense" if dense else "sparse",
        "continuing_task": True,
        "reset_target": False,
    }


# ---------------------------------------------------------------------------------- gymnasium
def import_robotics() -> Any:
    """``gymnasium_robotics`` (registers its environments); its import-time notice on stderr is
    dropped. A :class:`PolicyfitError` with the install command when it is missing."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import gymnasium_robotics
    except ImportError:
        raise PolicyfitError(
            f"the maze datasets and environments need gymnasium-robotics: {INSTALL_HINT}",
            path="gymnasium_robotics",
            field="import",
        ) from None
    return gymnasium_robotics


def make_point_maze(**kwargs: Any) -> Any:
    """A bare ``PointMazeEnv`` (dict observations, no time limit) with ``kwargs``."""
    import_robotics()
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

    return PointMazeEnv(**kwargs)


def make_flat_maze_env(**kwargs: Any) -> Any:
    """``PointMazeEnv(**kwargs)`` observed through :class:`FlatGoalObservation` (the entry point of
    the registered evaluation environments)."""
    return _flat_wrapper_class()(make_point_maze(**kwargs))


@functools.cache
def _flat_wrapper_class() -> type:
    import gymnasium as gym

    class FlatGoalObservation(gym.ObservationWrapper):
        """A goal-conditioned dict observation as ``observation ++ desired_goal``."""

        def __init__(self, env: Any):
            super().__init__(env)
            parts = [env.observation_space[k] for k in ("observation", "desired_goal")]
            dim = sum(int(np.prod(p.shape)) for p in parts)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float64)

        def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
            return flatten_goal_observation(observation)

    return FlatGoalObservation


@functools.cache
def register_maze_envs() -> None:
    """Register the flat evaluation environments (``policyfit/PointMaze_*-v3``) with gymnasium.

    Needs no gymnasium-robotics to register; making one without it raises a
    :class:`PolicyfitError` that says how to install it.
    """
    import gymnasium as gym

    for key, layout in MAZES.items():
        for dense in (False, True) if key != "stitch" else (True,):
            env_id = eval_env_id(key, dense)
            if env_id in gym.registry:
                continue
            gym.register(
                id=env_id,
                entry_point="policyfit.envs.maze_env:make_flat_maze_env",
                kwargs=eval_env_kwargs(key, dense),
                max_episode_steps=layout.episode_steps,
            )


def robotics_spec(maze: str, max_episode_steps: int | None, **kwargs: Any) -> Any:
    """The gymnasium-robotics ``EnvSpec`` with ``kwargs`` (dict observations): what a Minari file
    records as ``env_spec``/``eval_env_spec``, so ``dataset.recover_environment()`` works."""
    import gymnasium as gym

    import_robotics()
    base = gym.spec(MAZES[maze].robotics_id)
    return dataclasses.replace(
        base, kwargs={**base.kwargs, **kwargs}, max_episode_steps=max_episode_steps
    )


__all__ = [
    "MAZES",
    "MazeLayout",
    "eval_env_id",
    "eval_env_kwargs",
    "import_robotics",
    "make_flat_maze_env",
    "make_point_maze",
    "register_maze_envs",
    "robotics_spec",
]
