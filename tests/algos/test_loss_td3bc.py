"""TD3+BC's losses of one update, against Fujimoto & Gu (2021) evaluated by hand in numpy.

Critic (TD3): ``y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))``,
``L_Q = sum_i E (Q_i(s, a) - y)^2``. Actor (Eq. 3): ``L_pi = -lambda E Q_1(s, pi(s)) +
E (pi(s) - a)^2`` with ``lambda = alpha / E|Q_1(s, a)|`` (a constant for the gradient).
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.td3bc import TD3BC, TD3BCConfig

GAMMA = 0.99


@pytest.fixture(scope="module")
def case():
    algo = TD3BC(TD3BCConfig(hidden_dims=(4, 3), alpha=2.5, policy_noise=0.4, noise_clip=0.5))
    state = jax.jit(algo.init, static_argnums=0)(hn.SPEC, jax.random.PRNGKey(0))
    state = hn.randomize_entries(state, "actor", "actor_target", "critic", "critic_target")
    batch = hn.make_batch(seed=5)
    key = jax.random.PRNGKey(7)
    new_state, metrics = jax.jit(algo.update)(state, batch, key)
    return algo, state, batch, key, new_state, hn.metrics_f64(metrics)


def test_critic_loss_is_the_td3_target_regression(case):
    _, state, batch, key, _, metrics = case
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    act = hn.unit_actions(batch["actions"])
    # target-policy smoothing: N(0, sigma) noise clipped to [-c, c], drawn from the update's key
    noise = np.clip(0.4 * hn.normal_draws(key, act.shape), -0.5, 0.5)
    assert np.any(np.abs(noise) == 0.5)  # the clip is exercised
    next_act = np.clip(hn.deterministic_actor(state["actor_target"], next_obs) + noise, -1, 1)
    next_q = hn.critics(state["critic_target"], next_obs, next_act).min(axis=0)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * next_q
    q = hn.critics(state["critic"], obs, act)
    expected = np.sum(np.mean((q - y) ** 2, axis=1))
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert metrics["q_mean"] == pytest.approx(q.mean(), rel=1e-5, abs=1e-5)


def test_actor_loss_is_eq3_with_lambda_normalized_by_mean_abs_q(case):
    _, state, batch, _, new_state, metrics = case
    obs, act = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    pi = hn.deterministic_actor(state["actor"], obs)
    # the actor step follows the critic step: it sees the updated critic, Q_1 only
    q1 = hn.critics(new_state["critic"], obs, pi)[0]
    lmbda = 2.5 / np.mean(np.abs(q1))
    bc = np.mean((pi - act) ** 2)
    assert metrics["bc_mse"] == pytest.approx(bc, rel=1e-5, abs=1e-5)
    assert metrics["actor_loss"] == pytest.approx(-lmbda * q1.mean() + bc, rel=1e-5, abs=1e-5)
    # the Q term and the BC term both matter here (a wrong sign or scale would show)
    assert abs(lmbda * q1.mean()) > 0.1 and bc > 0.1


def test_actor_and_targets_update_every_policy_freq_steps(case):
    algo, state, batch, key, new_state, _ = case
    tau = algo.config.tau
    for name in ("actor_target", "critic_target"):
        online = new_state[name.removesuffix("_target")]
        expected = jax.tree_util.tree_map(
            lambda t, o: tau * np.asarray(o) + (1 - tau) * np.asarray(t), state[name], online
        )
        hn.assert_trees_close(new_state[name], expected)
    # step 1 (policy_freq = 2): no actor step, no target update, the actor loss is NaN
    later, metrics = jax.jit(algo.update)(new_state, batch, key)
    assert np.isnan(float(metrics["actor_loss"]))
    for name in ("actor", "actor_target", "critic_target"):
        hn.assert_trees_close(later[name], new_state[name], rtol=0, atol=0)


def test_pytorch_init_scheme_draws_every_layer_uniform_in_one_over_sqrt_fan_in():
    """``init_scheme="pytorch"``: ``torch.nn.Linear``'s defaults (the paper's code, d3rlpy):
    weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` in every layer, heads included;
    the default stays orthogonal with zero biases and a 1e-2 policy head."""
    spec = hn.SPEC
    state = TD3BC(TD3BCConfig(hidden_dims=(256, 256), init_scheme="pytorch")).init(
        spec, jax.random.PRNGKey(0)
    )
    dense = [
        leaf
        for net in ("actor", "critic")
        for leaf in jax.tree_util.tree_leaves(state[net], is_leaf=lambda x: "kernel" in x)
        if isinstance(leaf, dict) and "kernel" in leaf
    ]
    assert len(dense) == 3 + 3  # actor: 2 hidden + head; critic ensemble: 2 hidden + head
    for layer in dense:
        w, b = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
        bound = 1 / np.sqrt(w.shape[-2])
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        # a uniform on [-bound, bound] has std bound / sqrt 3 (a wrong fan would be far off)
        assert np.std(w) == pytest.approx(bound / np.sqrt(3), rel=0.1)
        assert np.all(b != 0) and (b.size < 100 or np.std(b) > 0.5 * bound)
    ortho = TD3BC(TD3BCConfig(hidden_dims=(256, 256))).init(spec, jax.random.PRNGKey(0))
    head = ortho["actor"]["params"]["Dense_0"]
    assert np.all(np.asarray(head["bias"]) == 0) and np.abs(head["kernel"]).max() < 0.05


def test_unknown_init_scheme_is_a_config_error():
    from policyfit.errors import ConfigError

    with pytest.raises(ConfigError, match="td3bc: init_scheme: must be one of orthogonal, pytorch"):
        TD3BC(TD3BCConfig(init_scheme="xavier")).init(hn.SPEC, jax.random.PRNGKey(0))
