"""Demonstration-regularized RL (Tiapkin et al., ICLR 2024), offline: the prior's likelihood and
the KL-regularized critic and actor losses evaluated by hand, the lambda limits, learning on the
Pendulum data, exact resume across the pretrain/main boundary.

Prior (phase 1): ``-mean log pi_BC(a|s)`` with ``pi_BC`` a tanh-Gaussian whose pre-tanh std is at
least ``min_std``; ``log pi(a|s) = log N(arctanh a; mu, sigma) - sum log(1 - a^2)``.
Critic: ``y = r + gamma (1 - d) [min_i Q'_i(s', a') - lambda (log pi(a'|s') - log pi_BC(a'|s'))]``,
``a' ~ pi(.|s')``; ``L_Q = sum_i mean (Q_i(s, a) - y)^2``.
Actor: ``mean [lambda (log pi(a|s) - log pi_BC(a|s)) - min_i Q_i(s, a)]``, ``a ~ pi(.|s)``.
"""

import dataclasses
import json
import math
import shutil

import handnets as hn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.demo_reg import DemoReg, DemoRegConfig, gaussian_kl
from policyfit.common.xla import compiler_options
from policyfit.data.sampler import TransitionSampler
from policyfit.errors import ConfigError
from policyfit.training.trainer import train

GAMMA = 0.99
TINY = dict(hidden_dims=(4, 3))
# the task of handnets with a mean |r| of 2: the per-step reward scale is 1/2
SPEC = dataclasses.replace(hn.SPEC, reward_abs_mean=2.0)


def leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


def jitted(fn):
    """``fn`` compiled once at low optimization (eager JAX compiles every operation apart)."""
    return jax.jit(fn, compiler_options=compiler_options(True))


def floored_actor(params, obs, min_std):
    mean, log_std = hn.tanh_gaussian_actor(params, obs)
    return mean, np.maximum(log_std, np.log(min_std))


def tanh_log_prob(u, mean, log_std):
    """``log pi(tanh(u))`` written out: the Gaussian density of u and the tanh Jacobian."""
    z = (u - mean) / np.exp(log_std)
    gauss = np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    return gauss - np.sum(np.log(1.0 - np.tanh(u) ** 2), axis=-1)


# --------------------------------------------------------------------------- losses by hand
def test_prior_likelihood_by_hand_with_the_std_floor_and_an_action_on_the_bound():
    min_std = 0.6
    algo = DemoReg(DemoRegConfig(**TINY, min_std=min_std))
    state = algo.init(SPEC, jax.random.PRNGKey(0))
    state = dict(state, prior=hn.randomize(state["prior"], 5, scale=0.9))
    batch = hn.make_batch(seed=3)
    batch["actions"][0, 0] = 2.0  # on the upper bound of the box: arctanh of 1 - 1e-6
    new_state, metrics = jitted(algo.pretrain_update)(state, batch, jax.random.PRNGKey(1))

    obs, act = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    mean, raw_log_std = hn.tanh_gaussian_actor(state["prior"], obs)
    log_std = np.maximum(raw_log_std, np.log(min_std))
    assert np.any(raw_log_std < np.log(min_std)) and np.any(raw_log_std > np.log(min_std))
    # the clip to 1 - 1e-6 happens in float32: take its rounding (log(1 - a^2) is sensitive)
    bound = np.float32(1 - 1e-6).astype(np.float64)
    a = np.clip(act.astype(np.float32).astype(np.float64), -bound, bound)
    z = (np.arctanh(a) - mean) / np.exp(log_std)
    log_prob = np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1) - np.sum(
        np.log(1.0 - a**2), axis=-1
    )
    assert metrics["prior_nll"] == pytest.approx(-log_prob.mean(), rel=2e-4)
    assert metrics["prior_std"] == pytest.approx(np.exp(log_std).mean(), rel=1e-5)
    # the step moved the prior, and the actor is (a copy of) the new prior
    assert hn.trees_differ(new_state["prior"], state["prior"])
    hn.assert_trees_close(new_state["actor"], new_state["prior"], rtol=0, atol=0)
    assert int(new_state["step"]) == 0  # main-phase counters untouched


