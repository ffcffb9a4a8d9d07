"""The maze suite: planner and controller, Minari-compatible goal-dict datasets, MBRCSL's stitching
maze, reference scores, flat evaluation environments and a short IQL run."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")

from policyfit.data.io import load_dataset as load_file  # noqa: E402
from policyfit.data.io import save_dataset  # noqa: E402
from policyfit.envs import maze  # noqa: E402
from policyfit.envs.maze_control import MazeGrid, WaypointController, clip_action  # noqa: E402
from policyfit.envs.maze_env import (  # noqa: E402
    MAZES,
    eval_env_id,
    eval_env_kwargs,
    import_robotics,
    make_point_maze,
)
from policyfit.errors import ConfigError, PolicyfitError  # noqa: E402

SIZE = 2_000


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    keys = ("POLICYFIT_HOME", "MINARI_DATASETS_PATH")
    old = {k: os.environ.get(k) for k in keys}
    root = tmp_path_factory.mktemp("pfhome")
    os.environ["POLICYFIT_HOME"] = str(root)
    os.environ["MINARI_DATASETS_PATH"] = str(root / "datasets")  # where the cache lives
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def umaze(home):
    return maze.make_dataset("pointmaze-umaze", size=SIZE, progress=False)


@pytest.fixture(scope="module")
def stitch(home):
    return maze.make_dataset("pointmaze-stitch", size=800, progress=False)


# ------------------------------------------------------------------------------- planner
def test_planner_paths_and_coordinates():
    grid = MazeGrid.from_map(MAZES["umaze"].map_list)
    # the U: from the top-left cell around to the bottom-left one
    assert grid.path((1, 1), (3, 1)) == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    stitch_grid = MazeGrid.from_map(MAZES["stitch"].map_list)
    # MBRCSL's start (1, 2) to its goal (2, 4): the stitched route, not the detour via (1, 1)
    assert stitch_grid.path((1, 2), (2, 4)) == [(1, 2), (2, 2), (2, 3), (2, 4)]
    # 5 x 5 map, scaling 1: cell (1, 1) is at (-1, 1), cell (3, 3) at (1, -1)
    assert grid.cell_to_xy((1, 1)).tolist() == [-1.0, 1.0]
    assert grid.cell_to_xy((3, 3)).tolist() == [1.0, -1.0]
    assert grid.xy_to_cell(np.array([0.49, -0.51])) == (3, 2)
    env = make_point_maze(maze_map=MAZES["large"].map_list)
    large = MazeGrid.from_map(MAZES["large"].map_list)
    for cell in large.free_cells():  # the same coordinates as gymnasium-robotics' maze
        np.testing.assert_allclose(large.cell_to_xy(cell), env.maze.cell_rowcol_to_xy(cell))
        assert large.xy_to_cell(large.cell_to_xy(cell)) == tuple(
            env.maze.cell_xy_to_rowcol(large.cell_to_xy(cell))
        )
    env.close()


def test_controller_action_is_pd_on_the_waypoint():
    grid = MazeGrid.from_map(MAZES["umaze"].map_list)
    ctrl = WaypointController(grid)
    rng = np.random.default_rng(0)
    # ball in cell (1, 1) at (-1, 1), goal in (1, 3): first waypoint is (1, 2)'s centre (0, 1)
    action = ctrl.act(np.array([-1.0, 1.0]), np.array([0.2, -0.1]), np.array([1.0, 1.0]), rng)
    np.testing.assert_allclose(action, [10 * 1.0 - 0.2, 10 * 0.0 + 0.1])
    np.testing.assert_allclose(clip_action(action), [1.0, 0.1])


def test_controller_reaches_the_goal_on_umaze():
    """Without action noise the controller reaches the fixed goal in all 10 evaluation episodes
    (it did in 100 of 100 when the reference scores were measured)."""
    env = make_point_maze(**eval_env_kwargs("umaze", False))
    grid = MazeGrid.from_map(MAZES["umaze"].map_list)
    rng = np.random.default_rng(1)
    reached = 0
    for episode in range(10):
        obs, _ = env.reset(seed=episode)
        ctrl = WaypointController(grid)
        for _ in range(300):
            o = obs["observation"]
            action = clip_action(ctrl.act(o[:2], o[2:], obs["desired_goal"], rng))
            obs, _, _, _, info = env.step(action)
            if info["success"]:
                reached += 1
                break
    env.close()
    assert reached == 10


# ------------------------------------------------------------------------------- datasets
def test_names_and_sizes():
    assert maze.NAMES == (
        "pointmaze-umaze",
        "pointmaze-umaze-dense",
        "pointmaze-medium",
        "pointmaze-medium-dense",
        "pointmaze-large",
        "pointmaze-large-dense",
        "pointmaze-stitch",
    )
    assert maze.default_size("pointmaze-medium") == 1_000_000
    assert maze.default_size("pointmaze-stitch") == 200_000  # 4 x 250 trajectories of 200 steps
    assert [n for *_, n in maze.stitch_plan(2_000)] == [2, 2, 2, 4]
    with pytest.raises(ConfigError, match="pointmaze-stitch: size: must be a multiple of the 200"):
        maze.stitch_plan(1_000 + 50)
    with pytest.raises(PolicyfitError, match="pointmaze-open: name: not a built-in maze dataset"):
        maze.parse_name("pointmaze-open")
    assert eval_env_id("stitch", True) == "policyfit/PointMaze_Stitch-v3"


def test_umaze_arrays_follow_the_recipe(umaze):
    """Episodes end (truncation, no terminal) where the ball comes within 0.45 of its goal, with the
    sparse reward 1 there and 0 elsewhere; each episode keeps one goal; the flat observation is
    observation ++ desired_goal and achieved_goal is the position."""
    ds = umaze
    assert len(ds) == SIZE and ds.observation_dim == 6 and ds.action_dim == 2
    assert not ds.terminals.any()
    extra = ds.metadata["extra_arrays"]
    np.testing.assert_array_equal(extra["achieved_goal"], ds.observations[:, :2])
    np.testing.assert_array_equal(extra["next_achieved_goal"], ds.next_observations[:, :2])
    dist = np.linalg.norm(ds.next_observations[:, :2] - ds.next_observations[:, 4:], axis=1)
    np.testing.assert_array_equal(ds.rewards, (dist <= 0.45).astype(np.float32))
    ends = ds.episode_ends
    assert np.array_equal(ends[:-1], np.flatnonzero(ds.rewards)[: len(ends) - 1])
    assert ds.num_episodes > 10  # noisy controller: a goal every ~60 steps in this maze
    for ep in list(ds.episodes())[:-1]:
        assert np.all(ep.observations[:, 4:] == ep.observations[0, 4:])  # one goal per episode
        np.testing.assert_array_equal(ep.next_observations[:-1], ep.observations[1:])
    # the next episode starts where the ball is, with a new goal (Minari issue 265 avoided)
    first, second = ds.episode(0), ds.episode(1)
    np.testing.assert_array_equal(second.observations[0, :4], first.next_observations[-1, :4])
    assert not np.array_equal(second.observations[0, 4:], first.next_observations[-1, 4:])
    card = ds.metadata["card"]
    assert card["run"]["goals_reached"] == ds.num_episodes - 1
    assert card["generating_command"] == f"policyfit data make pointmaze-umaze --size {SIZE}"


def test_dense_sibling_has_the_same_trajectories(umaze, home):
    """Building pointmaze-umaze also caches pointmaze-umaze-dense: the same trajectories, reward
    exp(-|goal - xy|) of the next position."""
    dense = maze.make_dataset("pointmaze-umaze-dense", size=SIZE, progress=False)
    assert dense.metadata["card"]["run"]["built_with"] == "pointmaze-umaze"
    np.testing.assert_array_equal(dense.observations, umaze.observations)
    np.testing.assert_array_equal(dense.timeouts, umaze.timeouts)
    dist = np.linalg.norm(dense.next_observations[:, :2] - dense.next_observations[:, 4:], axis=1)
    np.testing.assert_allclose(dense.rewards, np.exp(-dist), rtol=1e-5)
    assert dense.env_id == "policyfit/PointMaze_UMazeDense-v3"
    arrays, _, _ = maze.generate_arrays("pointmaze-umaze-dense", size=300, progress=False)
    np.testing.assert_allclose(arrays["rewards"], dense.rewards[:300], rtol=1e-6)


def test_minari_reads_the_cache(umaze):
    import minari

    from policyfit.data.io import read_minari

    path = umaze.source
    assert umaze.metadata["source_format"] == "minari" and os.path.isdir(path)
    from_files = read_minari(path)  # the Minari files themselves
    assert from_files.fingerprint() == umaze.fingerprint()
    for key in ("achieved_goal", "next_achieved_goal"):
        got = from_files.metadata["extra_arrays"][key]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, umaze.metadata["extra_arrays"][key])
    again = maze.make_dataset("pointmaze-umaze", size=SIZE, progress=False)  # the flat copy
    assert again.fingerprint() == umaze.fingerprint() and again.source == path
    assert again.metadata["card"] == umaze.metadata["card"]
    m = minari.load_dataset(maze.minari_dataset_id("pointmaze-umaze", SIZE, 0))
    assert m.total_steps == SIZE and m.total_episodes == umaze.num_episodes
    assert sorted(m.observation_space.spaces) == ["achieved_goal", "desired_goal", "observation"]
    ep = next(iter(m))
    steps = len(ep.rewards)
    assert ep.observations["observation"].shape == (steps + 1, 4)
    assert ep.observations["desired_goal"].shape == (steps + 1, 2)
    assert ep.observations["achieved_goal"].shape == (steps + 1, 2)
    assert m.storage.metadata["ref_min_score"] == maze.REFERENCE_SCORES[("umaze", False)][0]
    eval_env = m.recover_environment(eval_env=True)
    assert eval_env.spec.max_episode_steps == 300
    assert eval_env.spec.kwargs["reset_target"] is False
    assert eval_env.spec.kwargs["maze_map"][1][1] == "g"
    eval_env.close()


def test_round_trips_keep_the_goal_dicts(umaze, tmp_path):
    again = save_dataset(umaze, tmp_path / "copy")  # a Minari folder: dicts again
    import minari

    copy = minari.MinariDataset(again / "data")
    assert sorted(copy.observation_space.spaces) == ["achieved_goal", "desired_goal", "observation"]
    assert load_file(again).fingerprint() == umaze.fingerprint()
    flat = load_file(save_dataset(umaze, tmp_path / "flat.npz"))
    assert flat.fingerprint() == umaze.fingerprint()
    np.testing.assert_array_equal(
        flat.metadata["extra_arrays"]["achieved_goal"], umaze.observations[:, :2]
    )


def test_stitch_sources_and_optimum(stitch):
    """One trajectory per source: sources 1-2 stay away from the goal cell, 3-4 visit (1, 1) before
    it; every data return is below the stitched optimum (ref_max_score)."""
    ds = stitch
    assert ds.num_episodes == 4 and set(ds.episode_lengths.tolist()) == {200}
    assert ds.env_id == "policyfit/PointMaze_Stitch-v3"
    grid = MazeGrid.from_map(MAZES["stitch"].map_list)
    cells = [[grid.xy_to_cell(xy) for xy in ep.observations[:, :2]] for ep in ds.episodes()]
    for i in (0, 1):
        assert cells[i][0] == (1, 2) and (2, 4) not in cells[i] and (2, 2) in cells[i]
    for i in (2, 3):
        assert cells[i].index((1, 1)) < cells[i].index((2, 1)) < cells[i].index((2, 4))
    # source 4 acts at random after reaching the goal, source 3 keeps holding it
    reach = cells[3].index((2, 4))
    assert np.abs(ds.episode(3).actions[reach + 5 :]).mean() > 0.3
    returns = ds.episode_returns()
    ref_min, ref_max = maze.REFERENCE_SCORES[("stitch", True)]
    assert returns.max() < 0.5 * ref_max
    card = ds.metadata["card"]
    assert [p["return_max"] for p in card["run"]["sources"]] == pytest.approx(returns.tolist())
    assert "(2, 3)" in card["stitched_optimum"]
    dist = np.linalg.norm(ds.next_observations[:, :2] - ds.next_observations[:, 4:], axis=1)
    np.testing.assert_allclose(ds.rewards, np.exp(-dist), rtol=1e-5)


def test_reference_scores_in_cards(umaze, stitch):
    for ds, key in ((umaze, ("umaze", False)), (stitch, ("stitch", True))):
        lo, hi = maze.REFERENCE_SCORES[key]
        assert ds.reference_scores() == (lo, hi) and hi > lo
        refs = ds.metadata["card"]["reference_scores"]
        assert (refs["ref_min_score"], refs["ref_max_score"]) == (lo, hi)
    assert set(maze.REFERENCE_SCORES) == {
        (m, d) for m in ("umaze", "medium", "large") for d in (False, True)
    } | {("stitch", True)}
    quick = maze.measure_reference_scores("stitch", True, episodes=2)
    assert quick["expert_success_rate"] == 1.0
    assert quick["expert_return_mean"] > 100 > 40 > quick["random_return_mean"]


def test_rollouts_flatten_goal_dicts():
    """The flat evaluation env and a raw gymnasium-robotics maze give the policy 6 numbers."""
    from policyfit.envs.rollout import rollout_returns

    seen = []

    def policy(obs):
        seen.append(obs.shape)
        return np.zeros((len(obs), 2))

    returns, lengths = rollout_returns(policy, "policyfit/PointMaze_UMaze-v3", episodes=1)
    assert lengths.tolist() == [300] and seen[0] == (1, 6)
    import_robotics()
    _, lengths = rollout_returns(policy, "PointMaze_UMaze-v3", episodes=1)
    assert lengths.tolist() == [300] and seen[-1] == (1, 6)


def test_missing_gymnasium_robotics_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(PolicyfitError, match="pip install 'gymnasium-robotics>=1.4'"):
        import_robotics()


def test_iql_trains_and_evaluates(umaze, tmp_path):
    import policyfit
    from policyfit.evaluation.rollout import evaluate

    result = policyfit.train(
        "iql",
        umaze,
        steps=200,
        eval_every=0,
        eval_episodes=2,
        out=tmp_path / "run",
        progress=False,
        fast_compile=True,
    )
    summary = result.summary
    assert summary["env_id"] == "policyfit/PointMaze_UMaze-v3"
    assert math.isfinite(summary["final_return_mean"])
    lo, hi = maze.REFERENCE_SCORES[("umaze", False)]
    expected = 100 * (summary["final_return_mean"] - lo) / (hi - lo)
    assert summary["final_normalized_score"] == pytest.approx(expected)
    again = evaluate(tmp_path / "run", episodes=2)
    assert again["length_mean"] == 300.0 and again["reference_scores"] == [lo, hi]
