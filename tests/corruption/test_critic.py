"""The attacker's critic: it learns something, and its msgpack cache is used, keyed and safe."""

from __future__ import annotations

import dataclasses

import numpy as np

from policyfit.corruption.critic import (
    critic_cache_path,
    load_critic,
    load_or_fit_critic,
)

from .conftest import TINY_CRITIC


def test_critic_fits_the_data(clean, critic):
    q = critic.q_values(clean.observations, clean.actions)
    assert q.shape == (TINY_CRITIC.n_critics, len(clean))
    # rewards are -|s|² - ...: the learned Q must rank states like the return-to-go does
    rtg = clean.returns_to_go(discount=TINY_CRITIC.discount)
    assert np.corrcoef(q.mean(0), rtg)[0, 1] > 0.5
    # the BC policy recovers the controller's mean action -0.3 s[:2] (the data adds noise of std 0.3)
    pi = critic.policy_actions(clean.observations)
    controller = -0.3 * clean.observations[:, :2]
    for d in range(2):
        assert np.corrcoef(pi[:, d], controller[:, d])[0, 1] > 0.8


def test_cache_is_msgpack_keyed_by_data_and_config(clean, critic):
    path = critic_cache_path(clean, TINY_CRITIC)
    assert critic.cache_path == str(path) and path.suffix == ".msgpack"
    assert path.parent.name == "critics" and path.name.startswith(clean.fingerprint())
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle
    again = load_or_fit_critic(clean, TINY_CRITIC)
    np.testing.assert_array_equal(
        again.q_values(clean.observations[:50], clean.actions[:50]),
        critic.q_values(clean.observations[:50], clean.actions[:50]),
    )
    other = dataclasses.replace(TINY_CRITIC, steps=TINY_CRITIC.steps + 1)
    assert critic_cache_path(clean, other) != path
    assert load_critic(path, other, clean.fingerprint()) is None
    assert load_critic(path, TINY_CRITIC, "0" * 16) is None


def test_unreadable_cache_is_ignored(tmp_path, clean):
    bad = tmp_path / "x.msgpack"
    bad.write_bytes(b"not msgpack at all")
    assert load_critic(bad, TINY_CRITIC, clean.fingerprint()) is None