@pytest.mark.parametrize("backup_kl", [True, False])
def test_critic_and_actor_losses_by_hand(backup_kl):
    lam, min_std = 0.7, 0.3
    algo = DemoReg(DemoRegConfig(**TINY, kl_weight=lam, min_std=min_std, backup_kl=backup_kl))
    state = algo.init(SPEC, jax.random.PRNGKey(0))
    state = hn.randomize_entries(state, "actor", "prior", "critic", "critic_target", first_seed=7)
    batch = hn.make_batch(seed=4)
    key = jax.random.PRNGKey(21)
    _, metrics = jitted(algo.update)(state, batch, key)
    metrics = hn.metrics_f64(metrics)

    obs, next_obs = hn.norm_obs(batch["observations"]), hn.norm_obs(batch["next_observations"])
    act = hn.unit_actions(batch["actions"])
    b, a_dim = act.shape
    k_next, k_pi = jax.random.split(key)

    # critic target: a' ~ pi(.|s'), both log-densities with the Jacobian of tanh
    mean, log_std = floored_actor(state["actor"], next_obs, min_std)
    p_mean, p_log_std = floored_actor(state["prior"], next_obs, min_std)
    u = mean + np.exp(log_std) * hn.normal_draws(k_next, (b, a_dim))
    kl_next = tanh_log_prob(u, mean, log_std) - tanh_log_prob(u, p_mean, p_log_std)
    next_q = hn.critics(state["critic_target"], next_obs, np.tanh(u)).min(0)
    if backup_kl:
        next_q = next_q - lam * kl_next
    y = 0.5 * batch["rewards"] + GAMMA * (1 - batch["terminals"]) * next_q
    q = hn.critics(state["critic"], obs, act)
    assert metrics["target_mean"] == pytest.approx(y.mean(), rel=1e-5, abs=1e-5)
    assert metrics["critic_loss"] == pytest.approx(
        np.sum(np.mean((q - y) ** 2, axis=1)), rel=1e-5, abs=1e-5
    )

    # actor: a ~ pi(.|s) reparameterized, the reverse-KL sample against min_i Q_i(s, a)
    mean, log_std = floored_actor(state["actor"], obs, min_std)
    p_mean, p_log_std = floored_actor(state["prior"], obs, min_std)
    u = mean + np.exp(log_std) * hn.normal_draws(k_pi, (b, a_dim))
    log_pi, log_prior = tanh_log_prob(u, mean, log_std), tanh_log_prob(u, p_mean, p_log_std)
    q_pi = hn.critics(state["critic"], obs, np.tanh(u)).min(0)
    assert metrics["log_pi"] == pytest.approx(log_pi.mean(), rel=1e-5, abs=1e-5)
    assert metrics["log_prior"] == pytest.approx(log_prior.mean(), rel=1e-5, abs=1e-5)
    assert metrics["kl"] == pytest.approx((log_pi - log_prior).mean(), rel=1e-4, abs=1e-5)
    expected = np.mean(lam * (log_pi - log_prior) - q_pi)
    assert metrics["actor_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # the closed-form KL of the two Gaussians (tanh is a bijection: the same KL)
    var = np.exp(2 * (log_std - p_log_std))
    closed = 0.5 * np.sum(var + (mean - p_mean) ** 2 / np.exp(2 * p_log_std) - 1 - np.log(var), -1)
    assert metrics["kl_closed_form"] == pytest.approx(closed.mean(), rel=1e-5)


def test_floored_density_integrates_to_one_over_the_box_and_act_is_tanh_of_the_mean():
    spec = dataclasses.replace(SPEC, action_dim=1, action_low=(-2.0,), action_high=(3.0,))
    algo = DemoReg(DemoRegConfig(**TINY, min_std=0.5))
    state = algo.init(spec, jax.random.PRNGKey(0))
    params = algo.policy_params(state)
    obs = np.array([[0.3, -1.2], [2.0, 0.1]], np.float32)
    grid = np.linspace(-2.0, 3.0, 20_001)[1:-1]
    density = jax.vmap(lambda a: algo.action_log_prob(params, obs, (), jnp.full((2, 1), a)))(
        jnp.asarray(grid, jnp.float32)
    )
    np.testing.assert_allclose(np.trapezoid(np.exp(np.asarray(density)), grid, axis=0), 1, 2e-3)
    # the fresh head's log-std is about 0, so the floor at log 0.5 is not what decides here;
    # with the head's bias at -4 every std sits on the floor
    mean, log_std = hn.tanh_gaussian_actor(params["actor"], hn.norm_obs(obs))
    p = jax.tree_util.tree_map(np.array, params["actor"])
    p["params"]["Dense_1"]["bias"][:] = -4.0
    dist = algo.distribution(p, jnp.asarray(hn.norm_obs(obs), jnp.float32))
    np.testing.assert_allclose(np.exp(np.asarray(dist.log_std)), 0.5, rtol=1e-6)
    actions, carry = algo.act(params, obs, ())
    np.testing.assert_allclose(np.asarray(actions)[:, 0], 0.5 + 2.5 * np.tanh(mean[:, 0]), 1e-5)
    assert carry == ()


def test_config_errors_name_the_field():
    for field, value in [("kl_weight", -1.0), ("prior_steps", 0), ("min_std", 0.0)]:
        with pytest.raises(ConfigError, match=field):
            DemoReg(DemoRegConfig(**{field: value})).setup(SPEC)
    with pytest.raises(ConfigError, match="reward_normalization"):
        DemoReg(DemoRegConfig(reward_normalization="d4rl")).setup(SPEC)


# --------------------------------------------------------------------------- lambda limits
@pytest.fixture(scope="module")
def pendulum():
    return pendulum_dataset(episodes=10)


def run_updates(update, state, sampler, n, seed):
    """``n`` updates of ``update`` on uniform batches, as the trainer fuses them."""

    def body(state, t):
        k_batch, k_update = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), t))
        return update(state, sampler.sample(sampler.data, k_batch, 128), k_update)

    scan = lambda s: jax.lax.scan(body, s, jnp.arange(n))[0]  # noqa: E731
    return jax.jit(scan, compiler_options=compiler_options(True))(state)


