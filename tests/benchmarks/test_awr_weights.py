"""benchmarks/awr_weights.py: the split of IQL's AWR weights by the corruption mask, by hand.

The run under test is built by hand rather than trained: a checkpoint whose target critics are
``Q_k(s, a) = w0_k relu(a) + w1_k relu(-a) + b_k`` (the observation is ignored) and whose value
net is the constant ``V = 0.2``; the corrupted rows of the data take the action ``+0.8`` (in the
unit box), the clean rows ``-0.8``. Advantages, weights ``min(exp(beta A), 100)`` and their split
then follow in closed form, and the script's numbers must equal them. The online critic is the
negative of the target (the script must use the target, as IQL's update does) and the ensemble
reduction must be the configured one (minimum for IQL, the 0.25-quantile for RIQL).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench_modules import benchmark

W0 = np.array([2.0, 1.5, 3.0, 2.5, 1.8])  # per critic: slope for a > 0
W1 = np.array([0.5, 1.0, 0.2, 0.6, 0.9])  # slope for a < 0
B = np.array([0.1, 0.0, -0.1, 0.05, 0.2])
V = 0.2
BETA = 2.0
MASK = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=bool)  # 3 of 10 rows corrupted


@pytest.fixture(scope="module")
def awr():
    with benchmark("awr_weights") as module:
        yield module


def critic_params(params, n_critics: int, sign: float):
    p = params["params"]["Vmap_Critic_0"]
    kernel = np.zeros(p["MLP_0"]["Dense_0"]["kernel"].shape)  # [K, obs + act, 2]
    kernel[:, -1, 0], kernel[:, -1, 1] = 1.0, -1.0  # hidden units relu(a), relu(-a)
    out = np.stack([W0[:n_critics], W1[:n_critics]], axis=1)[..., None]  # [K, 2, 1]
    return {
        "params": {
            "Vmap_Critic_0": {
                "MLP_0": {
                    "Dense_0": {
                        "kernel": jnp.asarray(kernel, jnp.float32),
                        "bias": jnp.zeros(p["MLP_0"]["Dense_0"]["bias"].shape),
                    }
                },
                "Dense_0": {
                    "kernel": jnp.asarray(sign * out, jnp.float32),
                    "bias": jnp.asarray(sign * B[:n_critics, None], jnp.float32),
                },
            }
        }
    }


def make_run(
    tmp_path: Path, algo_name: str, n_critics: int, beta: float = BETA
) -> tuple[Path, Path]:
    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.registry import get_algorithm
    from policyfit.training.checkpoint import save_checkpoint
    from policyfit.training.rundir import RunDir

    spec = DatasetSpec(observation_dim=3, action_dim=1, action_low=(-2.0,), action_high=(2.0,))
    config = {"hidden_dims": [2], "n_critics": n_critics, "temperature": beta}
    cls = get_algorithm(algo_name)
    algo = cls(cls.Config.from_dict(config))
    state = algo.init(spec, jax.random.PRNGKey(0))
    value = jax.tree_util.tree_map(jnp.zeros_like, state["value"])
    value["params"]["Dense_0"]["bias"] = jnp.full((1,), V, jnp.float32)
    state = dict(
        state,
        critic_target=critic_params(state["critic_target"], n_critics, 1.0),
        critic=critic_params(state["critic"], n_critics, -1.0),
        value=value,
    )
    run = tmp_path / algo_name
    RunDir(run).write_config(
        {"algorithm": algo_name, "config": config, "steps": 7, "spec": dataclasses.asdict(spec)}
    )
    save_checkpoint(run, 7, state, {})
    rng = np.random.default_rng(0)
    data = tmp_path / f"{algo_name}.npz"
    np.savez(
        data,
        observations=rng.normal(size=(len(MASK), 3)).astype(np.float32),
        actions=np.where(MASK, 1.6, -1.6)[:, None].astype(np.float32),  # unit actions +-0.8
        corrupted=MASK,
    )
    return run, data


@pytest.mark.parametrize(
    ("algo_name", "n_critics", "reduce"),
    [
        ("iql", 2, lambda q: q.min(0)),
        ("riql", 5, lambda q: np.sort(q, axis=0)[1]),  # 0.25-quantile of 5: the 2nd smallest
    ],
)
def test_weights_split_by_the_corruption_mask(awr, tmp_path, algo_name, n_critics, reduce):
    run, data = make_run(tmp_path, algo_name, n_critics)
    found = awr.weights_of(run, data)

    k = slice(0, n_critics)
    adv_corrupted = float(reduce(W0[k, None] * 0.8 + B[k, None])[0]) - V
    adv_clean = float(reduce(W1[k, None] * 0.8 + B[k, None])[0]) - V
    w_corrupted = min(np.exp(BETA * adv_corrupted), 100.0)
    w_clean = min(np.exp(BETA * adv_clean), 100.0)
    n_bad, n_good = MASK.sum(), (~MASK).sum()
    expected = {
        "step": 7,
        "corrupted_rows": 0.3,
        "weight_share_corrupted": n_bad * w_corrupted / (n_bad * w_corrupted + n_good * w_clean),
        "mean_weight_corrupted": w_corrupted,
        "mean_weight_clean": w_clean,
        "at_clip_corrupted": float(w_corrupted == 100.0),
        "at_clip_clean": 0.0,
        "median_advantage_corrupted": adv_corrupted,
        "median_advantage_clean": adv_clean,
    }
    assert found == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the corrupted rows carry most of the weight here (0.3 of the rows)
    assert found["weight_share_corrupted"] > 0.5


def test_clip_is_reported(awr, tmp_path):
    run, data = make_run(tmp_path, "iql", 2, beta=5.0)  # exp(5 * 1.0) > 100: corrupted at the clip
    found = awr.weights_of(run, data)
    assert found["at_clip_corrupted"] == 1.0 and found["at_clip_clean"] == 0.0
    assert found["mean_weight_corrupted"] == pytest.approx(100.0)
    assert found["mean_weight_clean"] == pytest.approx(np.exp(5.0 * 0.3), rel=1e-5)


def test_no_checkpoint_no_result(awr, tmp_path):
    run, data = make_run(tmp_path, "iql", 2)
    assert awr.weights_of(tmp_path / "no-run", data) is None
    assert awr.weights_of(run, tmp_path / "missing.npz") is None
