"""FQE, the bootstrap statistics and the certificate: bad options fail first, in one line."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from policyfit.data import Dataset
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.evaluation import ope
from policyfit.evaluation.certify import (
    action_deviation_attack,
    certify_policy,
    dkw_epsilon,
    smoothing_certificate,
)
from policyfit.evaluation.ope import FQEConfig, chunk_lengths, fitted_q_evaluation
from policyfit.evaluation.stats import (
    aggregate_scores,
    bootstrap_ci,
    performance_profile,
    return_summary,
)


def terminal_dataset(n: int = 600, seed: int = 1) -> Dataset:
    """Every transition terminal with r = a: J(pi) = pi(s0) exactly, for any discount."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    return Dataset(
        observations=obs,
        actions=act,
        rewards=act[:, 0].copy(),
        terminals=np.ones(n, bool),
        next_observations=obs[::-1].copy(),
        source="terminal",
    )


def constant(a: float):
    return lambda o: np.full((len(o), 1), a, np.float32)


SMALL = FQEConfig(
    discount=0.99, iterations=1_000, target_update_every=100, batch_size=128,
    learning_rate=1e-3, hidden_dims=(32, 32), bootstrap=0, fuse=500,
)  # fmt: skip


# ------------------------------------------------------------------ FQE
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iterations": 0}, "iterations: must be an integer >= 1, got 0"),
        ({"fuse": 0}, "fuse: must be an integer >= 1, got 0"),
        ({"target_update_every": -1}, "target_update_every: must be an integer >= 1, got -1"),
        ({"batch_size": 12.5}, "batch_size: must be an integer >= 1, got 12.5"),
        ({"bootstrap": -1}, "bootstrap: must be an integer >= 0, got -1"),
        ({"discount": 1.0}, "discount: must be a finite number in (0, 1), got 1.0"),
        ({"confidence": 95}, "confidence: must be a finite number in (0, 1), got 95"),
        ({"learning_rate": "3e-4"}, "learning_rate: must be a finite number in (0, inf), got '3e-4'"),
        ({"hidden_dims": 256}, "hidden_dims: must be a sequence of layer widths, got 256"),
        ({"hidden_dims": (256, -1)}, "hidden_dims: must be an integer >= 1, got -1"),
    ],
)  # fmt: skip
def test_fqe_config_errors(changes, message):
    cfg = dataclasses.replace(SMALL, **changes)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        fitted_q_evaluation(terminal_dataset(50), constant(0.5), config=cfg)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed: must be an integer >= 0, got -1"),
        ({"horizon": 0}, "horizon: must be an integer >= 1, got 0"),
        (
            {"ref_scores": (3.0, 3.0)},
            "ref_scores: the random and expert returns must be finite and differ, got (3, 3)",
        ),
        (
            {"ref_scores": 3.0},
            "ref_scores: must be (random_return, expert_return) or a dict with ref_min_score and "
            "ref_max_score, got 3.0",
        ),
        ({"config": {"iterations": 10}}, "config: must be an FQEConfig, not dict"),
    ],
)
def test_fqe_argument_errors(kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        fitted_q_evaluation(terminal_dataset(50), constant(0.5), **{"config": SMALL, **kwargs})


def test_fqe_policy_returning_the_wrong_number_of_rows():
    with pytest.raises(
        PolicyfitError,
        match=re.escape(
            "actions: the policy returned 1 actions for 50 observations; it must return one "
            "action per row of its [B, obs_dim] input"
        ),
    ):
        fitted_q_evaluation(
            terminal_dataset(50), lambda o: np.zeros((1, 1), np.float32), config=SMALL
        )


def test_chunk_lengths():
    assert chunk_lengths(1_000, 500) == [500, 500]
    assert chunk_lengths(1_250, 500) == [500, 500, 250]
    assert chunk_lengths(300, 500) == [300]
    assert chunk_lengths(7, 1) == [1] * 7


def spy_on_chunks(monkeypatch) -> list[int]:
    """Record the length of every jitted chunk FQE runs."""
    lengths: list[int] = []
    real = ope._fqe_program

    def program(*args):
        q, init_state, run_chunk = real(*args)

        def counted(state, data, key, length):
            lengths.append(length)
            return run_chunk(state, data, key, length)

        return q, init_state, counted

    monkeypatch.setattr(ope, "_fqe_program", program)
    return lengths


def test_fqe_runs_an_iteration_count_that_is_not_a_multiple_of_fuse(monkeypatch):
    lengths = spy_on_chunks(monkeypatch)
    cfg = dataclasses.replace(SMALL, iterations=1_130)  # 500 + 500 + 130
    res = fitted_q_evaluation(terminal_dataset(), constant(0.7), config=cfg)
    assert lengths == [500, 500, 130]
    assert res.value == pytest.approx(0.7, abs=0.08)  # J = pi(s0) = 0.7
    assert res.episode_length == pytest.approx(1.0, abs=0.1)
    assert res.config["iterations"] == 1_130


def test_fqe_with_a_multiple_of_fuse_runs_full_chunks_only(monkeypatch):
    """The old path: iterations / fuse chunks of fuse steps each, nothing else."""
    lengths = spy_on_chunks(monkeypatch)
    res = fitted_q_evaluation(terminal_dataset(), constant(-0.4), config=SMALL)
    assert lengths == [500, 500]
    assert res.value == pytest.approx(-0.4, abs=0.08)


# ------------------------------------------------------------------ stats
@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (
            lambda: bootstrap_ci(["a", "b"]),
            PolicyfitError,
            "values: must be numbers (a sequence or an array), got list",
        ),
        (lambda: bootstrap_ci([1.0, 2.0], reps=0), ConfigError, "reps: must be an integer >= 1, got 0"),
        (lambda: bootstrap_ci([1.0, 2.0], seed=-3), ConfigError, "seed: must be an integer >= 0, got -3"),
        (
            lambda: bootstrap_ci([1.0, 2.0], confidence="95%"),
            ConfigError,
            "confidence: must be a finite number in (0, 1), got '95%'",
        ),
        (
            lambda: return_summary([1.0, 2.0], ref_scores=(10.0, 10.0)),
            ConfigError,
            "ref_scores: the random and expert returns must be finite and differ, got (10, 10)",
        ),
        (
            lambda: aggregate_scores([[1.0, 2.0]]),
            PolicyfitError,
            "scores: must map each algorithm to its runs x tasks scores, got list",
        ),
        (
            lambda: aggregate_scores({"bc": 5.0}),
            PolicyfitError,
            "scores[bc]: expected runs x tasks scores, got float",
        ),
        (
            lambda: aggregate_scores({"bc": [[1.0], ["x"]]}),
            PolicyfitError,
            "scores[bc]: must be numbers (a sequence or an array), got list",
        ),
        (
            lambda: aggregate_scores({"bc": np.ones((3, 2))}, gamma=float("nan")),
            ConfigError,
            "gamma: must be a finite number, got nan",
        ),
        (lambda: performance_profile({}), PolicyfitError, "scores: needs the scores of at least one algorithm"),
        (
            lambda: performance_profile({"bc": np.ones((3, 2))}, taus=[]),
            PolicyfitError,
            "taus: needs at least one finite threshold",
        ),
    ],
)  # fmt: skip
def test_stats_errors(call, kind, message):
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        call()


