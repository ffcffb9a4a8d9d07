"""DPO and IPO through TRL's DPOTrainer move the enumerable task's policy toward pi* (exact)."""

from __future__ import annotations

import pytest

from policyfit.errors import ConfigError
from policyfit.pref.train import train

# 40 steps x 32 pairs, lr 3e-3, beta 0.5: measured KL(pi || pi*) 0.879 -> 0.631 (DPO, factor
# 1.39) and -> 0.572 (IPO, 1.54) from the reference (TV 0.567 -> 0.416 / 0.418); the test asks
# for a drop by a factor of 1.25, a lower total variation and a higher expected reward. DPO's
# population optimum is pi* exactly (Bradley-Terry labels); IPO's is not, it only moves toward it.
FACTOR = 1.25


@pytest.mark.parametrize("objective", ["dpo", "ipo"])
def test_dpo_and_ipo_move_toward_pi_star(objective, enumerable_ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train(objective, "enumerable", steps=40, seed=0, beta=0.5, learning_rate=3e-3)
    before = result["before"]
    assert result["exact"] is True and result["beta"] == 0.5
    assert before["kl_policy_ref"] == pytest.approx(0.0, abs=1e-9)
    assert result["kl_policy_optimum"] * FACTOR < before["kl_policy_optimum"]
    assert result["tv_to_optimum"] < before["tv_to_optimum"]
    assert result["expected_reward"] > before["expected_reward"] + 0.1
    assert result["expected_reward"] < result["optimum_expected_reward"]
    assert result["kl_policy_ref"] > 0.01
    # the exact identity J(pi*) - J(pi) = beta KL(pi || pi*)
    gap = result["optimum_regularized_reward"] - result["regularized_reward"]
    assert gap == pytest.approx(0.5 * result["kl_policy_optimum"], rel=1e-6, abs=1e-9)
    assert result["trl_log"]["step"] == 40 and "rewards/margins" in result["trl_log"]


def test_unknown_objective_and_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown objective 'ppo'; choose one of dpo, ipo, rpo"):
        train("ppo", "enumerable")
    with pytest.raises(ConfigError, match="unknown task 'chess'"):
        train("dpo", "chess")
    with pytest.raises(ConfigError, match="beta must be > 0"):
        train("dpo", "enumerable", beta=0.0)
