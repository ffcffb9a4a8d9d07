"""Every algorithm learns a policy clearly better than random on a small real task.

Data: Pendulum-v1 under a noisy swing-up controller with a quarter of random episodes
(``tests/pendulum_data.py``); a uniformly random policy returns about -1200 per episode, the
data's episodes about -370 on average. Small networks and a few thousand updates keep this fast.
"""

import numpy as np
import pytest

from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.train.trainer import train

SMALL = {"hidden_dims": (64, 64), "batch_size": 128}
CASES = {
    "bc": (1500, {}),
    "bc-top": (1500, {"top_fraction": 0.5}),
    "bc-gaussian": (1500, {"policy": "gaussian", "learning_rate": 1e-3}),
    "td3bc": (2000, {}),
    "iql": (2000, {"actor_lr": 1e-3}),
    "awac": (2000, {}),
    "rebrac": (2000, {"actor_bc_coef": 0.1, "critic_bc_coef": 0.1}),
    "cql": (3000, {"bc_steps": 1000, "actor_lr": 1e-3}),
}


@pytest.fixture(scope="module")
def dataset():
    return pendulum_dataset()


@pytest.mark.parametrize("case", sorted(CASES))
def test_learns_better_than_random(case, dataset, tmp_path):
    steps, extra = CASES[case]
    algo = case.split("-")[0]
    result = train(
        algo,
        dataset,
        steps=steps,
        seed=0,
        config={**SMALL, **extra},
        out=tmp_path / case,
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=True,
    )
    final = result.summary["final_return_mean"]
    assert np.isfinite(final)
    # Random: about -1200; clearly better means at least 500 above it.
    assert final > RANDOM_RETURN + 500, f"{case}: final return {final:.0f}"
