"""A2PR (Liu et al., ICML 2024): its losses evaluated by hand in numpy, the order of one update,
learning (and exact resume) on the Pendulum data, registry and config errors.

Official code ``A2PR.py`` (ltlhuuu/A2PR): ``V`` regresses to ``min(r + g min_i Q_i(s', a'),
r + g min_i Q'_i(s', a'))``; the VAE reconstructs only actions with ``Q_1(s, a) > V(s)`` (weight
``vae_weight``) plus ``0.5 KL``; the actor's BC target is ``Dec(s, Enc(s, pi(s)))`` where its
advantage is at least the dataset action's, else ``a``, with weight ``mask (1(Q_1(s, a~) >= V) +
1(Q_1(s, a) > V))``, and the gradient flows through the VAE's reconstruction of ``pi(s)``.
"""

import json
import shutil

import handnets as hn
import jax
import numpy as np
import pytest
from click.testing import CliRunner

from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.algos.a2pr import A2PR, PAPER_SETTINGS, A2PRConfig
from policyfit.algos.registry import ALGORITHMS, get_algorithm
from policyfit.cli.main import cli
from policyfit.data.io import save_dataset
from policyfit.errors import ConfigError
from policyfit.training.trainer import train

TINY = dict(hidden_dims=(4, 3), critic_hidden_dims=(5, 3), vae_hidden_dims=(6, 4))
LATENT = 2 * hn.SPEC.action_dim  # the default latent size, 2 |A|
GAMMA = 0.99


def vae_forward(params, obs, act, eps):
    """The VAE in float64: ``(reconstruction, mu, log_sigma)`` with ``z = mu + sigma eps``."""
    p = hn.f64(params)["params"]

    def dense(name, x):
        return x @ p[name]["kernel"] + p[name]["bias"]

    h = hn.mlp(p["encoder"], np.concatenate([obs, act], axis=-1))
    mu, log_std = dense("mean", h), np.clip(dense("log_std", h), -4.0, 15.0)
    z = mu + np.exp(log_std) * eps
    recon = np.tanh(dense("head", hn.mlp(p["decoder"], np.concatenate([obs, z], axis=-1))))
    return recon, mu, log_std


def make_case(seed=0, **config):
    algo = A2PR(A2PRConfig(**{**TINY, "alpha": 2.5, **config}))
    state = algo.init(hn.SPEC, jax.random.PRNGKey(seed))
    names = ("actor", "actor_target", "critic", "critic_target", "value", "vae")
    return algo, hn.randomize_entries(state, *names, first_seed=10 * seed + 1)


# ---------------------------------------------------------------- the actor's adaptive target
def _actor_rows(state, obs, key):
    """pi(s), the VAE's a~ of pi(s) and Q_1(s, a~) by hand, for the actor loss's ``key``."""
    pi = hn.deterministic_actor(state["actor"], obs)
    eps = hn.normal_draws(key, (obs.shape[0], LATENT))
    recon, _, _ = vae_forward(state["vae"], obs, pi, eps)
    return pi, recon, hn.critics(state["critic"], obs, recon)[0]


def _expected_actor_loss(
    state, obs, acts, q_data, v, key, mask, actor=None, frozen=None, lmbda=None
):
    """L_pi by hand; ``actor`` replaces the actor's parameters, ``frozen`` the BC target and
    ``lmbda`` the weight of Q (a constant for the gradient)."""
    state = state if actor is None else dict(state, actor=actor)
    pi, recon, q_recon = _actor_rows(state, obs, key)
    q1 = hn.critics(state["critic"], obs, pi)[0]
    use_vae = q_recon - v >= q_data - v
    target = np.where(use_vae[:, None], recon, acts) if frozen is None else frozen
    weight = mask * ((q_recon >= v).astype(float) + (q_data > v).astype(float))
    bc = np.mean(weight[:, None] * (pi - target) ** 2)
    lmbda = 2.5 / np.mean(np.abs(q1)) if lmbda is None else lmbda
    return -lmbda * q1.mean() + bc, bc, use_vae, weight, target


