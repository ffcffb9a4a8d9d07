"""benchmarks/discrete_peer.py without d3rlpy: the policyfit side on a tiny budget, the mapping of
policyfit's hyperparameters onto d3rlpy's configs (with a recording stand-in for ``d3rlpy``), and
the result table built from hand-made rows whose means, ratios and verdicts are computed by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench_modules import benchmark


@pytest.fixture(scope="module")
def peer():
    with benchmark("discrete_peer") as module:
        yield module


def test_policyfit_side_trains_and_evaluates_on_the_documented_episodes(peer, tmp_path):
    from policyfit.envs.datasets import make_dataset
    from policyfit.envs.rollout import rollout_returns
    from policyfit.training.rundir import load_policy

    ds = make_dataset("cartpole-medium", size=600, seed=0)
    config = {**peer.CONFIGS["discrete_bc"], "hidden_dims": (16,)}
    row = peer.policyfit_run(
        ds, "discrete_bc", 3, 60, 2, tmp_path, config=config, fuse=20, fast_compile=True
    )
    assert row["library"] == "policyfit" and row["seed"] == 3 and row["updates"] == 60
    assert len(row["returns"]) == 2 and all(1.0 <= r <= 500.0 for r in row["returns"])
    assert row["updates_per_second"] > 0 and row["steady_updates_per_second"] > 0
    # the episodes are those of reset seeds 10_000 + 100 * seed + i, as d3rlpy's side uses
    policy = load_policy(tmp_path / "discrete_bc-cartpole-medium-s3")
    again, _ = rollout_returns(policy, "CartPole-v1", episodes=2, seed=10_300)
    assert [float(r) for r in again] == row["returns"]


def test_available_algos_splits_known_from_unknown(peer):
    assert peer.available_algos(["discrete_bc", "no_such_algo", "dqn"]) == (
        ["discrete_bc", "dqn"],
        ["no_such_algo"],
    )


def _recording_d3rlpy():
    calls = {}

    def rec(name):
        def make(**kw):
            calls[name] = kw
            return name

        return make

    names = ("DiscreteBCConfig", "DQNConfig", "DoubleDQNConfig", "DiscreteCQLConfig")
    fake = SimpleNamespace(
        models=SimpleNamespace(VectorEncoderFactory=lambda hidden_units: ("enc", hidden_units)),
        preprocessing=SimpleNamespace(StandardObservationScaler=lambda: "std"),
        optimizers=SimpleNamespace(AdamFactory=lambda: "adam"),
        algos=SimpleNamespace(**{n: rec(n) for n in names}),
    )
    return fake, calls


def test_d3rlpy_configs_carry_policyfit_hyperparameters(peer):
    fake, calls = _recording_d3rlpy()
    assert peer.d3rlpy_config(fake, "dqn", peer.CONFIGS["dqn"]) == "DoubleDQNConfig"
    q = calls["DoubleDQNConfig"]
    assert q["gamma"] == 0.9 and q["target_update_interval"] == 100
    assert q["batch_size"] == 128 and q["learning_rate"] == 1e-3
    assert q["encoder_factory"] == ("enc", [64, 64]) and q["observation_scaler"] == "std"
    single = {**peer.CONFIGS["dqn"], "double": False}
    assert peer.d3rlpy_config(fake, "dqn", single) == "DQNConfig"
    peer.d3rlpy_config(fake, "discrete_bc", peer.CONFIGS["discrete_bc"])
    assert calls["DiscreteBCConfig"]["beta"] == 0.0  # policyfit's BC has no logit penalty
    assert "gamma" not in calls["DiscreteBCConfig"]
    peer.d3rlpy_config(fake, "cql_discrete", peer.CONFIGS["cql_discrete"])
    assert calls["DiscreteCQLConfig"]["alpha"] == 0.1
    with pytest.raises(ValueError, match="no d3rlpy counterpart for bcq"):
        peer.d3rlpy_config(fake, "bcq", peer.CONFIGS["dqn"])


def test_add_scores_normalizes_the_mean_return(peer):
    rows = peer.add_scores([{"returns": [260.0, 500.0]}, {"error": "boom"}], (20.0, 500.0))
    assert rows[0]["score"] == pytest.approx(75.0)  # (50 + 100) / 2
    assert rows[1] == {"error": "boom"}


def _rows(lib, scores_by_dataset, rates, steady=None):
    out = []
    for d, scores in scores_by_dataset.items():
        for seed, score in enumerate(scores):
            out.append(
                {
                    "algo": "dqn",
                    "dataset": d,
                    "library": lib,
                    "seed": seed,
                    "score": score,
                    "updates_per_second": rates.pop(0),
                    "steady_updates_per_second": None if steady is None else steady.pop(0),
                }
            )
    return out


def test_summary_table_from_hand_made_rows(peer):
    pf = _rows(
        "policyfit",
        {"m": [40.0, 50.0, 60.0], "e": [90.0, 100.0, 110.0]},
        [300.0, 400.0, 500.0, 300.0, 300.0, 300.0],
        [900.0, 1000.0, 1100.0, 1200.0, 800.0, 1000.0],
    )
    d3 = _rows("d3rlpy", {"m": [45.0, 55.0, 65.0], "e": [80.0, 90.0, 100.0]}, [100.0, 50.0] * 3)
    err = [{"algo": "dqn", "dataset": "m", "library": "d3rlpy", "seed": 9, "error": "worker died"}]
    s = peer.summarize(pf + d3 + err, reps=500)["dqn"]
    pf_mean, d3_mean = s["mean_score"]["policyfit"], s["mean_score"]["d3rlpy"]
    assert pf_mean["estimate"] == pytest.approx(75.0)  # (50 + 100) / 2
    assert d3_mean["estimate"] == pytest.approx(72.5)  # (55 + 90) / 2
    # stratified resampling keeps one medium and one expert mean per replicate: within the extremes
    assert 65.0 <= pf_mean["ci_low"] < 75.0 < pf_mean["ci_high"] <= 85.0
    assert s["per_dataset"]["e"]["d3rlpy"]["estimate"] == pytest.approx(90.0)
    assert s["updates_per_second"]["policyfit"] == {"best": 500.0, "mean": 350.0}
    assert s["updates_per_second"]["d3rlpy"] == {"best": 100.0, "mean": 75.0}
    assert s["policyfit_steady_updates_per_second"]["best"] == 1200.0
    assert s["speedup_trainer_clock"] == pytest.approx(5.0)
    assert s["speedup_steady"] == pytest.approx(12.0)
    assert s["scores_agree"] is True and s["speedup_ge_3x"] is True
    assert s["errors"] == ["worker died"]

    md = peer.markdown(
        {"dqn": s},
        {
            "datasets": ["m", "e"],
            "size": 1000,
            "data_seed": 0,
            "updates": 2000,
            "seeds": [0, 1, 2],
            "episodes": 10,
            "d3rlpy_versions": {"d3rlpy": "2.8.1"},
            "torch_threads": 1,
            "load_average_end": [3.25, 2.0, 1.5],
            "cpus": 2,
        },
    )
    assert "| dqn | 75.0 [" in md and "| yes | 500 / 350 | 1,200 / 1,000 | 100 / 75 |" in md
    assert "| 5.00x | 12.00x |" in md and "load average at the end: 3.25, 2.00, 1.50" in md
    assert "| dqn | e | 100.0 [" in md and "- dqn: worker died" in md


def test_summary_flags_disagreeing_scores_and_slow_throughput(peer):
    pf = _rows("policyfit", {"m": [80.0, 90.0, 100.0]}, [10.0, 20.0, 30.0])
    d3 = _rows("d3rlpy", {"m": [0.0, 1.0, 2.0]}, [20.0, 20.0, 20.0])
    s = peer.summarize(pf + d3, reps=500)["dqn"]
    assert s["scores_agree"] is False
    assert s["speedup_steady"] is None and s["speedup_trainer_clock"] == pytest.approx(1.5)
    assert s["speedup_ge_3x"] is False
    assert np.isclose(s["mean_score"]["d3rlpy"]["estimate"], 1.0)
    assert "| NO |" in peer.markdown({"dqn": s}, _setup())


def _setup():
    return {
        "datasets": ["m"],
        "size": 10,
        "data_seed": 0,
        "updates": 1,
        "seeds": [0],
        "episodes": 1,
        "d3rlpy_versions": None,
        "torch_threads": 1,
        "load_average_end": [0.0, 0.0, 0.0],
        "cpus": 2,
    }
