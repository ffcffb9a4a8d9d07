"""Sweep specs: validation with clear errors, grid expansion, results tables without Ray."""

from __future__ import annotations

import json

import pytest

from policyfit.errors import ConfigError, PolicyfitError
from policyfit.sweep.results import compare_runs, summarize_rows, write_results
from policyfit.sweep.runner import run_trial
from policyfit.sweep.spec import expand_trials, read_spec, spec_from_dict

SPEC = """
algorithms: [iql, td3bc]
datasets: [hopper-medium, data/walker.hdf5]
seeds: [0, 1, 2]
steps: 1000
eval_episodes: 3
overrides: {iql: {expectile: [0.7, 0.9]}}
config: {td3bc: {alpha: 2.0}}
"""


def test_grid_expands_algorithms_datasets_overrides_and_seeds(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SPEC)
    trials = expand_trials(read_spec(path))
    # iql: 2 datasets x 2 expectiles x 3 seeds; td3bc: 2 datasets x 3 seeds
    assert len(trials) == 12 + 6
    ids = [t.trial_id for t in trials]
    assert len(set(ids)) == len(ids)
    assert "iql-hopper-medium-expectile=0.9-s2" in ids
    assert "td3bc-walker-s0" in ids
    iql = [t for t in trials if t.algorithm == "iql" and t.overrides["expectile"] == 0.9]
    assert {t.variant for t in iql} == {"iql[expectile=0.9]"}
    assert all(t.config == {"alpha": 2.0} for t in trials if t.algorithm == "td3bc")
    assert all(t.steps == 1000 and t.eval_episodes == 3 for t in trials)
    assert not any(t.tensorboard for t in trials)
    with_tb = spec_from_dict({"algorithms": ["iql"], "datasets": ["d"], "tensorboard": True})
    assert all(t.tensorboard for t in expand_trials(with_tb))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"datasets": ["d"]}, "algorithms: is required"),
        ({"algorithms": ["nope"], "datasets": ["d"]}, "unknown algorithm"),
        ({"algorithms": ["iql"], "datasets": ["d"], "seedz": [1]}, "unknown key"),
        ({"algorithms": ["iql"], "datasets": ["d"], "steps": 0}, "steps: must be an integer"),
        (
            {"algorithms": ["iql"], "datasets": ["d"], "overrides": {"iql": {"taux": [1]}}},
            "unknown config key 'taux'",
        ),
        (
            {"algorithms": ["iql"], "datasets": ["d"], "overrides": {"bc": {"x": [1]}}},
            "not in algorithms",
        ),
        (
            {"algorithms": ["iql"], "datasets": ["d"], "tensorboard": "yes"},
            "tensorboard: must be true or false",
        ),
    ],
)
def test_bad_specs_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        spec_from_dict(values, "s.yaml")


def test_missing_or_broken_spec_file(tmp_path):
    with pytest.raises(PolicyfitError, match="no such file"):
        read_spec(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithms: [iql\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_spec(bad)


def test_failed_trial_is_recorded_not_raised(tmp_path):
    trial = expand_trials(
        spec_from_dict({"algorithms": ["bc"], "datasets": [str(tmp_path / "missing.npz")]})
    )[0]
    row = run_trial(trial.to_dict(), str(tmp_path / "t"))
    assert row["status"] == "failed" and "missing.npz" in row["error"]
    assert (tmp_path / "t" / "error.txt").is_file()


def _fake_run(dir_, algo, dataset, seed, score):
    dir_.mkdir(parents=True)
    summary = {"algorithm": algo, "dataset": dataset, "seed": seed, "steps": 10,
               "final_normalized_score": score, "final_return_mean": score * 10}  # fmt: skip
    (dir_ / "summary.json").write_text(json.dumps(summary))


def test_compare_and_results_files(tmp_path):
    for seed, (a, b) in enumerate([(40.0, 60.0), (50.0, 70.0), (60.0, 80.0)]):
        _fake_run(tmp_path / f"bc-d1-s{seed}", "bc", "d1", seed, a)
        _fake_run(tmp_path / f"bc-d2-s{seed}", "bc", "d2", seed, b)
    res = compare_runs(sorted(tmp_path.iterdir()), reps=300)
    assert res["score"] == "final_normalized_score" and res["runs"] == 6
    agg = res["aggregates"]["bc"]
    assert agg["mean"]["estimate"] == pytest.approx(60.0)
    assert agg["optimality_gap"]["estimate"] == pytest.approx(40.0)
    assert [c["mean"] for c in res["cells"]] == [50.0, 70.0]
    out = tmp_path / "report"
    write_results(out, res["rows"], reps=300)
    md = (out / "results.md").read_text()
    assert "| bc | 2 | 60.0 [" in md
    assert (out / "results.csv").read_text().startswith("trial_id,variant,")
    assert (out / "profiles.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PolicyfitError, match="not a run directory"):
        compare_runs([tmp_path / "nothing"])
    summary = summarize_rows([{"variant": "x", "dataset": "d", "seed": 0, "status": "failed"}])
    assert summary["failed"] == 1 and summary["aggregates"] == {}