@pytest.fixture(scope="module")
def actor_case():
    mask = 0.4
    algo, state = make_case(mask=mask, vae_hidden_dims=(16, 16))
    # wider, smaller VAE weights than the other networks': Dec(Enc(pi)) responds to pi
    state = dict(state, vae=hn.randomize(state["vae"], 7, scale=0.5))
    batch = hn.make_batch(n=6, seed=3)
    obs, acts = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    key = jax.random.PRNGKey(11)
    _, _, q_recon = _actor_rows(state, obs, key)
    # V(s) and Q_1(s, a) chosen around the hand-computed Q_1(s, a~) (margins of 0.5) so that
    # every case of the switch and of the mask occurs:
    #   row 0: both advantages positive, A_pi >= A_D      -> a~, weight 2 mask
    #   row 1: both positive, A_D > A_pi                   -> a,  weight 2 mask
    #   row 2: only A_pi positive                          -> a~, weight mask
    #   row 3: only A_D positive                           -> a,  weight mask
    #   row 4: both negative, A_pi higher                  -> a~, weight 0
    #   row 5: Q_1(s, a) = V(s) exactly: not a positive advantage (>) -> a~, weight mask
    v = q_recon + np.array([-1.0, -1.0, -0.5, 0.5, 0.5, -0.5])
    q_data = q_recon + np.array([-0.5, 0.5, -1.0, 1.0, -0.5, 0.0])
    v, q_data = v.astype(np.float32), q_data.astype(np.float32)
    q_data[5] = v[5]
    return algo, state, obs, acts, q_data, v, key, mask


def test_actor_target_switches_by_advantage_and_the_mask_takes_0_mask_2mask(actor_case):
    algo, state, obs, acts, q_data, v, key, mask = actor_case
    loss, (bc, vae_share, mask_mean) = jax.jit(algo.actor_loss)(
        state["actor"], state["critic"], obs, acts, q_data, v, state["vae"], key
    )
    expected, expected_bc, use_vae, weight, _ = _expected_actor_loss(
        state, obs, acts, np.float64(q_data), np.float64(v), key, mask
    )
    np.testing.assert_array_equal(use_vae, [True, False, True, False, True, True])
    np.testing.assert_allclose(weight, [0.8, 0.8, 0.4, 0.4, 0.0, 0.4])
    assert float(vae_share) == pytest.approx(4 / 6)
    assert float(mask_mean) == pytest.approx(2.8 / 6, rel=1e-6)
    assert float(bc) == pytest.approx(expected_bc, rel=1e-5, abs=1e-6)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert expected_bc > 0.01 and abs(expected - expected_bc) > 0.1  # both terms matter


def test_actor_gradient_flows_through_the_vaes_reconstruction_of_pi(actor_case):
    """The official code does not detach a~: its BC term differentiates through Dec(Enc(pi))."""
    algo, state, obs, acts, q_data, v, key, mask = actor_case
    args = (state["critic"], obs, acts, q_data, v, state["vae"], key)
    grads = jax.jit(jax.grad(lambda actor: algo.actor_loss(actor, *args)[0]))(state["actor"])
    rng = np.random.default_rng(0)
    direction = jax.tree_util.tree_map(lambda x: rng.normal(size=x.shape), hn.f64(state["actor"]))
    along = sum(
        float(np.sum(np.asarray(g, np.float64) * d))
        for g, d in zip(
            jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True
        )
    )
    h = 1e-6
    q1 = hn.critics(state["critic"], obs, hn.deterministic_actor(state["actor"], obs))[0]
    lmbda = 2.5 / np.mean(np.abs(q1))  # held fixed, as the loss's stop_gradient does

    def loss_at(t, frozen=None):
        actor = jax.tree_util.tree_map(lambda p, d: p + t * d, hn.f64(state["actor"]), direction)
        args = (obs, acts, np.float64(q_data), np.float64(v), key, mask)
        return _expected_actor_loss(state, *args, actor=actor, frozen=frozen, lmbda=lmbda)[0]

    numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
    assert along == pytest.approx(numeric, rel=1e-3, abs=1e-4)
    # and the test tells the two apart: with a^ held fixed the derivative is clearly different
    frozen = _expected_actor_loss(state, obs, acts, np.float64(q_data), np.float64(v), key, mask)[4]
    detached = (loss_at(h, frozen) - loss_at(-h, frozen)) / (2 * h)
    assert abs(detached - numeric) > 0.05 * abs(numeric) + 1e-3


# ---------------------------------------------------------------- the VAE and V losses
def test_vae_reconstructs_only_positive_advantage_rows_weighted_by_vae_weight():
    algo, state = make_case(seed=1, vae_weight=1.5)
    batch = hn.make_batch(n=6, seed=4)
    obs, acts = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    positive = np.array([True, False, True, True, False, False])
    key = jax.random.PRNGKey(5)
    loss, (recon_loss, kl) = jax.jit(algo.vae_loss)(state["vae"], obs, acts, positive, key)
    eps = hn.normal_draws(key, (6, LATENT))
    recon, mu, log_std = vae_forward(state["vae"], obs, acts, eps)
    per_row = np.sum((recon - acts) ** 2, axis=1)
    expected_recon = 1.5 * per_row[positive].sum() / acts.size  # a mean over all B x |A| entries
    expected_kl = -0.5 * np.mean(1 + 2 * log_std - mu**2 - np.exp(2 * log_std))
    assert float(recon_loss) == pytest.approx(expected_recon, rel=1e-5, abs=1e-6)
    assert float(kl) == pytest.approx(expected_kl, rel=1e-5, abs=1e-6)
    assert float(loss) == pytest.approx(expected_recon + 0.5 * expected_kl, rel=1e-5, abs=1e-6)
    assert per_row[~positive].sum() > 0.1  # the excluded rows would have counted


