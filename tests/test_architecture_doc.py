"""docs/architecture.md's example algorithm is real: it trains, saves, loads and resumes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import policyfit
from pendulum_data import pendulum_dataset
from policyfit.algos.base import ALGORITHMS

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    [source] = [b for b in blocks if '@register("mean_action")' in b]
    return source


def test_the_documented_example_algorithm_trains_and_loads(tmp_path):
    namespace: dict = {}
    exec(compile(example_source(), str(DOC), "exec"), namespace)
    try:
        ds = pendulum_dataset(episodes=2)
        result = policyfit.train(
            "mean_action",
            ds,
            steps=400,
            out=tmp_path / "run",
            eval_every=0,
            eval_episodes=1,
            progress=False,
            fast_compile=True,
            fuse=100,
        )
        policy = policyfit.load_policy(result.run_dir)
        np.testing.assert_allclose(policy(ds.observations[:1])[0], ds.actions.mean(0), atol=0.05)
    finally:
        ALGORITHMS.pop("mean_action", None)


def test_the_doc_names_every_algorithm_contract_member():
    text = DOC.read_text()
    for member in (
        "setup(spec)",
        "init(spec, key)",
        "update(state, batch, key)",
        "act(params, obs, carry, key=None)",
        "policy_params(state)",
        "initial_carry(batch_size)",
        "observe_reward(carry, reward)",
        "prepare(dataset)",
        "make_sampler(dataset, spec)",
        "pretrain_update",
        "supports_discrete",
        "action_log_prob(params, obs, carry, actions)",
    ):
        assert member in text, member