def expected_q(algo, state, obs, dist, samples=16):
    """``E_s E_{a ~ dist(.|s)} min_i Q_i(s, a)`` under the state's critics (16 samples a state)."""
    keys = jax.random.split(jax.random.PRNGKey(3), samples)
    q = [algo.critic.apply(state["critic"], obs, dist.sample(k)).min(0) for k in keys]
    return float(jnp.mean(jnp.stack(q)))


def test_large_lambda_keeps_the_prior_and_small_lambda_lets_q_dominate(pendulum):
    spec = DatasetSpec.from_dataset(pendulum)
    sampler = TransitionSampler(pendulum)
    bc = DemoReg(DemoRegConfig(hidden_dims=(32, 32), prior_lr=1e-3))
    pretrained = run_updates(
        bc.pretrain_update, bc.init(spec, jax.random.PRNGKey(0)), sampler, 400, seed=1
    )
    obs = jnp.asarray(
        (pendulum.observations - np.array(spec.obs_mean)) / (np.array(spec.obs_std) + 1e-3),
        jnp.float32,
    )
    out = {}
    for lam in (100.0, 0.01):
        algo = DemoReg(DemoRegConfig(hidden_dims=(32, 32), kl_weight=lam))
        algo.setup(spec)
        state = run_updates(algo.update, pretrained, sampler, 300, seed=2)
        hn.assert_trees_close(state["prior"], pretrained["prior"], rtol=0, atol=0)  # frozen
        actor = algo.distribution(state["actor"], obs)
        prior = algo.distribution(state["prior"], obs)
        # what the actor maximizes, E_{a ~ pi(.|s)} min_i Q_i(s, a), against the same for the prior;
        # and the closed-form KL (checked against numpy in the loss test)
        q_gain = expected_q(algo, state, obs, actor) - expected_q(algo, state, obs, prior)
        out[lam] = (float(gaussian_kl(actor, prior).mean()), q_gain)
    (kl_large, q_gain_large), (kl_small, q_gain_small) = out[100.0], out[0.01]
    assert kl_large < 0.02, out  # lambda -> large: the actor stays the prior
    assert kl_small > 0.5 and kl_small > 30 * kl_large, out  # lambda -> small: it moves away ...
    # ... toward actions its critic values more than the prior's (seen: +0.23 against -0.003)
    assert q_gain_small > 0.1 and q_gain_small > q_gain_large + 0.1, out


# --------------------------------------------------------------------------- training
def test_demo_reg_learns_better_than_random_on_pendulum(tmp_path):
    config = {"hidden_dims": (64, 64), "batch_size": 128, "prior_steps": 1500, "prior_lr": 1e-3}
    result = train(
        "demo_reg",
        pendulum_dataset(),
        steps=1000,
        seed=0,
        config=config,
        out=tmp_path / "run",
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=True,
    )
    assert result.summary["pretrain_steps"] == 1500
    final = result.summary["final_return_mean"]
    # Random: about -1200 (std of a 5-episode mean: ~130); clearly better: 400 above it.
    assert final > RANDOM_RETURN + 400, f"final return {final:.0f}"


def test_resume_is_exact_across_the_pretrain_main_boundary(pendulum, tmp_path):
    kw = dict(
        steps=40,
        seed=2,
        config={"hidden_dims": (16, 16), "batch_size": 32, "prior_steps": 30},
        eval_every=0,
        save_every=20,
        eval_episodes=1,
        progress=False,
        fast_compile=True,
        fuse=10,
    )
    run = train("demo_reg", pendulum, out=tmp_path / "full", keep_checkpoints=10, **kw)
    ckpts = sorted(p.name for p in (run.run_dir / "checkpoints").iterdir())
    assert ckpts == ["step_0", "step_20", "step_40"]
    rows = [json.loads(x) for x in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["pretrain_step"] for r in rows if "pretrain_step" in r] == [10, 20, 30]

    # killed right after pretraining (only step_0 written), and killed inside pretraining
    # (nothing written: the prior is learned again from the same keys)
    for name, drop in [("after_prior", ("step_20", "step_40")), ("in_prior", tuple(ckpts))]:
        killed = tmp_path / name
        shutil.copytree(run.run_dir, killed)
        for step in drop:
            shutil.rmtree(killed / "checkpoints" / step)
        (killed / "summary.json").unlink()
        resumed = train(None, pendulum, resume=killed, progress=False)
        assert resumed.summary["resumed_from_step"] == 0
        for a, b in zip(leaves(run.state), leaves(resumed.state), strict=True):
            np.testing.assert_array_equal(a, b)
    assert math.isfinite(run.summary["final_return_mean"])