def test_value_target_is_the_smaller_of_the_online_and_target_critic_td_targets():
    algo, state = make_case(seed=6, policy_noise=0.4)
    batch = hn.make_batch(n=6, seed=6)
    obs = hn.norm_obs(batch["observations"])
    key = jax.random.PRNGKey(9)
    loss, v = jax.jit(algo.value_loss)(state["value"], state, obs, batch, key)
    next_obs = hn.norm_obs(batch["next_observations"])
    noise = np.clip(0.4 * hn.normal_draws(key, (6, 2)), -0.5, 0.5)
    next_act = np.clip(hn.deterministic_actor(state["actor_target"], next_obs) + noise, -1, 1)
    bootstrap = GAMMA * (1 - batch["terminals"])
    online = batch["rewards"] + bootstrap * hn.critics(state["critic"], next_obs, next_act).min(0)
    target = batch["rewards"] + bootstrap * hn.critics(
        state["critic_target"], next_obs, next_act
    ).min(0)
    assert np.any(online < target) and np.any(target < online)  # both sides of the min occur
    v_hand = hn.value(state["value"], obs)
    np.testing.assert_allclose(np.asarray(v), v_hand, rtol=1e-5, atol=1e-6)
    expected = np.mean((v_hand - np.minimum(online, target)) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- one update, in order
def test_one_update_runs_critic_value_vae_actor_in_the_official_order():
    algo, state = make_case(seed=3, mask=0.7)
    batch = hn.make_batch(n=8, seed=8)
    key = jax.random.PRNGKey(13)
    update = jax.jit(algo.update)
    new, m = update(state, batch, key)
    m = hn.metrics_f64(m)
    k_critic, k_vae, k_actor = jax.random.split(key, 3)
    obs, acts = hn.norm_obs(batch["observations"]), hn.unit_actions(batch["actions"])
    # V: targets through the critics AFTER their step, V's parameters before its own
    want_value_loss, _ = algo.value_loss(
        state["value"], dict(state, critic=new["critic"]), obs, batch, k_critic
    )
    assert m["value_loss"] == pytest.approx(float(want_value_loss), rel=1e-5)
    assert hn.trees_differ(new["value"], state["value"])
    v_old = hn.value(state["value"], obs)
    assert m["v_mean"] == pytest.approx(v_old.mean(), rel=1e-5, abs=1e-6)
    # VAE: rows with Q_1 (updated critics) > V (before its step), the VAE before its step
    q_data = hn.critics(new["critic"], obs, acts)[0]
    positive = q_data > v_old
    assert 0 < positive.sum() < len(positive)
    assert m["positive_share"] == pytest.approx(positive.mean())
    recon, _, _ = vae_forward(state["vae"], obs, acts, hn.normal_draws(k_vae, (8, LATENT)))
    want_recon = np.sum((recon - acts)[positive] ** 2) / acts.size
    assert m["vae_recon_loss"] == pytest.approx(want_recon, rel=1e-5, abs=1e-6)
    # actor (step 0: an actor step): updated critics and VAE, V before its step
    want, want_bc, *_ = _expected_actor_loss(
        dict(state, critic=new["critic"], vae=new["vae"]), obs, acts, q_data, v_old, k_actor, 0.7
    )
    assert m["bc_loss"] == pytest.approx(want_bc, rel=1e-4, abs=1e-6)
    assert m["actor_loss"] == pytest.approx(want, rel=1e-4, abs=1e-6)
    # policy_freq 2: the next update trains critics, V and VAE but not the actor
    later, m2 = update(new, batch, key)
    assert np.isnan(float(m2["actor_loss"])) and np.isfinite(float(m2["vae_loss"]))
    hn.assert_trees_close(later["actor"], new["actor"], rtol=0, atol=0)
    assert hn.trees_differ(later["vae"], new["vae"])


# ---------------------------------------------------------------- registry, config, CLI
def test_registered_with_the_official_defaults_and_the_readme_settings():
    assert get_algorithm("A2PR") is A2PR and ALGORITHMS["a2pr"] is A2PR
    cfg = A2PRConfig()
    assert (cfg.alpha, cfg.mask, cfg.vae_weight, cfg.discount) == (2.5, 1.0, 1.0, 0.99)
    assert cfg.hidden_dims == (256,) * 3 and cfg.critic_hidden_dims == (256,) * 4
    assert cfg.vae_hidden_dims == (750, 750) and (cfg.actor_lr, cfg.vae_lr) == (3e-4, 1e-3)
    assert PAPER_SETTINGS["hopper"] == {
        "alpha": 2.5, "vae_weight": 1.0, "mask": 0.4, "discount": 0.995
    }  # fmt: skip
    assert (PAPER_SETTINGS["halfcheetah"]["alpha"], PAPER_SETTINGS["walker2d"]["vae_weight"]) == (
        40.0,
        1.5,
    )
    algo = A2PR(A2PRConfig.from_dict(PAPER_SETTINGS["hopper"], algo="a2pr"))
    state = jax.eval_shape(lambda key: algo.init(hn.SPEC, key), jax.random.PRNGKey(0))
    assert state["vae"]["params"]["mean"]["kernel"].shape == (750, 4)  # latent 2 |A|
    assert len(state["critic"]["params"]["Vmap_Critic_0"]["MLP_0"]) == 4  # 4 hidden layers
    assert algo.config.discount == 0.995


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mask": -0.5}, "a2pr: mask: must be >= 0, got -0.5"),
        ({"vae_weight": float("nan")}, "a2pr: vae_weight: must be >= 0, got nan"),
        ({"latent_dim": 0}, "a2pr: latent_dim: must be an integer >= 1 or None"),
        ({"critic_hidden_dims": ()}, "a2pr: critic_hidden_dims: must be one or more layer"),
        ({"policy_freq": 0}, "a2pr: policy_freq: must be >= 1"),
    ],
)
def test_config_errors_are_one_line_and_name_the_field(overrides, message):
    with pytest.raises(ConfigError) as err:
        A2PR(A2PRConfig(**overrides)).setup(hn.SPEC)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_cli_lists_the_fields_and_reports_bad_settings_in_one_line(tmp_path):
    runner = CliRunner()
    listing = json.loads(runner.invoke(cli, ["algos", "--json"]).output)["a2pr"]
    assert listing["config"]["mask"] == 1.0 and listing["config"]["latent_dim"] is None
    assert "README hopper 0.4" in listing["help"]["mask"]
    assert listing["doc"].startswith("A2PR")
    result = runner.invoke(cli, ["train", "a2pr", "--dataset", "x", "--set", "mask=high"])
    assert result.exit_code == 2 and "a2pr: mask: cannot read 'high' as float" in result.output
    data = save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz")
    args = ["train", "a2pr", "--dataset", str(data), "--set", "latent_dim=0", "--no-progress"]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "error: a2pr: latent_dim: must be an integer >= 1" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- learning and exact resume
