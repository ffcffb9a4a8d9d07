"""Bad arguments to the corruption layer fail as one-line PolicyfitErrors naming the field."""

from __future__ import annotations

import re

import numpy as np
import pytest

from policyfit.corruption import corrupt_dataset
from policyfit.corruption.adversarial import (
    AttackConfig,
    adversarial_corruption,
    adversarial_perturbation,
)
from policyfit.corruption.critic import CleanCritic, CriticConfig
from policyfit.errors import ConfigError, PolicyfitError


def fake_critic(obs_dim: int, act_dim: int) -> CleanCritic:
    """A critic object of the given dimensions (never evaluated: the check comes first)."""
    return CleanCritic(
        config=CriticConfig(),
        critic_params={},
        policy_params={},
        obs_stats={"mean": np.zeros(obs_dim), "std": np.ones(obs_dim)},
        action_scale={"center": np.zeros(act_dim), "half_range": np.ones(act_dim)},
        fingerprint="0" * 16,
    )


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (
            lambda ds: corrupt_dataset(ds, "observations", mode="random", cache=False),
            ConfigError,
            "mode: option(s) cache apply only to mode='adversarial'; drop them or pass "
            "mode='adversarial'",
        ),
        (
            lambda ds: corrupt_dataset(ds, "observations", mode="adversarial", steps=5),
            ConfigError,
            "steps: unknown option 'steps'; corrupt_dataset takes critic, critic_config, attack, "
            "cache (adversarial mode only)",
        ),
        (
            lambda ds: corrupt_dataset(
                ds, "actions", mode="adversarial", critic_config={"steps": 5}
            ),
            ConfigError,
            "critic_config: must be of type CriticConfig (or None), not dict",
        ),
        (
            lambda ds: corrupt_dataset(ds, "actions", mode="adversarial", attack=100),
            ConfigError,
            "attack: must be of type AttackConfig (or None), not int",
        ),
        (
            lambda ds: adversarial_corruption(ds, "observations", critic=fake_critic(5, 2)),
            PolicyfitError,
            "linear-system: critic: the critic was fitted on observation/action dims 5/2, the "
            "dataset has 3/2; fit the critic on this dataset (or pass critic=None)",
        ),
        (
            lambda ds: corrupt_dataset(ds, "observations", seed=-1),
            ConfigError,
            "seed: must be an integer >= 0, got -1",
        ),
        (
            lambda ds: corrupt_dataset(ds, "observations", mode="adversarial", seed=0.5),
            ConfigError,
            "seed: must be an integer >= 0, got 0.5",
        ),
        (
            lambda ds: corrupt_dataset(ds, "observations", rate="0.3"),
            PolicyfitError,
            "rate: corruption rate must lie in [0, 1] (a probability per transition), got '0.3'",
        ),
        (
            lambda ds: adversarial_perturbation(
                fake_critic(3, 2),
                "rewards",
                ds.rewards,
                ds.rewards,
                np.ones(1),
                scale=1.0,
                p0=ds.rewards,
            ),  # fmt: skip
            ConfigError,
            "target: no gradient attack for target 'rewards'; choose one of observations, "
            "actions, dynamics (adversarial rewards are -ε·r: use adversarial_corruption)",
        ),
    ],
)
def test_corruption_arguments(clean, call, kind, message):
    with pytest.raises(kind, match=f"^{re.escape(message)}$") as info:
        call(clean)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CriticConfig(steps=0), "critic_config.steps: must be an integer >= 1, got 0"),
        (lambda: CriticConfig(n_critics=2.5), "critic_config.n_critics: must be an integer >= 1, got 2.5"),
        (lambda: CriticConfig(hidden_dims=64), "critic_config.hidden_dims: must be a sequence of layer widths, e.g. (128, 128), got 64"),
        (lambda: CriticConfig(hidden_dims=(64, 0)), "critic_config.hidden_dims: must be an integer >= 1, got 0"),
        (lambda: CriticConfig(learning_rate=0.0), "critic_config.learning_rate: must be a finite number in (0, inf), got 0.0"),
        (lambda: CriticConfig(discount=1.0), "critic_config.discount: must be a finite number in [0, 1), got 1.0"),
        (lambda: CriticConfig(tau=float("nan")), "critic_config.tau: must be a finite number in (0, 1], got nan"),
        (lambda: AttackConfig(steps=-3), "attack.steps: must be an integer >= 1, got -3"),
        (lambda: AttackConfig(step_size=0), "attack.step_size: must be a finite number in (0, inf), got 0"),
        (lambda: AttackConfig(batch_size=True), "attack.batch_size: must be an integer >= 1, got True"),
    ],
)  # fmt: skip
def test_config_fields_are_checked(make, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        make()


def test_checked_configs_keep_their_values_and_types():
    cfg = CriticConfig(steps=np.int64(300), hidden_dims=[16, 8], learning_rate=1)
    assert (cfg.steps, cfg.hidden_dims, cfg.learning_rate) == (300, (16, 8), 1.0)
    assert type(cfg.steps) is int and type(cfg.learning_rate) is float
    assert AttackConfig(steps=7).steps == 7
