"""The maze datasets: D4RL maze2d / Minari pointmaze rebuilt locally, and MBRCSL's stitching maze.

Seven names, each a *recipe* built on first use and cached as a Minari dataset under
``$POLICYFIT_HOME/datasets`` (as the MuJoCo suite, :mod:`policyfit.envs.suite`):

========================  ==================================================================
``pointmaze-umaze``       Minari's ``D4RL/pointmaze/umaze-v2`` recipe on gymnasium-robotics'
``pointmaze-medium``      ``PointMaze_{UMaze,Medium,Large}-v3`` (sparse reward); ``-dense``
``pointmaze-large``       the same trajectories with the dense reward (``...Dense-v3``)
``pointmaze-stitch``      MBRCSL's point maze: two sub-optimal data sources whose paths must be
                          joined to reach the goal the shortest way (dense reward)
========================  ==================================================================

**pointmaze recipe** (``Farama-Foundation/minari-dataset-generation-scripts``,
``scripts/pointmaze/create_pointmaze_dataset.py`` @ fb65edb7, ``controller.py`` @ 75fd1285,
``maze_solver.py`` @ f3d658ef): one continuing run, ``continuing_task=True, reset_target=True``:
the ball is never reset; when it comes within 0.45 of the goal the environment draws a new goal
anywhere in the maze. A shortest-path waypoint planner with a PD controller
(:mod:`policyfit.envs.maze_control`) steers toward the current goal, with Gaussian noise of
standard deviation 0.5 added to every action, then clipped to [-1, 1]. The run is cut into
episodes where the goal is reached: that step is a truncation (``timeouts``); there are no
terminal states. Minari's datasets have 1,000,000 steps each; ours too by default (the generation
time measured here is in each card).

**stitch recipe** (``zhaoyizhou1123/mbrcsl`` @ 8986317, ``envs/pointmaze/config/maze_default.json``
and ``envs/pointmaze/samplers/maze_sampler.py``): the 4 x 6 map, every trajectory starts in cell
(1, 2) and lasts 200 steps, the reward is the dense reward toward the goal cell (2, 4). Four
sources, 250 trajectories each by default (the config's ``repeats``):

1. and 2. the controller from the start to cell (2, 2), then holding there;
3. the controller along (1, 1) -> (2, 1) -> (2, 4) (a detour), then holding at the goal;
4. the same detour, then uniformly random actions once the goal is reached.

Each intermediate target is its cell centre plus uniform noise in [-0.25, 0.25]^2; a target is
reached within 0.5 of it at speeds below 0.5 per axis (the last target of source 4: position
only). The shortest route, start -> (2, 2) -> (2, 3) -> (2, 4), is in no trajectory: it joins the
first half of sources 1-2 to the second half of sources 3-4 (the "stitched optimum"; its return,
the controller's on the evaluation task, is the card's ``ref_max_score``).

**Observations** are stored as Minari stores them, dicts of ``observation`` (x, y, vx, vy),
``achieved_goal`` (x, y) and ``desired_goal``; policyfit reads them flattened to
``observation ++ desired_goal`` (6 numbers, :mod:`policyfit.data.spaces`) and evaluates in the
flat environments of :mod:`policyfit.envs.maze_env`. **Reference scores**: the mean return of the
controller without action noise (``ref_max_score``) and of uniformly random actions
(``ref_min_score``) over 100 episodes of the evaluation task, with its episode length
(:data:`REFERENCE_SCORES`, measured by :func:`measure_reference_scores`).

Example:
    >>> [row["name"] for row in list_datasets()][:2]
    ['pointmaze-umaze', 'pointmaze-umaze-dense']
    >>> parse_name("pointmaze-large-dense")
    ('large', True)
    >>> ds = make_dataset("pointmaze-umaze", size=2_000, progress=False)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.progress import ProgressBar
from policyfit.common.versions import library_versions
from policyfit.data.dataset import Dataset
from policyfit.data.io import (
    format_for_destination,
    read_minari,
    save_dataset,
    write_minari,
)
from policyfit.data.io import load_dataset as load_file
from policyfit.data.spaces import GOAL_OBSERVATION_KEYS, box_space
from policyfit.envs.collect import episode_seed
from policyfit.envs.maze_control import GOAL_RADIUS, MazeGrid, WaypointController, clip_action
from policyfit.envs.maze_env import (
    MAZES,
    eval_env_id,
    eval_env_kwargs,
    import_robotics,
    make_point_maze,
    register_maze_envs,
    robotics_spec,
)
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.paths import datasets_dir

GRID_MAZES = ("umaze", "medium", "large")
NAMES: tuple[str, ...] = (
    *(f"pointmaze-{m}{suffix}" for m in GRID_MAZES for suffix in ("", "-dense")),
    "pointmaze-stitch",
)
RECIPE_VERSION = 1  # bump when generation changes in a way that changes the arrays
DEFAULT_SIZE = 1_000_000  # Minari's pointmaze datasets: 1,000,000 steps
ACTION_NOISE = 0.5  # create_pointmaze_dataset.py: action += np.random.randn(*action.shape) * 0.5
MAX_EPISODE_STEPS = 1_000  # a safety cut for a ball that fails to reach a goal (not in Minari)
REFERENCE_EPISODES = 100  # Minari's num_episodes_average_score
REFERENCE_SEED = 10_000  # episode i of a reference measurement resets with seed 10_000 + i

# MBRCSL maze_default.json "sample_args": (sub-goal cells, random actions once reached, repeats)
STITCH_SOURCES = (
    ("start -> (2, 2)", ((2, 2),), False, 250),
    ("start -> (2, 2)", ((2, 2),), False, 250),
    ("start -> (1, 1) -> (2, 1) -> goal (2, 4)", ((1, 1), (2, 1), (2, 4)), False, 250),
    ("start -> (1, 1) -> (2, 1) -> goal (2, 4), then random", ((1, 1), (2, 1), (2, 4)), True, 250),
)
STITCH_POS_THRESHOLD = 0.5  # maze_utils.terminated: pos_threshold
STITCH_VEL_THRESHOLD = 0.5  # maze_sampler.py: self.VEL_THRESHOLD
STITCH_CELL_NOISE = 0.25  # maze_utils.cell2xy: noise_bound

# (ref_min_score, ref_max_score): mean returns of uniformly random actions and of the controller
# without action noise, REFERENCE_EPISODES episodes of the evaluation task each (episode i reset
# with seed REFERENCE_SEED + i), measured by measure_reference_scores with gymnasium-robotics
# 1.4.2 and mujoco 4.0.0.
REFERENCE_SCORES: dict[tuple[str, bool], tuple[float, float]] = {
    ("stitch", True): (20.91779528075322, 136.7745094733274),
    ("umaze", False): (17.56, 218.28),
    ("umaze", True): (59.139073967254824, 231.83635142560095),
    ("medium", False): (6.3, 416.6),
    ("medium", True): (35.96457187428281, 433.6121337621701),
    ("large", False): (5.81, 557.73),
    ("large", True): (42.200933658278736, 581.6133107789308),
}

RECIPES = {
    "grid": (
        "a shortest-path waypoint planner with a PD controller (p 10, d -1) toward random goals "
        "in one continuing run (a new goal whenever the ball is within 0.45 of the current one), "
        f"Gaussian action noise of standard deviation {ACTION_NOISE}, clipped to [-1, 1]; "
        "episodes end where a goal is reached (a truncation)"
    ),
    "stitch": (
        "MBRCSL's two sub-optimal sources from the start cell (1, 2): half go to (2, 2) and hold; "
        "half take the detour (1, 1) -> (2, 1) -> goal (2, 4) and hold there (one quarter) or act "
        "at random once there (one quarter); 200 steps each, dense reward toward (2, 4)"
    ),
}

DIFFERENCES_FROM_MINARI = [
    "the planner is a breadth-first search over the grid instead of Q-value iteration: the same "
    "shortest paths, ties broken in the same order",
    "the controller steers straight to the goal when the ball is already in the goal cell "
    "(Minari's controller reads a waypoint of its previous plan there) and is reset per episode",
    "the first observation of an episode carries the episode's own goal; in Minari's datasets it "
    "carries the goal just reached (Farama-Foundation/Minari issue 265)",
    f"an episode that has not reached its goal after {MAX_EPISODE_STEPS} steps is cut (a "
    "truncation) and the environment reset with a fresh seed; Minari's run has no such cut",
    "the evaluation task fixes the goal cell of Minari's EVAL_ENV_MAPS (create_pointmaze_dataset.py "
    "@ fb65edb7) and resets the ball in any other free cell; reference scores are measured here "
    "(controller without noise vs uniformly random actions, 100 episodes)",
    "observations are stored as float32 values (in a float64 Dict space)",
]

DIFFERENCES_FROM_MBRCSL = [
    "the dataset keeps the dict observation (MBRCSL stores observation only, 4 numbers); "
    "policyfit reads observation ++ desired_goal, the goal being the goal cell (2, 4) plus the "
    "environment's position noise",
    "environments run continuing_task=True (MBRCSL: False, with terminated ignored): the same "
    "200-step episodes and rewards, and no terminal flags",
    "the random actions of source 4 and all noise come from one seeded generator (MBRCSL: "
    "unseeded action_space.sample() and np.random)",
    "size scales the four sources in proportion: size / 200 trajectories",
]


# ---------------------------------------------------------------------------------- names
def is_maze_name(name: Any) -> bool:
    """True for the built-in maze names (``pointmaze-umaze``, ...), case-insensitive.

    Example:
        >>> is_maze_name("PointMaze-Stitch"), is_maze_name("pointmaze-open")
        (True, False)
    """
    return isinstance(name, str) and name.strip().lower() in NAMES


def parse_name(name: str) -> tuple[str, bool]:
    """``"pointmaze-medium-dense"`` -> ``("medium", True)``; the stitch maze is dense."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in NAMES:
        raise PolicyfitError(
            f"not a built-in maze dataset; maze names: {', '.join(NAMES)}",
            path=str(name),
            field="name",
        )
    parts = key.split("-")
    maze = parts[1]
    return maze, maze == "stitch" or parts[-1] == "dense"