def test_learns_better_than_random_on_pendulum_and_resumes_exactly(tmp_path):
    # 4000 updates: A2PR starts slower than TD3+BC here (early on its BC target is mostly the
    # VAE's copy of pi(s)), then passes it: about -1070 at 3000 updates, -250 at 4000 (the data's
    # episodes average about -370; TD3+BC -610 at 3000)
    dims = (64, 64)
    config = {"hidden_dims": dims, "critic_hidden_dims": dims, "vae_hidden_dims": dims}
    data = pendulum_dataset()
    run = train(
        "a2pr",
        data,
        steps=4000,
        seed=0,
        config={**config, "batch_size": 128},
        out=tmp_path / "run",
        eval_every=0,
        save_every=250,
        eval_episodes=5,
        progress=False,
        fast_compile=False,  # optimized code: 4,250 updates run faster than they compile slower
    )
    final = run.summary["final_return_mean"]
    assert final > RANDOM_RETURN + 400, f"final return {final:.0f}"
    # a run killed after its step-3750 checkpoint continues to the same state, bit for bit
    killed = tmp_path / "killed"
    shutil.copytree(run.run_dir, killed)
    shutil.rmtree(killed / "checkpoints" / "step_4000")
    (killed / "summary.json").unlink()
    resumed = train(None, data, resume=killed, progress=False)
    assert resumed.summary["resumed_from_step"] == 3750
    leaves = jax.tree_util.tree_leaves
    assert len(leaves(run.state["vae"])) > 0 and len(leaves(run.state["value_opt"])) > 0
    for a, b in zip(leaves(run.state), leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.summary["final_return_mean"] == final