def test_a_single_metric_name_is_one_metric():
    agg = aggregate_scores({"bc": np.array([[40.0], [50.0], [60.0]])}, metrics="mean", reps=50)
    assert list(agg["bc"]) == ["mean"] and agg["bc"]["mean"]["estimate"] == 50.0


# ------------------------------------------------------------------ certify
def no_rollouts(*args, **kwargs):
    raise AssertionError("options must be checked before any rollout")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigmas": [0.1, -0.2]}, "sigma: must be a finite number in (0, inf), got -0.2"),
        ({"sigmas": []}, "sigma: give at least one --sigma"),
        ({"alpha": 1.5}, "alpha: must be a finite number in (0, 1), got 1.5"),
        ({"budget": float("inf")}, "budget: must be a finite number in [0, inf), got inf"),
        ({"episodes": 1}, "episodes: must be an integer >= 2, got 1"),
        ({"attack_episodes": 0}, "attack_episodes: must be an integer >= 1, got 0"),
        ({"grid": 1}, "grid: must be an integer >= 2, got 1"),
        ({"horizon": 0}, "horizon: must be an integer >= 1, got 0"),
        ({"max_envs": 0}, "max_envs: must be an integer >= 1, got 0"),
        ({"floor": "min"}, "floor: must be a finite number, got 'min'"),
    ],
)
def test_certify_options_are_checked_before_rolling_out(monkeypatch, kwargs, message):
    import policyfit.evaluation.rollout as rollout

    monkeypatch.setattr(rollout, "rollout_returns", no_rollouts)
    options = {"sigmas": [0.1], "budget": 0.5, "horizon": 100, **kwargs}
    with pytest.raises(ConfigError if "--sigma" not in message else PolicyfitError) as info:
        certify_policy(lambda o: o, "Pendulum-v1", **options)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: smoothing_certificate([1.0, 2.0], sigma="0.1", budget=0.0), "sigma: must be a finite number in (0, inf), got '0.1'"),
        (lambda: smoothing_certificate([1.0, 2.0], sigma=0.1, budget=[0.1, -1]), "budget: must be finite and >= 0, got [0.1, -1]"),
        (lambda: smoothing_certificate([1.0, 2.0], sigma=0.1, budget="big"), "budget: must be numbers, got 'big'"),
        (lambda: smoothing_certificate(["a"], sigma=0.1, budget=0.0), "returns: must be numbers, got ['a']"),
        (lambda: dkw_epsilon(0, 0.05), "episodes: must be an integer >= 1, got 0"),
        (lambda: action_deviation_attack(lambda o: o, 0.1, candidates=0), "candidates: must be an integer >= 1, got 0"),
    ],
)  # fmt: skip
def test_certificate_argument_errors(call, message):
    with pytest.raises(PolicyfitError, match=f"^{re.escape(message)}$"):
        call()