def default_size(name: str) -> int:
    """Minari's 1,000,000 steps; the stitch maze MBRCSL's 4 x 250 trajectories of 200 steps."""
    maze, _ = parse_name(name)
    if maze == "stitch":
        return sum(n for *_, n in STITCH_SOURCES) * MAZES["stitch"].episode_steps
    return DEFAULT_SIZE


def minari_dataset_id(name: str, size: int, seed: int) -> str:
    """``policyfit/<name>-v0`` (``<name>-n<size>-s<seed>-v0`` when not the defaults).

    Example:
        >>> minari_dataset_id("pointmaze-umaze", 5_000, 1)
        'policyfit/pointmaze-umaze-n5000-s1-v0'
    """
    key = name if (size == default_size(name) and seed == 0) else f"{name}-n{size}-s{seed}"
    return f"policyfit/{key}-v0"


def _cache_path(name: str, size: int, seed: int) -> Path:
    return datasets_dir() / minari_dataset_id(name, size, seed)


def _digest(name: str) -> str:
    """Recipe version and name (cache invalidation; no shipped weights: the controller is code)."""
    return hashlib.sha256(f"maze-recipe-v{RECIPE_VERSION}-{name}".encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- recipes
class _Recorder:
    """Transitions of goal-dict observations, flattened as the readers flatten them
    (``observation ++ desired_goal``), with the achieved goals as extra arrays. ``other_rewards``
    holds the other reward type's reward of each step (the sibling dataset's)."""

    def __init__(self, size: int):
        self.n = 0
        self.obs = np.zeros((size, 6), np.float32)
        self.next_obs = np.zeros((size, 6), np.float32)
        self.achieved = np.zeros((size, 2), np.float32)
        self.next_achieved = np.zeros((size, 2), np.float32)
        self.actions = np.zeros((size, 2), np.float32)
        self.rewards = np.zeros(size, np.float32)
        self.other_rewards = np.zeros(size, np.float32)
        self.timeouts = np.zeros(size, bool)

    def add(self, obs: dict, action: np.ndarray, reward: float, nxt: dict, end: bool) -> None:
        i = self.n
        self.obs[i, :4] = obs["observation"]
        self.obs[i, 4:] = obs["desired_goal"]
        self.next_obs[i, :4] = nxt["observation"]
        self.next_obs[i, 4:] = nxt["desired_goal"]
        self.achieved[i] = obs["achieved_goal"]
        self.next_achieved[i] = nxt["achieved_goal"]
        self.actions[i] = action
        self.rewards[i] = reward
        self.timeouts[i] = end
        self.n += 1

    def arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        self.timeouts[self.n - 1] = True  # the dataset's last episode ends where it was cut
        arrays = {
            "observations": self.obs[: self.n],
            "actions": self.actions[: self.n],
            "rewards": self.rewards[: self.n],
            "terminals": np.zeros(self.n, bool),
            "timeouts": self.timeouts[: self.n],
            "next_observations": self.next_obs[: self.n],
        }
        extra = {
            "achieved_goal": self.achieved[: self.n],
            "next_achieved_goal": self.next_achieved[: self.n],
        }
        return arrays, extra


def goal_reward(achieved_goal: np.ndarray, desired_goal: np.ndarray, dense: bool) -> float:
    """PointMaze's reward (``maze_v4.MazeEnv.compute_reward``): ``exp(-d)`` dense, ``1[d <= 0.45]``
    sparse, ``d`` the distance of the achieved to the desired goal."""
    distance = math.hypot(
        float(achieved_goal[0]) - float(desired_goal[0]),
        float(achieved_goal[1]) - float(desired_goal[1]),
    )
    return math.exp(-distance) if dense else float(distance <= GOAL_RADIUS)


def _grid_recipe(maze: str, dense: bool, size: int, seed: int, bar: Any) -> tuple[Any, dict]:
    """Minari's continuing run on ``maze``; ``(recorder, run statistics)``."""
    layout = MAZES[maze]
    env = make_point_maze(
        maze_map=layout.map_list,
        reward_type="dense" if dense else "sparse",
        continuing_task=True,
        reset_target=True,
    )
    grid = MazeGrid.from_map(layout.map_list)
    controller = WaypointController(grid)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
    resets, goals_reached, cut, length = 0, 0, 0, 0
    obs, _ = env.reset(seed=episode_seed(seed, resets))
    rec = _Recorder(size)
    while rec.n < size:
        o = obs["observation"]
        action = controller.act(o[:2], o[2:], obs["desired_goal"], rng)
        action = clip_action(action + ACTION_NOISE * rng.normal(size=2))
        nxt, reward, _, _, info = env.step(action)
        length += 1
        success = bool(info["success"])
        end = success or length >= MAX_EPISODE_STEPS
        rec.other_rewards[rec.n] = goal_reward(nxt["achieved_goal"], nxt["desired_goal"], not dense)
        rec.add(obs, action, reward, nxt, end)
        if success:
            goals_reached += 1
            # the next episode starts where the ball is, with the goal just drawn
            obs = {**nxt, "desired_goal": np.array(env.goal, dtype=np.float64)}
        elif end:
            cut += 1
            resets += 1
            obs, _ = env.reset(seed=episode_seed(seed, resets))
        else:
            obs = nxt
        if end:
            controller.reset()
            bar.advance(length)
            length = 0
    bar.advance(length)
    env.close()
    return rec, {"goals_reached": goals_reached, "episodes_cut_at_max_steps": cut}


def _stitch_target(cell: tuple[int, int], grid: MazeGrid, rng: np.random.Generator) -> np.ndarray:
    return grid.cell_to_xy(cell) + rng.uniform(-STITCH_CELL_NOISE, STITCH_CELL_NOISE, size=2)


def _stitch_reached(obs: dict, target: np.ndarray, position_only: bool) -> bool:
    o = obs["observation"]
    if np.linalg.norm(o[:2] - target) > STITCH_POS_THRESHOLD:
        return False
    return position_only or bool(np.all(np.abs(o[2:]) <= STITCH_VEL_THRESHOLD))


def _stitch_episode(env, grid, rec, cells, random_end, seed, episode, rng) -> None:
    """One 200-step trajectory of an MBRCSL source (``maze_sampler._collect_single_traj``)."""
    controller = WaypointController(grid)
    obs, _ = env.reset(seed=episode_seed(seed, episode))
    todo = list(cells)
    target = _stitch_target(todo.pop(0), grid, rng)
    done = False
    steps = MAZES["stitch"].episode_steps
    for t in range(steps):
        if not done and _stitch_reached(obs, target, position_only=random_end and not todo):
            if todo:
                target = _stitch_target(todo.pop(0), grid, rng)
            else:
                done = True
        if done and random_end:
            action = rng.uniform(-1.0, 1.0, size=2)
        else:
            o = obs["observation"]
            action = clip_action(controller.act(o[:2], o[2:], target, rng))
        nxt, reward, _, _, _ = env.step(action)
        rec.add(obs, action, reward, nxt, t == steps - 1)
        obs = nxt


def stitch_plan(size: int) -> list[tuple[str, tuple, bool, int]]:
    """MBRCSL's sources with their trajectory counts scaled to ``size`` transitions (floors, the
    remainder to the last source).

    Example:
        >>> [n for *_, n in stitch_plan(200_000)], [n for *_, n in stitch_plan(2_000)]
        ([250, 250, 250, 250], [2, 2, 2, 4])
    """
    steps = MAZES["stitch"].episode_steps
    if size < steps * len(STITCH_SOURCES) or size % steps:
        raise ConfigError(
            f"must be a multiple of the 200-step trajectory and at least {steps * len(STITCH_SOURCES)}"
            f" (one trajectory per source), e.g. {default_size('pointmaze-stitch')}",
            path="pointmaze-stitch",
            field="size",
        )
    total = sum(n for *_, n in STITCH_SOURCES)
    trajectories = size // steps
    counts = [trajectories * n // total for *_, n in STITCH_SOURCES]
    counts[-1] += trajectories - sum(counts)
    return [(*src[:3], n) for src, n in zip(STITCH_SOURCES, counts, strict=True)]


def _stitch_recipe(size: int, seed: int, bar: Any) -> tuple[Any, dict]:
    layout = MAZES["stitch"]
    env = make_point_maze(
        maze_map=layout.eval_map(), reward_type="dense", continuing_task=True, reset_target=False
    )
    grid = MazeGrid.from_map(layout.map_list)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2023]))
    rec = _Recorder(size)
    episode, parts = 0, []
    for label, cells, random_end, count in stitch_plan(size):
        first = rec.n
        for _ in range(count):
            _stitch_episode(env, grid, rec, cells, random_end, seed, episode, rng)
            episode += 1
            bar.advance(layout.episode_steps)
        returns = rec.rewards[first : rec.n].reshape(count, layout.episode_steps).sum(axis=1)
        parts.append(
            {
                "source": label,
                "sub_goal_cells": [list(c) for c in cells],
                "random_actions_after_goal": random_end,
                "trajectories": count,
                "return_mean": float(returns.mean()),
                "return_max": float(returns.max()),
            }
        )
    env.close()
    return rec, {"sources": parts}


