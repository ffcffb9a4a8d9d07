"""Dichotomy of Control: the InfoNCE and Gaussian-KL terms against hand computations, the loss
over valid positions, value-guided latent selection, the carry, and the Bernoulli-bandit claim
(DoC pulls the arm with the best expected reward where DT asked for success pulls the lucky one)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import policyfit
from policyfit.algos import doc as doc_module
from policyfit.algos.base import DatasetSpec
from policyfit.algos.doc import (
    DichotomyOfControl,
    DoCConfig,
    gaussian_kl,
    info_nce,
    select_latent,
)
from policyfit.algos.registry import get_algorithm
from policyfit.envs.stochastic import LUCKY_BANDIT, bernoulli_bandit_dataset, evaluate_bandit
from policyfit.errors import ConfigError

TINY = dict(context_length=2, embed_dim=8, n_layer=1, dropout=0.0, latent_dim=3, mlp_hidden=(8,))


def tiny(**overrides):
    spec = DatasetSpec(
        observation_dim=1,
        action_dim=2,
        action_low=(0.0, 0.0),
        action_high=(1.0, 1.0),
        return_max=1.0,
        max_episode_length=4,
    )
    algo = DichotomyOfControl(DoCConfig(**{**TINY, **overrides}))
    state = algo.init(spec, jax.random.PRNGKey(3))
    return algo, state


def test_info_nce_on_a_3x3_energy_matrix_by_hand():
    e = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0], [0.0, 0.0, 0.0]])
    # row i: -E_ii + log(sum_j exp E_ij)
    hand = [
        -1.0 + np.log(np.e + 1.0 + np.exp(-1.0)),
        -2.0 + np.log(np.exp(0.5) + np.exp(2.0) + 1.0),
        np.log(3.0),
    ]
    np.testing.assert_allclose(info_nce(jnp.asarray(e)), hand, rtol=1e-6)
    # a padded third column leaves the sums of the valid rows
    masked = info_nce(jnp.asarray(e), jnp.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(
        masked[:2], [-1.0 + np.log(np.e + 1.0), -2.0 + np.log(np.exp(0.5) + np.exp(2.0))], rtol=1e-6
    )


def test_gaussian_kl_by_hand():
    # KL(N(1, e^0) || N(0, e^{log 4})) = 0.5 (log 4 - 0 + 1/4 + 1/4 - 1)
    got = float(gaussian_kl(jnp.array(1.0), jnp.array(0.0), jnp.array(0.0), jnp.log(4.0)))
    assert got == pytest.approx(0.5 * (np.log(4.0) + 0.25 + 0.25 - 1.0), rel=1e-6)
    assert float(gaussian_kl(jnp.array(0.3), jnp.array(-1.0), jnp.array(0.3), jnp.array(-1.0))) == (
        pytest.approx(0.0, abs=1e-7)
    )


def window_batch(obs_pad=0.0):
    return {
        "observations": jnp.array([[[1.0], [obs_pad]], [[1.0], [2.0]]]),
        "next_observations": jnp.array([[[1.0], [obs_pad]], [[2.0], [3.0]]]),
        "actions": jnp.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]),
        "rewards": jnp.array([[1.0, 0.0], [0.0, 1.0]]),
        "returns_to_go": jnp.array([[1.0, 0.0], [1.0, 1.0]]),
        "timesteps": jnp.array([[0, 0], [0, 1]], jnp.int32),
        "mask": jnp.array([[1.0, 0.0], [1.0, 1.0]]),
    }


def test_loss_is_the_weighted_sum_and_ignores_padding():
    algo, state = tiny(prior_weight=0.5, energy_weight=2.0)
    batch = window_batch()
    unit = (batch["actions"] * 2.0 - 1.0) * batch["mask"][..., None]
    key = jax.random.PRNGKey(0)
    loss_fn = jax.jit(algo.loss)  # one compile instead of ~150 eager op compiles per call
    loss, m = loss_fn(state["actor"], state, batch, unit, key)
    want = m["action_loss"] + m["value_loss"] + 0.5 * m["prior_loss"] + 2.0 * m["energy_loss"]
    assert float(loss) == pytest.approx(float(want), rel=1e-6)
    assert all(float(v) > 0 for v in m.values())
    # the padded step of window 0 (position 1) does not enter any term
    _, m2 = loss_fn(state["actor"], state, window_batch(obs_pad=9.0), unit, key)
    for name in m:
        assert float(m2[name]) == pytest.approx(float(m[name]), rel=1e-5), name


def test_the_prior_gets_no_gradient_under_the_codes_stop_gradient_only():
    batch = window_batch()
    unit = (batch["actions"] * 2.0 - 1.0) * batch["mask"][..., None]
    for stop, expect_zero in ((True, True), (False, False)):
        algo, state = tiny(prior_stop_gradient=stop)

        def total(p, algo=algo, state=state):
            return algo.loss(p, state, batch, unit, jax.random.PRNGKey(0))[0]

        g = jax.jit(jax.grad(total))(state["actor"])["params"]["predict_prior"]["kernel"]
        assert (float(jnp.abs(g).max()) == 0.0) == expect_zero


def test_select_latent_takes_the_argmax_value():
    values = jnp.array([[0.1, 0.9, 0.3], [0.5, -1.0, 0.2]])
    latents = jnp.arange(12.0).reshape(2, 3, 2)
    z, v = select_latent(values, latents)
    np.testing.assert_allclose(z, [[2.0, 3.0], [6.0, 7.0]])
    np.testing.assert_allclose(v, [0.9, 0.5])


def test_act_uses_the_best_prior_latent_and_the_carry_records_it():
    algo, state = tiny(num_latent_samples=7, return_scale=2.0)
    params = algo.policy_params(state)
    carry = algo.initial_carry(2)
    obs = jnp.array([[1.0], [0.5]])
    action, carry = algo.act(params, obs, carry)
    window = {k: carry[k] for k in ("observations", "actions", "rewards", "timesteps")}
    window["actions"] = jnp.zeros_like(window["actions"])  # as it was when the latent was chosen
    unit, z, v, values = algo.choose(params, window, jnp.zeros(2, jnp.int32))
    assert values.shape == (2, 7)
    np.testing.assert_allclose(v, values.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(carry["value"], 2.0 * values.max(axis=1), rtol=1e-5)
    np.testing.assert_allclose(action, (unit + 1.0) / 2.0, atol=1e-6)  # unit box -> [0, 1]
    # the chosen latent's action differs from another candidate's in general: it is the argmax's
    assert carry["length"].tolist() == [1, 1] and carry["timestep"].tolist() == [1, 1]
    carry = algo.observe_reward(carry, jnp.array([1.0, 0.0]))
    assert carry["rewards"][:, 0].tolist() == [1.0, 0.0]
    _, carry = algo.act(params, obs, carry)
    assert carry["observations"][:, :, 0].tolist() == [[1.0, 1.0], [0.5, 0.5]]
    assert carry["length"].tolist() == [2, 2] and carry["timesteps"][0].tolist() == [0, 1]


def test_deterministic_acting_draws_a_fixed_set_per_row_whatever_the_batch_size():
    # key=None: row i scores the fixed set i mod FIXED_DRAW_ROWS (a NumPy table, not a draw in
    # the graph: the policy exports to ONNX); rows differ, and a row's action does not depend
    # on how many rows are acted on together
    algo, state = tiny(num_latent_samples=5)
    params = algo.policy_params(state)
    assert algo.fixed_draws.shape == (doc_module.FIXED_DRAW_ROWS, 5, 3)
    obs = jnp.full((doc_module.FIXED_DRAW_ROWS + 2, 1), 0.7)
    action, carry = algo.act(params, obs, algo.initial_carry(len(obs)))
    one, one_carry = algo.act(params, obs[:1], algo.initial_carry(1))
    np.testing.assert_allclose(one, action[:1], rtol=1e-6)
    np.testing.assert_allclose(action[doc_module.FIXED_DRAW_ROWS], action[0], rtol=1e-6)
    assert len(np.unique(np.asarray(carry["value"]).round(6))) > 1  # the sets differ by row
    fresh, _ = algo.act(params, obs[:1], algo.initial_carry(1), key=jax.random.PRNGKey(1))
    assert not np.allclose(fresh, one)  # a key draws fresh samples


def test_config_defaults_from_the_code_and_errors_name_the_field():
    cfg = get_algorithm("doc").Config()
    assert (cfg.context_length, cfg.embed_dim, cfg.n_layer, cfg.n_head, cfg.latent_dim) == (
        20,
        128,
        3,
        1,
        32,
    )
    assert (cfg.learning_rate, cfg.weight_decay, cfg.warmup_steps, cfg.grad_clip) == (
        1e-4,
        1e-4,
        1000,
        0.25,
    )
    assert (cfg.prior_weight, cfg.energy_weight, cfg.num_latent_samples, cfg.batch_size) == (
        1.0,
        1.0,
        100,
        64,
    )
    assert cfg.prior_stop_gradient and cfg.mlp_hidden == (256, 256)
    assert cfg.critic == "separable" and cfg.mi_minmax  # the two documented departures
    with pytest.raises(ConfigError) as info:
        tiny(latent_dim=0)
    assert info.value.field == "latent_dim"


def test_bernoulli_bandit_doc_pulls_the_best_expected_arm_where_dt_pulls_the_lucky_one(tmp_path):
    """LUCKY_BANDIT: arms pay 0.2 / 0.8; the data pulls arm 0 90% of the time, so among the
    successes 69% are arm 0. DT asked for reward 1 imitates them; DoC should pull arm 1."""
    ds = bernoulli_bandit_dataset(LUCKY_BANDIT, episodes=1000, seed=0)
    small = dict(context_length=1, embed_dim=16, n_layer=1, dropout=0.0, warmup_steps=10)
    common = dict(seed=0, eval_every=0, save_every=0, progress=False)
    # fast_compile=False: XLA's optimized code runs DoC's 1,000 steps faster than it compiles slower
    # (fewer steps do not do: at 300, seed 2 still pulls each arm half the time)
    doc = policyfit.train(
        "doc",
        ds,
        steps=1000,
        config={**small, "mlp_hidden": (32, 32), "learning_rate": 3e-3},
        out=tmp_path / "doc",
        fast_compile=False,
        **common,
    )
    # DT imitates the lucky arm from the first few hundred steps (arm 0 in all 2,000 at 250)
    dt = policyfit.train(
        "dt",
        ds,
        steps=250,
        config={**small, "learning_rate": 3e-3, "return_scale": 1.0, "target_return": 1.0},
        out=tmp_path / "dt",
        fast_compile=True,
        **common,
    )
    ev_doc = evaluate_bandit(doc.policy, LUCKY_BANDIT, episodes=2000, seed=1)
    ev_dt = evaluate_bandit(dt.policy, LUCKY_BANDIT, episodes=2000, seed=1)
    assert ev_dt["arm_frequency"][0] > 0.8, ev_dt  # the lucky (worse) arm
    assert ev_doc["arm_frequency"][1] > 0.5, ev_doc  # mostly the best expected arm
    # DT is promised 1.0 and gets the lucky arm's 0.2; DoC gets clearly more
    assert ev_dt["expected_return"] < 0.3
    assert ev_doc["expected_return"] > ev_dt["expected_return"] + 0.25
    # consistency: the value DoC promises is about what it gets (DT is promised 1.0)
    promised = float(np.mean(np.asarray(ev_doc["carry"]["value"])))
    assert abs(promised - ev_doc["expected_return"]) < 0.15, (promised, ev_doc)
