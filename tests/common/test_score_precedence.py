"""One precedence rule for reference scores, the same in every place that reports a normalized score.

For a registered environment D4RL's reference returns win over the dataset's metadata; for any
other environment the metadata's ``ref_min_score``/``ref_max_score`` are used. The dataset summary,
the data card, the statistics, OPE, the trainer's summary and the rollout summary must all agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from pendulum_data import pendulum_dataset
from policyfit.common.scores import normalized_score, reference_origin, reference_scores
from policyfit.data import Dataset
from policyfit.errors import DatasetError

HOPPER = (-20.272305, 3234.3)  # D4RL's random and expert returns of Hopper
MISLEADING = {"ref_min_score": 0.0, "ref_max_score": 1000.0}
PENDULUM = {"ref_min_score": -1500.0, "ref_max_score": -100.0}


def expected(returns, refs):
    """The normalized score by hand: 100 (R - random) / (expert - random)."""
    lo, hi = refs
    return 100.0 * (float(np.mean(returns)) - lo) / (hi - lo)


def test_the_rule():
    assert reference_scores("Hopper-v5", MISLEADING) == HOPPER
    assert reference_scores("hopper", None) == HOPPER
    assert reference_scores("walker2d") == (1.629008, 4592.3)
    assert reference_scores("Pendulum-v1", PENDULUM) == (-1500.0, -100.0)
    assert reference_scores(None, PENDULUM) == (-1500.0, -100.0)
    assert reference_scores("Pendulum-v1", {"ref_min_score": 1.0}) is None
    assert reference_origin("Hopper-v5", MISLEADING) == "registry"
    assert reference_origin("Pendulum-v1", PENDULUM) == "dataset metadata"
    assert reference_origin("Pendulum-v1", {}) is None
    assert normalized_score([-1500.0, -800.0, -100.0], (-1500.0, -100.0)).tolist() == [
        0.0,
        50.0,
        100.0,
    ]
    with pytest.raises(DatasetError) as err:
        reference_scores("Pendulum-v1", {"ref_min_score": 5, "ref_max_score": 5.0}, source="d.npz")
    assert str(err.value) == (
        "d.npz: metadata.ref_max_score: ref_min_score and ref_max_score must be finite numbers "
        "that differ, got 5 and 5.0; fix the metadata or pass ref_scores=(random, expert)"
    )


def _hopper_dataset() -> Dataset:
    """Random Hopper-shaped data whose metadata claims other reference returns than D4RL's."""
    rng = np.random.default_rng(0)
    n, episode = 300, 50
    obs = rng.normal(size=(n + 1, 11)).astype(np.float32)
    return Dataset(
        observations=obs[:-1],
        actions=rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        rewards=rng.uniform(0, 3, size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
        timeouts=(np.arange(n) % episode) == episode - 1,
        next_observations=obs[1:],
        metadata={
            "env_id": "Hopper-v5",
            **MISLEADING,
            "action_space": {"type": "box", "low": [-1.0] * 3, "high": [1.0] * 3},
        },
        source="hopper-like",
    )


def _pendulum_dataset() -> Dataset:
    ds = pendulum_dataset(episodes=3)
    ds.metadata.update(PENDULUM)
    return ds


@pytest.mark.parametrize(
    ("make", "refs", "origin"),
    [
        (_hopper_dataset, HOPPER, "registry"),
        (_pendulum_dataset, (-1500.0, -100.0), "dataset metadata"),
    ],
    ids=["registered-env", "metadata-only"],
)
def test_every_place_uses_the_same_reference_scores(tmp_path, make, refs, origin):
    from policyfit.diagnostics.card import diagnose
    from policyfit.evaluation.ope import FQEConfig, fitted_q_evaluation
    from policyfit.evaluation.rollout import evaluate
    from policyfit.evaluation.stats import return_summary
    from policyfit.training.trainer import train

    ds = make()
    data_returns = ds.episode_returns()

    # the dataset summary
    summary = ds.summary()
    assert (summary["ref_min_score"], summary["ref_max_score"]) == refs
    assert summary["normalized_return_mean"] == pytest.approx(expected(data_returns, refs))

    # the data card
    card = diagnose(ds, reference=None, sample_size=100)
    assert (card.tq["ref_min_score"], card.tq["ref_max_score"]) == refs
    assert card.tq["source"] == origin
    assert card.summary["normalized_return_mean"] == pytest.approx(expected(data_returns, refs))

    # the statistics
    stats = return_summary(data_returns, ds.env_id, metadata=ds.metadata, reps=100)
    assert stats["normalized_score_mean"] == pytest.approx(expected(data_returns, refs))

    # OPE
    act_dim = ds.action_dim
    fqe = fitted_q_evaluation(
        ds,
        lambda o: np.zeros((len(o), act_dim), np.float32),
        config=FQEConfig(iterations=100, target_update_every=20, hidden_dims=(16,), bootstrap=0),
    )
    assert fqe.normalized_score == pytest.approx(expected(fqe.return_estimate, refs))

    # the trainer's summary (the data's score and its own evaluation)
    run = train(
        "bc",
        ds,
        steps=10,
        config={"hidden_dims": (16,), "batch_size": 32},
        out=tmp_path / "run",
        eval_every=10,
        eval_episodes=1,
        progress=False,
        fuse=10,
        fast_compile=True,
    )
    s = run.summary
    assert s["data_normalized_return_mean"] == pytest.approx(expected(data_returns, refs))
    assert s["final_normalized_score"] == pytest.approx(expected(s["final_return_mean"], refs))

    # the rollout summary of the run directory (metadata read back from config.json)
    result = evaluate(run.run_dir, episodes=1, seed=0)
    assert result["reference_scores"] == list(refs)
    assert result["normalized_score"] == pytest.approx(expected(result["returns"], refs))
