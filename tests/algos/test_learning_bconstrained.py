"""The behavior-constrained discrete learners beat the random policy on CartPole, and train, save,
load and evaluate through the CLI like every algorithm.

Data: ``cartpole-expert`` of the discrete suite (the shipped online DQN's final greedy policy,
return ~220; normalized score 0 is the random policy's return 21.6, 100 the run's best evaluation,
500) and ``cartpole-medium`` (a linear balancing controller that takes a random action half of the
time, return ~150; its scale: random 21.7, 100 = 500).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import policyfit
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset
from policyfit.envs.datasets import make_dataset

SMALL = {"hidden_dims": (64, 64)}
# name: (dataset, updates, config overrides). Measured (seeds 0-3): bcq_discrete on expert data
# 24-35 after 1000 updates (with a single logged action per state, the threshold keeps the greedy
# policy on the expert's action; the paper's 0.3 lets both actions through on the medium data,
# whose off action has relative probability 1/3); crr (exp filter) on medium data with gamma 0.95
# 100 after 1000 updates on all four seeds (with gamma 0.99: 19-100, too noisy for a test).
CASES = {
    "bcq_discrete": ("cartpole-expert", 1000, {}),
    "crr": ("cartpole-medium", 1000, {"discount": 0.95}),
    # bve: 92-100 after 3000 updates with gamma 0.95, Adam 1e-3, batch 256 (2-90 after 1000; the
    # DQN base's batch of 128 gave 26.7 on seed 0)
    "bve": ("cartpole-medium", 3000, {"discount": 0.95, "learning_rate": 1e-3, "batch_size": 256}),
}


@pytest.fixture(scope="module")
def datasets():
    return {
        name: make_dataset(name, size=10_000, seed=0)
        for name in ("cartpole-expert", "cartpole-medium")
    }


@pytest.mark.parametrize("algo", sorted(CASES))
def test_beats_the_random_policy_on_cartpole(algo, datasets, tmp_path):
    data, steps, extra = CASES[algo]
    result = policyfit.train(
        algo,
        datasets[data],
        steps=steps,
        seed=0,
        config={**SMALL, **extra},
        out=tmp_path / algo,
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=True,
    )
    score = result.summary["final_normalized_score"]
    # random: 0 (a 5-episode mean of a random policy stays well under 10). Measured on seeds 0-3:
    # bcq_discrete 24-35 on cartpole-expert (whose own episodes score ~42 on its scale); crr and
    # bve above 60 on cartpole-medium, whose own episodes score about 30
    # episodes score about 30
    assert score > (15 if algo == "bcq_discrete" else 60), f"{algo}: normalized score {score:.1f}"


@pytest.mark.parametrize("algo", sorted(CASES))
def test_trains_evaluates_and_loads_through_the_cli(algo, datasets, tmp_path):
    data = save_dataset(datasets["cartpole-expert"], tmp_path / "cartpole.npz")
    runner = CliRunner(env={"POLICYFIT_FAST_COMPILE": "1"})
    out = tmp_path / "run"
    args = ["train", algo, "--dataset", str(data), "--steps", "50", "--out", str(out)]
    args += ["--eval-every", "0", "--eval-episodes", "1", "--set", "hidden_dims=16,16"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["eval", str(out), "--episodes", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["env_id"] == "CartPole-v1"
    policy = policyfit.load_policy(out)
    actions = policy(datasets["cartpole-expert"].observations[:8])
    assert actions.dtype == np.int32 and actions.shape == (8,)
    listing = json.loads(runner.invoke(cli, ["algos", "--json"]).output)
    assert listing[algo]["action_spaces"] == "discrete"