def _generate(name: str, size: int, seed: int, progress: bool) -> tuple[_Recorder, dict]:
    maze, dense = parse_name(name)
    if size < 1:
        raise ConfigError("size must be at least 1", path=name, field="size")
    import_robotics()
    t0 = time.perf_counter()
    with ProgressBar(f"building {name}", size, enabled=progress) as bar:
        if maze == "stitch":
            rec, stats = _stitch_recipe(size, seed, bar)
        else:
            rec, stats = _grid_recipe(maze, dense, size, seed, bar)
    stats["generation_seconds"] = round(time.perf_counter() - t0, 1)
    stats["steps_per_second"] = round(rec.n / max(time.perf_counter() - t0, 1e-9))
    return rec, stats


def generate_arrays(
    name: str, size: int | None = None, seed: int = 0, progress: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Roll out the recipe of ``name``: the six arrays, the extra arrays (``achieved_goal``,
    ``next_achieved_goal``) and the run's statistics (with ``generation_seconds``)."""
    size = default_size(name) if size is None else int(size)
    rec, stats = _generate(name, size, seed, progress)
    arrays, extra = rec.arrays()
    return arrays, extra, stats


def sibling_name(name: str) -> str | None:
    """The same maze with the other reward (``pointmaze-umaze`` <-> ``pointmaze-umaze-dense``);
    None for the stitch maze.

    Example:
        >>> sibling_name("pointmaze-umaze"), sibling_name("pointmaze-large-dense")
        ('pointmaze-umaze-dense', 'pointmaze-large')
    """
    maze, dense = parse_name(name)
    if maze == "stitch":
        return None
    return f"pointmaze-{maze}" if dense else f"pointmaze-{maze}-dense"


# ---------------------------------------------------------------------------------- references
def measure_reference_scores(
    maze: str, dense: bool, episodes: int = REFERENCE_EPISODES
) -> dict[str, Any]:
    """Returns of the controller without action noise and of uniformly random actions on the
    evaluation task (episode ``i`` reset with seed ``REFERENCE_SEED + i`` for both).

    Example:
        >>> refs = measure_reference_scores("stitch", True, episodes=2)   # doctest: +SKIP
        >>> refs["expert_return_mean"] > refs["random_return_mean"]        # doctest: +SKIP
        True
    """
    layout = MAZES[maze]
    env = make_point_maze(**eval_env_kwargs(maze, dense))
    grid = MazeGrid.from_map(layout.map_list)
    rng = np.random.default_rng(REFERENCE_SEED)
    out: dict[str, list[float]] = {"expert": [], "random": []}
    successes = 0
    for policy in ("expert", "random"):
        for i in range(episodes):
            obs, _ = env.reset(seed=REFERENCE_SEED + i)
            controller = WaypointController(grid)
            total, reached = 0.0, False
            for _ in range(layout.episode_steps):
                if policy == "random":
                    action = rng.uniform(-1.0, 1.0, size=2)
                else:
                    o = obs["observation"]
                    action = controller.act(o[:2], o[2:], obs["desired_goal"], rng)
                obs, reward, _, _, info = env.step(clip_action(action))
                total += float(reward)
                reached |= bool(info["success"])
            out[policy].append(total)
            successes += int(reached and policy == "expert")
    env.close()
    return {
        "expert_return_mean": float(np.mean(out["expert"])),
        "expert_return_std": float(np.std(out["expert"])),
        "expert_success_rate": successes / episodes,
        "random_return_mean": float(np.mean(out["random"])),
        "random_return_std": float(np.std(out["random"])),
        "episodes": episodes,
        "episode_steps": layout.episode_steps,
    }


def reference_scores(name: str) -> tuple[float, float]:
    """``(ref_min_score, ref_max_score)`` of ``name``'s evaluation task (:data:`REFERENCE_SCORES`)."""
    return REFERENCE_SCORES[parse_name(name)]


# ---------------------------------------------------------------------------------- datasets
def _card(name: str, size: int, seed: int, stats: dict[str, Any], ds: Dataset) -> dict[str, Any]:
    maze, dense = parse_name(name)
    layout = MAZES[maze]
    ref_min, ref_max = reference_scores(name)
    kind = "stitch" if maze == "stitch" else "grid"
    command = f"policyfit data make {name}"
    if size != default_size(name):
        command += f" --size {size}"
    if seed:
        command += f" --seed {seed}"
    card: dict[str, Any] = {
        "name": name,
        "env": eval_env_id(maze, dense),
        "evaluation_task": {
            **{k: v for k, v in eval_env_kwargs(maze, dense).items() if k != "maze_map"},
            "maze_map": layout.eval_map(),
            "goal_cell": list(layout.goal_cell),
            "start_cell": None if layout.start_cell is None else list(layout.start_cell),
            "max_episode_steps": layout.episode_steps,
        },
        "behavior": RECIPES[kind],
        "recipe": RECIPES[kind],
        "size": size,
        "seed": seed,
        "episodes": ds.num_episodes,
        "episode_length_mean": float(ds.episode_lengths.mean()),
        "reward": "dense: exp(-|goal - xy|)" if dense else "sparse: 1 within 0.45 of the goal",
        "observation": (
            "stored as Minari's dict (observation = x, y, vx, vy; achieved_goal = x, y; "
            "desired_goal); read by policyfit as observation ++ desired_goal (6 numbers), the "
            "evaluation environment returns the same vector"
        ),
        "reference_scores": {
            "ref_min_score": ref_min,
            "ref_max_score": ref_max,
            "ref_min_policy": "uniformly random actions",
            "ref_max_policy": "the waypoint controller without action noise",
            "episodes": REFERENCE_EPISODES,
            "episode_steps": layout.episode_steps,
        },
        "run": stats,
        "generation_seconds": stats.get("generation_seconds"),
        "generating_command": command,
        "library_versions": library_versions(["gymnasium-robotics"]),
        "policy_digest": _digest(name),
        "recipe_version": RECIPE_VERSION,
        "description": f"policyfit built-in maze dataset {name}: {RECIPES[kind]}",
    }
    if maze == "stitch":
        card["stitched_optimum"] = (
            "start (1, 2) -> (2, 2) -> (2, 3) -> goal (2, 4): the first half of sources 1-2 "
            "joined to the second half of sources 3-4; no trajectory takes it. ref_max_score is "
            f"the controller's return on it ({ref_max:.1f}); the best data return is "
            f"{max(p['return_max'] for p in stats['sources']):.1f}"
        )
        card["sources"] = "zhaoyizhou1123/mbrcsl @ 8986317: envs/pointmaze/config/maze_default.json"
        card["differences_from_mbrcsl"] = DIFFERENCES_FROM_MBRCSL
    else:
        card["sources"] = (
            "Farama-Foundation/minari-dataset-generation-scripts: scripts/pointmaze/"
            "create_pointmaze_dataset.py @ fb65edb7, controller.py @ 75fd1285, maze_solver.py @ "
            "f3d658ef"
        )
        card["differences_from_minari"] = DIFFERENCES_FROM_MINARI
    return card


def _dataset(
    name: str, size: int, seed: int, arrays: dict, extra: dict, stats: dict[str, Any]
) -> Dataset:
    maze, dense = parse_name(name)
    ref_min, ref_max = reference_scores(name)
    metadata = {
        "env_id": eval_env_id(maze, dense),
        "observation_space": box_space(np.full(6, -np.inf), np.full(6, np.inf)),
        "action_space": box_space(-np.ones(2), np.ones(2)),
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "behavior": "stitch" if maze == "stitch" else "waypoint-controller",
        "suite_name": name,
        "goal_observation": {
            "flattened": {"observation": [0, 4], "desired_goal": [4, 6]},
            "note": f"dict observations flattened: {' then '.join(GOAL_OBSERVATION_KEYS)}; "
            "achieved_goal is in the extra arrays achieved_goal and next_achieved_goal",
        },
        "extra_arrays": dict(extra),
    }
    ds = Dataset(**arrays, metadata=metadata, source=name)
    ds.metadata["card"] = _card(name, size, seed, stats, ds)
    return ds


def _write(ds: Dataset, name: str, path: Path, dataset_id: str) -> None:
    """The Minari dataset with dict observations, the collection environment as ``env_spec`` and
    the evaluation task as ``eval_env_spec`` (``recover_environment`` gives gymnasium-robotics'
    dict-observation environments, as Minari's own datasets do)."""
    maze, dense = parse_name(name)
    layout = MAZES[maze]
    reward = "dense" if dense else "sparse"
    if maze == "stitch":
        collect = {"maze_map": layout.eval_map(), "continuing_task": True, "reset_target": False}
        steps = layout.episode_steps
    else:
        collect = {"maze_map": layout.map_list, "continuing_task": True, "reset_target": True}
        steps = None
    env_spec = robotics_spec(maze, steps, reward_type=reward, **collect)
    eval_spec = robotics_spec(maze, layout.episode_steps, **eval_env_kwargs(maze, dense))
    write_minari(ds, path, dataset_id=dataset_id, env_spec=env_spec, eval_env_spec=eval_spec)


def make_dataset(
    name: str,
    size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
) -> Dataset:
    """Build (first call) or load (later calls) the built-in maze dataset ``name``.

    Written as a Minari dataset (dict observations) under
    ``$POLICYFIT_HOME/datasets/policyfit/<name>-v0`` (see :func:`minari_dataset_id`), or at
    ``out`` (a Minari folder; ``.hdf5``/``.npz`` files hold the flat observations). Read back
    flattened (:mod:`policyfit.data.spaces`). The cache folder also holds the flat arrays,
    :data:`FLAT_COPY`, which later calls read: Minari's layout stores every episode apart, and a
    million steps of goal-to-goal episodes (13,000 to 20,000 of them) take minutes to read back.

    Example:
        >>> ds = make_dataset("pointmaze-stitch", size=800, progress=False)   # doctest: +SKIP
        >>> ds.observation_dim, ds.env_id                                      # doctest: +SKIP
        (6, 'policyfit/PointMaze_Stitch-v3')
    """
    name = name.strip().lower()
    parse_name(name)
    size = default_size(name) if size is None else int(size)
    path = Path(out) if out is not None else _cache_path(name, size, seed)
    register_maze_envs()
    if out is None and _cache_is_valid(path, name):
        return _read_cache(path, name)
    rec, stats = _generate(name, size, seed, progress)
    arrays, extra = rec.arrays()
    ds = _dataset(name, size, seed, arrays, extra, stats)
    sibling = sibling_name(name)
    if out is None and sibling is not None:
        # the other reward type's dataset has the same trajectories: cache it from this run
        sibling_path = _cache_path(sibling, size, seed)
        if not _cache_is_valid(sibling_path, sibling):
            sibling_arrays = {**arrays, "rewards": rec.other_rewards[: rec.n]}
            stats_sibling = {**stats, "built_with": name}
            ds_sibling = _dataset(sibling, size, seed, sibling_arrays, extra, stats_sibling)
            _write_cache(ds_sibling, sibling, sibling_path, minari_dataset_id(sibling, size, seed))
    if out is None:
        return _write_cache(ds, name, path, minari_dataset_id(name, size, seed))
    if format_for_destination(path) == "minari":
        _write(ds, name, path, minari_dataset_id(name, size, seed))
        return _as_minari(ds, path, minari_dataset_id(name, size, seed))
    save_dataset(ds, path)
    return ds


FLAT_COPY = "policyfit_flat.npz"  # the flat arrays beside the Minari files of a cached dataset


def _as_minari(ds: Dataset, path: Path, dataset_id: str) -> Dataset:
    """``ds`` labelled as the Minari dataset at ``path`` (what :func:`read_minari` would label)."""
    ds.source = str(path)
    ds.metadata["source_format"] = "minari"
    ds.metadata["minari_dataset_id"] = dataset_id
    return ds


def _write_cache(ds: Dataset, name: str, path: Path, dataset_id: str) -> Dataset:
    _write(ds, name, path, dataset_id)
    ds = _as_minari(ds, path, dataset_id)
    save_dataset(ds, path / FLAT_COPY, format="npz")
    return ds


def _read_cache(path: Path, name: str) -> Dataset:
    """The flat copy when it is there and from this recipe, else the Minari files (and the flat
    copy written for next time)."""
    flat = path / FLAT_COPY
    if flat.is_file():
        try:
            ds = load_file(flat)
        except PolicyfitError:
            ds = None
        if ds is not None and (ds.metadata.get("card") or {}).get("policy_digest") == _digest(name):
            return _as_minari(ds, path, str(ds.metadata.get("minari_dataset_id")))
    ds = read_minari(path)
    save_dataset(ds, flat, format="npz")
    return ds


def _cache_is_valid(path: Path, name: str) -> bool:
    meta_file = path / "data" / "metadata.json"
    try:
        return meta_file.is_file() and _digest(name) in meta_file.read_text()
    except OSError:
        return False


def _robotics_available() -> bool:
    try:
        import_robotics()
    except PolicyfitError:
        return False
    return True


def list_datasets() -> list[dict[str, Any]]:
    """Rows for ``policyfit data list``: every maze name, cached?, its default size.

    ``behavior_normalized_score`` is None: the controller's episodes end at each goal, so their
    returns are not on the evaluation task's scale (the card has the reference scores).

    Example:
        >>> rows = list_datasets()
        >>> len(rows), rows[-1]["env_id"]
        (7, 'policyfit/PointMaze_Stitch-v3')
    """
    available = _robotics_available()
    rows = []
    for name in NAMES:
        maze, dense = parse_name(name)
        size = default_size(name)
        path = _cache_path(name, size, 0)
        rows.append(
            {
                "name": name,
                "env_id": eval_env_id(maze, dense),
                "behavior": "stitch" if maze == "stitch" else "waypoint-controller",
                "available": available,
                "cached": _cache_is_valid(path, name),
                "size": size,
                "behavior_normalized_score": None,
                "path": str(path),
            }
        )
    return rows


__all__ = [
    "FLAT_COPY",
    "NAMES",
    "REFERENCE_SCORES",
    "default_size",
    "generate_arrays",
    "is_maze_name",
    "list_datasets",
    "make_dataset",
    "measure_reference_scores",
    "minari_dataset_id",
    "parse_name",
    "reference_scores",
    "sibling_name",
    "stitch_plan",
]
