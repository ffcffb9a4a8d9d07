"""CQL's losses of one update, against Kumar et al. (2020) evaluated by hand in numpy.

Critic, CQL(H) (Eq. 4) per critic ``Q_i``:
``alpha_cql * E_s [log sum_a exp Q_i(s, a) - Q_i(s, a_data)] + E (Q_i(s, a) - y)^2``, the
log-sum-exp estimated with ``N`` uniform actions and ``N`` policy actions at ``s`` and at ``s'``
(all evaluated at ``s``), each minus its log-density (Appendix F); ``y = r + gamma (1 - d)
min_i Q'_i(s', a')``, ``a' ~ pi(s')``. Actor (SAC): ``E [alpha log pi(a~|s) - min_i Q_i(s, a~)]``,
or ``E [alpha log pi(a~|s) - log pi(a_data|s)]`` during the first ``bc_steps`` updates.

One test reproduces the update's sampling from its key; another takes a critic that ignores the
action, where the conservative term is known exactly without sampling: ``T log(3N + 1)``.
"""

import handnets as hn
import jax
import numpy as np
import pytest

from policyfit.algos.cql import CQL, CQLConfig

GAMMA = 0.99
ALPHA = 0.3  # SAC temperature, set through log_alpha so that a missing factor shows
N = 3


def make_case(config: CQLConfig, seed: int = 0, state_edit=None):
    algo = CQL(config)
    state = jax.jit(algo.init, static_argnums=0)(hn.SPEC, jax.random.PRNGKey(0))
    state = dict(
        state,
        actor=hn.randomize(state["actor"], seed + 1, scale=0.6),
        critic=hn.randomize(state["critic"], seed + 2),
        critic_target=hn.randomize(state["critic_target"], seed + 3),
        log_alpha=jax.numpy.log(jax.numpy.float32(ALPHA)),
    )
    if state_edit is not None:
        state = state_edit(state)
    batch = hn.make_batch(seed=seed + 9)
    key = jax.random.PRNGKey(seed + 11)
    new_state, metrics = jax.jit(algo.update)(state, batch, key)
    return state, batch, key, new_state, hn.metrics_f64(metrics)


def sample_tanh_normal(key, mean, log_std, shape):
    u = mean + np.exp(log_std) * hn.normal_draws(key, shape)
    return np.tanh(u), hn.tanh_normal_log_prob_pre(u, mean, log_std)


