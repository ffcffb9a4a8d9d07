"""benchmarks/dataset_quality_discrete.py without training: the analysis of hand-made dataset and
run rows (verdicts, stratified-bootstrap intervals, Spearman correlations computed by hand), the
kill-safe runs file, the budget guard, the plan of a resumed grid and TQ's complete episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench_modules import benchmark


@pytest.fixture(scope="module")
def dq():
    with benchmark("dataset_quality_discrete") as module:
        yield module


# TQ and SACo per (env, kind): per env, expert is the high-TQ and random the low-TQ dataset;
# replay the high-SACo and expert the low-SACo one (the medians are replay's TQ, random's SACo).
DATASETS = {
    ("cartpole", "random"): (0.0, 0.8),
    ("cartpole", "replay"): (0.3, 1.0),
    ("cartpole", "expert"): (1.0, 0.2),
    ("acrobot", "random"): (0.05, 0.7),
    ("acrobot", "replay"): (0.4, 1.0),
    ("acrobot", "expert"): (0.9, 0.1),
}
BC = {
    ("cartpole", "random"): [0.0, 0.0],
    ("cartpole", "replay"): [20.0, 30.0],
    ("cartpole", "expert"): [40.0, 60.0],
    ("acrobot", "random"): [0.0, 0.0],
    ("acrobot", "replay"): [20.0, 30.0],
    ("acrobot", "expert"): [80.0, 100.0],
}
DQN = {
    ("cartpole", "random"): [10.0, 10.0],
    ("cartpole", "replay"): [90.0, 100.0],
    ("cartpole", "expert"): [0.0, 0.0],
    ("acrobot", "random"): [10.0, 10.0],
    ("acrobot", "replay"): [90.0, 100.0],
    ("acrobot", "expert"): [0.0, 0.0],
}


def dataset_rows():
    return [
        {
            "env": e,
            "kind": k,
            "dataset": f"{e}-{k}",
            "transitions": 1000,
            "episodes": 11,
            "complete_episodes": 10,
            "return_mean": 100.0 * tq,
            "tq": tq,
            "saco": saco,
        }
        for (e, k), (tq, saco) in DATASETS.items()
    ]


def run_rows(scores_by_algo):
    return [
        {
            "env": e,
            "kind": k,
            "dataset": f"{e}-{k}",
            "algorithm": algo,
            "seed": seed,
            "score": score,
            "wall_seconds": 2.0 if algo == "dqn" else 1.0,
        }
        for algo, cells in scores_by_algo.items()
        for (e, k), scores in cells.items()
        for seed, score in enumerate(scores)
    ]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_analysis_of_a_hand_made_runs_file(dq, tmp_path):
    runs = write_rows(tmp_path / "runs.jsonl", run_rows({"discrete_bc": BC, "dqn": DQN}))
    out = dq.analyze(dataset_rows(), dq.read_rows(runs), reps=2000)
    assert out["envs"] == ["cartpole", "acrobot"] and out["kinds"] == ["random", "replay", "expert"]

    # BC on expert: env means 50 and 90 -> 70; a stratified replicate's env mean is the low seed
    # with probability 1/4, so both low seeds (mean 60) come with probability 1/16 > 2.5 %: the
    # 95% interval is exactly [60, 80].
    bc_expert = out["table"]["discrete_bc"]["expert"]
    assert bc_expert["estimate"] == pytest.approx(70.0)
    assert bc_expert["ci_low"] == pytest.approx(60.0) and bc_expert["ci_high"] == pytest.approx(
        80.0
    )
    assert out["table"]["dqn"]["replay"]["estimate"] == pytest.approx(95.0)
    assert out["per_kind"]["expert"] == {
        "tq": pytest.approx(0.95),
        "saco": pytest.approx(0.15),
        "envs": 2,
    }

    assert out["groups"]["tq"] == {
        "high": ["cartpole-expert", "acrobot-expert"],
        "low": ["cartpole-random", "acrobot-random"],
    }
    assert out["groups"]["saco"]["high"] == ["cartpole-replay", "acrobot-replay"]
    assert out["groups"]["saco"]["low"] == ["cartpole-expert", "acrobot-expert"]

    a = out["findings"]["a_bc_like_high_tq"]
    assert a["verdict"] == "reproduces"
    assert [c["holds"] for c in a["checks"]] == [True, True]
    assert a["checks"][1]["left"]["estimate"] == pytest.approx(70.0)  # BC-like on high TQ
    assert a["checks"][1]["right"]["estimate"] == pytest.approx(0.0)  # DQN on high TQ
    b = out["findings"]["b_off_policy_need_saco"]
    assert b["verdict"] == "reproduces"
    assert b["checks"][0]["text"].startswith("DQN: high-SACo data > low-SACo data: 95.0 [")
    assert out["findings"]["c_constrained_in_between"]["verdict"].startswith("not testable")

    # Spearman of BC's cell means (0, 25, 50, 0, 25, 90) with TQ (0, .3, 1, .05, .4, .9):
    # ranks (1.5, 3.5, 5, 1.5, 3.5, 6) and (1, 3, 6, 2, 4, 5): 15.5 / sqrt(16.5 * 17.5)
    rho = out["spearman"]["discrete_bc"]["tq"]
    assert rho["n"] == 6 and rho["rho"] == pytest.approx(15.5 / np.sqrt(16.5 * 17.5))
    assert out["timing"]["per_algorithm_mean_seconds"] == {"discrete_bc": 1.0, "dqn": 2.0}
    assert dq.projection_seconds(out["timing"], 15, 3, ["discrete_bc", "dqn", "rem"]) == 135.0


def test_findings_that_do_not_reproduce_say_so_with_the_numbers(dq):
    # DQN as good on expert (low SACo) as on replay: finding (b) fails, and (a) half fails
    strong = {**DQN, ("cartpole", "expert"): [100.0, 100.0], ("acrobot", "expert"): [100.0, 100.0]}
    out = dq.analyze(dataset_rows(), run_rows({"discrete_bc": BC, "dqn": strong}), reps=500)
    b = out["findings"]["b_off_policy_need_saco"]
    assert b["verdict"] == "does not reproduce"
    assert [c["holds"] for c in b["checks"]] == [False, False]
    assert b["checks"][1]["text"] == (
        "DQN < BC-like on low-SACo data (fails where BC does not): "
        "100.0 [100.0, 100.0] < 70.0 [60.0, 80.0] -> NO"
    )
    a = out["findings"]["a_bc_like_high_tq"]
    assert a["verdict"] == "partly reproduces (1 of 2 checks hold)"

    md = dq.markdown(out, _setup(), "plot.png")
    assert "**does not reproduce**" in md and "| BC | 0.0 [0.0, 0.0] | 25.0 [20.0, 30.0] |" in md
    assert "| *TQ* | 0.03 | 0.35 | 0.95 | |" in md and "![TQ-SACo plane](plot.png)" in md
    assert "| acrobot-expert | 1,000 | 11 (10) | 90.0 | 0.90 | 0.10 |" in md


def test_plot_writes_a_png(dq, tmp_path):
    out = dq.analyze(dataset_rows(), run_rows({"discrete_bc": BC, "dqn": DQN}), reps=100)
    path = dq.plot(out, tmp_path / "plane.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def _setup():
    return {
        "budget": {
            "size": 1000,
            "data_seed": 0,
            "reference": "replay",
            "steps": 300,
            "hidden_dims": [64, 64],
            "learning_rate": 1e-3,
            "batch_size": 128,
            "overrides": {},
            "episodes": 10,
            "eval_seed": 0,
        },
        "seeds": [0, 1],
        "commit": "abc",
        "cpu": "cpu",
        "runs": 24,
        "run_seconds": 36.0,
        "jobs": 1,
        "projected_full_grid_seconds": 600.0,
    }


def test_runs_file_survives_a_killed_write(dq, tmp_path):
    path = tmp_path / "runs.jsonl"
    dq.append_row(path, {"env": "cartpole", "kind": "expert", "algorithm": "dqn", "seed": 0})
    with open(path, "a") as f:
        f.write('{"env": "cartpole", "ki')  # killed mid-line
    dq.append_row(path, {"env": "cartpole", "kind": "expert", "algorithm": "dqn", "seed": 1})
    rows = dq.read_rows(path)
    assert [r["seed"] for r in rows] == [0, 1]
    assert path.read_text().count("\n") == 3  # the partial line was closed, not glued to


def test_rerun_plans_only_unfinished_runs_seed_major(dq, tmp_path):
    args = dq.parse_args(
        [
            "--envs",
            "cartpole",
            "--datasets",
            "random,expert",
            "--algorithms",
            "discrete_bc,dqn",
            "--seeds",
            "2",
            "--set",
            "dqn.discount=0.9",
        ]
    )
    done = {("cartpole", "random", "dqn", 0), ("cartpole", "expert", "discrete_bc", 1)}
    tasks = dq.plan_tasks(args, tmp_path, done)
    assert [(t["kind"], t["algorithm"], t["seed"]) for t in tasks] == [
        ("random", "discrete_bc", 0),
        ("expert", "discrete_bc", 0),
        ("expert", "dqn", 0),
        ("random", "discrete_bc", 1),
        ("random", "dqn", 1),
        ("expert", "dqn", 1),
    ]
    dqn = tasks[2]["config"]
    # --set wins (as a string: policyfit.train coerces it to the field's type)
    assert dqn["discount"] == "0.9" and dqn["target_update_period"] == 100
    assert dqn["hidden_dims"] == (64, 64) and dqn["batch_size"] == 128
    assert "discount" not in tasks[0]["config"]
    assert dq.algo_config("bcq_discrete", "mountaincar", args)["target_tau"] is None
    assert dq.algo_config("crr", "acrobot", args)["discount"] == 0.99
    assert dq.parse_seeds("0,4") == [0, 4] and dq.parse_seeds("3") == [0, 1, 2]


def test_a_work_directory_refuses_another_budget(dq, tmp_path):
    from policyfit.errors import ConfigError

    args = dq.parse_args(["--steps", "300"])
    dq.check_budget(tmp_path, dq.budget_of(args))
    dq.check_budget(tmp_path, dq.budget_of(args))  # same budget: fine
    with pytest.raises(ConfigError, match=r"steps=300 \(now 400\)"):
        dq.check_budget(tmp_path, dq.budget_of(dq.parse_args(["--steps", "400"])))


def test_tq_counts_only_complete_episodes(dq):
    import numpy as np

    from policyfit.data.dataset import Dataset

    # two full CartPole episodes (500 steps, time limit), a terminated one of 30, and 200 steps
    # cut by the dataset's size
    lengths, ends = [500, 500, 30, 200], ["timeout", "timeout", "terminal", "timeout"]
    n = sum(lengths)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    for stop, end in zip(np.cumsum(lengths) - 1, ends, strict=True):
        (terminals if end == "terminal" else timeouts)[stop] = True
    ds = Dataset(
        observations=np.zeros((n, 4), np.float32),
        actions=np.zeros(n, np.int64),
        rewards=np.ones(n, np.float32),
        terminals=terminals,
        timeouts=timeouts,
        next_observations=np.zeros((n, 4), np.float32),
    )
    returns, cut = dq.complete_episode_returns(ds, 500)
    assert returns.tolist() == [500.0, 500.0, 30.0] and cut == 1
    assert dq.complete_episode_returns(ds, None)[0].tolist() == [500.0, 500.0, 30.0, 200.0]