def test_cql_h_critic_loss_with_the_updates_own_samples():
    cfg = CQLConfig(hidden_dims=(4, 3), cql_alpha=2.0, cql_n_actions=N, bc_steps=0)
    state, batch, key, _, metrics = make_case(cfg)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    act = hn.unit_actions(batch["actions"])
    b, a_dim = act.shape
    # the update's key use: (actor, critic); the critic's key -> (next, random, current, next-CQL)
    _, k_critic = jax.random.split(key)
    k_next, k_rand, k_cur, k_cql_next = jax.random.split(k_critic, 4)

    next_mean, next_log_std = hn.tanh_gaussian_actor(state["actor"], next_obs)
    next_act, _ = sample_tanh_normal(k_next, next_mean, next_log_std, (b, a_dim))
    next_q = hn.critics(state["critic_target"], next_obs, next_act).min(0)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * next_q  # no entropy backup (CORL)
    q_data = hn.critics(state["critic"], obs, act)
    td = np.mean((q_data - y) ** 2, axis=1)

    cur_mean, cur_log_std = hn.tanh_gaussian_actor(state["actor"], obs)
    rand = np.asarray(jax.random.uniform(k_rand, (N, b, a_dim), minval=-1.0, maxval=1.0))
    cur, cur_logp = sample_tanh_normal(k_cur, cur_mean, cur_log_std, (N, b, a_dim))
    nxt, nxt_logp = sample_tanh_normal(k_cql_next, next_mean, next_log_std, (N, b, a_dim))
    log_density = np.concatenate([np.full((N, b), a_dim * np.log(0.5)), nxt_logp, cur_logp])
    proposals = np.concatenate([rand, nxt, cur])
    q_ood = np.stack([hn.critics(state["critic"], obs, p) for p in proposals], axis=1)
    x = q_ood - log_density[None]  # [2, 3N, B]
    lse = x.max(1) + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1))
    gap = np.mean(lse - q_data, axis=1)  # per critic

    assert metrics["td_loss"] == pytest.approx(td.mean(), rel=1e-5, abs=1e-5)
    assert metrics["cql_gap"] == pytest.approx(gap.mean(), rel=1e-5, abs=1e-5)
    expected = np.sum(td) + 2.0 * np.sum(gap)
    assert metrics["critic_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert abs(gap.mean()) > 0.1  # the conservative term weighs in


def action_blind(state):
    """Zero the first-layer weights on the action inputs: ``Q(s, a) = c(s)``."""

    def blind(params):
        p = jax.tree_util.tree_map(lambda x: x, params)
        mlp0 = p["params"]["Vmap_Critic_0"]["MLP_0"]["Dense_0"]
        mlp0["kernel"] = mlp0["kernel"].at[:, hn.SPEC.observation_dim :, :].set(0.0)
        return p

    return dict(state, critic=blind(state["critic"]), critic_target=blind(state["critic_target"]))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_conservative_term_is_known_when_q_ignores_the_action(temperature):
    # Without importance sampling the log-sum-exp runs over the 3N proposals and the data action;
    # with Q(s, a) = c(s) it is c(s) + T log(3N + 1), whatever was sampled.
    cfg = CQLConfig(
        hidden_dims=(4, 3),
        cql_alpha=5.0,
        cql_n_actions=N,
        cql_importance_sample=False,
        cql_temperature=temperature,
    )
    state, batch, _, _, metrics = make_case(cfg, seed=20, state_edit=action_blind)
    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    zeros = np.zeros((len(obs), 2))
    c = hn.critics(state["critic"], obs, zeros)
    y = batch["rewards"] + GAMMA * (1 - batch["terminals"]) * hn.critics(
        state["critic_target"], next_obs, zeros
    ).min(0)
    td = np.mean((c - y) ** 2, axis=1)
    gap = temperature * np.log(3 * N + 1)
    assert metrics["cql_gap"] == pytest.approx(gap, rel=1e-5)
    assert metrics["td_loss"] == pytest.approx(td.mean(), rel=1e-5, abs=1e-5)
    assert metrics["critic_loss"] == pytest.approx(np.sum(td) + 2 * 5.0 * gap, rel=1e-5)


@pytest.mark.parametrize("bc_steps", [0, 5])
def test_actor_loss_sac_or_behavior_cloning(bc_steps):
    cfg = CQLConfig(hidden_dims=(4, 3), cql_n_actions=N, bc_steps=bc_steps)
    state, batch, key, _, metrics = make_case(cfg, seed=30)
    obs, act = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    k_actor, _ = jax.random.split(key)
    mean, log_std = hn.tanh_gaussian_actor(state["actor"], obs)
    new_act, log_pi = sample_tanh_normal(k_actor, mean, log_std, act.shape)
    if bc_steps:  # step 0 < bc_steps: the log-likelihood of the data's actions
        objective = hn.tanh_normal_log_prob_pre(np.arctanh(act), mean, log_std)
    else:  # SAC: the actor comes first, so it sees the critics before this update
        objective = hn.critics(state["critic"], obs, new_act).min(0)
    expected = np.mean(ALPHA * log_pi - objective)
    assert metrics["actor_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert metrics["alpha"] == pytest.approx(ALPHA, rel=1e-6)
    assert metrics["entropy"] == pytest.approx(-log_pi.mean(), rel=1e-5, abs=1e-5)
