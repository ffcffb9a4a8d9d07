"""PRDC (Ran et al., 2023): the exact on-device neighbour search against scipy's KD-tree, the
actor loss evaluated by hand, the beta limits, and learning on the Pendulum data.

Actor loss: ``-lambda mean Q_1(s, pi(s)) + mean (pi(s) - a^)^2``, ``lambda = alpha / mean|Q_1|``,
``(s^, a^)`` the dataset pair nearest to ``(beta s, pi(s))`` (``prdc.py`` of LAMDA-RL/PRDC).
"""

import handnets as hn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import cKDTree

from pendulum_data import RANDOM_RETURN, pendulum_dataset
from policyfit.algos import nearest
from policyfit.algos.nearest import build_table, nearest_neighbor
from policyfit.algos.prdc import PRDC, PRDCConfig
from policyfit.algos.td3bc import TD3BC, TD3BCConfig
from policyfit.data import Dataset
from policyfit.errors import ConfigError
from policyfit.training.trainer import train

search = jax.jit(nearest_neighbor, static_argnames="k")


def _check_against_kdtree(keys, queries, table, k):
    idx, dist2, fallback = search(queries, table, k=k)
    idx, dist = np.asarray(idx), np.sqrt(np.asarray(dist2, np.float64))
    ref_dist, ref_idx = cKDTree(keys.astype(np.float64)).query(queries.astype(np.float64), k=[k])
    ref_dist, ref_idx = ref_dist[:, 0], ref_idx[:, 0]
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6, atol=1e-6)  # float32 rounding
    # the returned row is at the returned distance, and only an exact tie may differ in index
    own = np.linalg.norm(keys[idx].astype(np.float64) - queries, axis=1)
    np.testing.assert_allclose(own, ref_dist, rtol=1e-6, atol=1e-6)
    differ = idx != ref_idx
    tied = np.all(keys[idx] == keys[ref_idx], axis=1) | (
        np.abs(own - np.linalg.norm(keys[ref_idx] - queries, axis=1)) < 1e-6
    )
    assert np.all(tied[differ])
    return idx, bool(fallback)


@pytest.mark.parametrize(
    ("n", "dim", "duplicates", "k", "chunk"),
    [
        (1, 3, 0, 1, 64),  # a single row
        (300, 2, 150, 1, 64),  # many duplicated points (exact ties), chunks not a divisor of n
        (2000, 23, 0, 1, 256),  # PRDC's hopper-sized keys (17 + 6)
        (2000, 23, 600, 3, 512),  # the 3rd neighbour among duplicates
    ],
)
def test_search_finds_the_kdtree_neighbour_distance(n, dim, duplicates, k, chunk):
    rng = np.random.default_rng(n + dim)
    keys = (2.0 * rng.normal(size=(n, dim))).astype(np.float32)
    if duplicates:
        keys[rng.integers(0, n, duplicates)] = keys[rng.integers(0, n, duplicates)]
    queries = (2.0 * rng.normal(size=(32, dim))).astype(np.float32)
    queries[:8] = keys[rng.integers(0, n, 8)] + 1e-3 * rng.normal(size=(8, dim))  # near a row
    queries[8:12] = keys[rng.integers(0, n, 4)]  # exactly on a row (distance 0)
    _, fallback = _check_against_kdtree(keys, queries, build_table(keys, chunk, 8), k)
    assert not fallback  # the certificate held: no near-ties beyond the 8 candidates


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_band_screen_lists_the_kdtree_neighbour_and_flags_crowded_bands(chunk):
    # k = 1's band screen alone: every query's list holds the kd-tree's neighbour (near-ties at
    # |x| ~ 10 may add a few); a key copied 3 times into one chunk is a band it cannot list
    rng = np.random.default_rng(chunk)
    keys = (2.0 * rng.normal(size=(900, 23))).astype(np.float32)
    queries = (2.0 * rng.normal(size=(40, 23))).astype(np.float32)
    queries[:5] = keys[-5:] + 1e-3  # nearest rows in the last (padded) chunk: the band resets
    keys[[1, 2]] = keys[0]
    queries[5] = keys[0]
    table = build_table(keys, chunk, 8)
    q = jnp.asarray(queries)
    bound = nearest._error_bound(q, jnp.sum(q * q, axis=1), table)
    listed, count, complete = map(np.asarray, jax.jit(nearest._band_pass)(q, bound, table))
    ref_idx = cKDTree(keys.astype(np.float64)).query(queries.astype(np.float64))[1]
    ok = np.arange(40) != 5
    assert np.all(complete[ok]) and np.all(count >= 1)
    assert all(ref_idx[i] in listed[i, : count[i]] for i in np.flatnonzero(ok))
    assert (count[ok] == 1).sum() >= 30  # a band of one key is the common case
    assert count[5] >= 3 and not complete[5]  # 3 copies in one chunk: not listable
    # the public search answers every query exactly, the copies through the top-m screen
    _check_against_kdtree(keys, queries, table, 1)


def test_search_falls_back_to_direct_distances_when_the_screening_cannot_decide():
    # 20 copies of one point and a slightly nearer point, all inside the expansion's rounding
    # band at this magnitude (|x| ~ 1e3): the 8 screened candidates cannot be certified.
    rng = np.random.default_rng(3)
    base = np.full(4, 1000.0, np.float32)
    keys = np.concatenate(
        [np.tile(base, (20, 1)), (base + [0, 0, 0, 1e-3])[None], rng.normal(size=(100, 4)) * 50]
    ).astype(np.float32)
    queries = np.concatenate([(base + [0, 0, 0, 2e-3])[None], rng.normal(size=(3, 4)) * 50])
    idx, fallback = _check_against_kdtree(
        keys, queries.astype(np.float32), build_table(keys, 32, 8), 1
    )
    assert fallback
    assert idx[0] == 20  # the nearer point, not one of the 20 copies


def _three_row_dataset():
    # states: rows 0 and 1 close, row 2 far; actions (in the box of hn.SPEC) all different
    return Dataset(
        observations=np.array([[0.5, -1.0], [0.6, -1.0], [3.0, 0.0]], np.float32),
        actions=np.array([[1.6, 2.2], [-1.6, -0.6], [0.0, 1.0]], np.float32),
        rewards=np.array([0.0, 1.0, 0.5], np.float32),
        terminals=np.array([0, 0, 1]),
    )


def _actor_case(beta):
    algo = PRDC(PRDCConfig(hidden_dims=(4, 3), alpha=2.5, beta=beta, search_chunk=2))
    state = algo.init(hn.SPEC, jax.random.PRNGKey(0))
    state = hn.randomize_entries(state, "actor", "critic")
    ds = _three_row_dataset()
    sampler = algo.make_sampler(ds, hn.SPEC)
    batch = sampler.sample(sampler.data, jax.random.PRNGKey(1), 3)
    return algo, state, ds, batch


def test_actor_loss_on_three_rows_by_hand():
    beta = 2.0
    algo, state, ds, batch = _actor_case(beta)
    obs = hn.norm_obs(batch["observations"])
    loss, (mse, fallback, _) = algo.actor_loss(
        state["actor"], state["critic"], obs, batch["nn_table"]
    )
    # by hand: keys [beta * normalized s, unit a] of the 3 dataset rows; query [beta s, pi(s)]
    pi = hn.deterministic_actor(state["actor"], obs)
    keys = np.hstack([beta * hn.norm_obs(ds.observations), hn.unit_actions(ds.actions)])
    query = np.hstack([beta * obs, pi])
    nearest = np.argmin(((query[:, None, :] - keys[None]) ** 2).sum(-1), axis=1)
    target = hn.unit_actions(ds.actions)[nearest]
    q1 = hn.critics(state["critic"], obs, pi)[0]
    expected_mse = np.mean((pi - target) ** 2)
    expected = -2.5 / np.mean(np.abs(q1)) * q1.mean() + expected_mse
    assert float(mse) == pytest.approx(expected_mse, rel=1e-5, abs=1e-6)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert float(fallback) == 0.0
    # the case tells PRDC from TD3+BC: some row's neighbour is not the row itself
    own = [int(np.flatnonzero((ds.observations == o).all(1))[0]) for o in batch["observations"]]
    assert np.any(nearest != np.array(own))


def test_large_beta_is_td3bc_and_zero_beta_takes_the_nearest_action_anywhere():
    algo, state, ds, batch = _actor_case(1e3)
    obs = hn.norm_obs(batch["observations"])
    prdc, _ = algo.actor_loss(state["actor"], state["critic"], obs, batch["nn_table"])
    td3bc = TD3BC(TD3BCConfig(hidden_dims=(4, 3), alpha=2.5))
    td3bc.setup(hn.SPEC)
    acts = hn.unit_actions(batch["actions"])
    expected, _ = td3bc.actor_loss(state["actor"], state["critic"], jnp.asarray(obs), acts)
    assert float(prdc) == pytest.approx(float(expected), rel=1e-6)

    algo, state, ds, batch = _actor_case(0.0)
    obs = hn.norm_obs(batch["observations"])
    pi = hn.deterministic_actor(state["actor"], obs)
    target, _, _ = algo.nearest_actions(jnp.asarray(obs), jnp.asarray(pi), batch["nn_table"])
    units = hn.unit_actions(ds.actions)
    nearest = np.argmin(((pi[:, None, :] - units[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.asarray(target), units[nearest], atol=1e-6)


def test_update_logs_the_constraint_and_skips_the_search_between_actor_steps():
    algo, state, _, batch = _actor_case(2.0)
    state, metrics = algo.update(state, batch, jax.random.PRNGKey(2))
    assert np.isfinite(float(metrics["dc_mse"])) and float(metrics["search_fallback"]) == 0.0
    _, metrics = algo.update(state, batch, jax.random.PRNGKey(3))  # policy_freq 2: critic only
    assert np.isnan(float(metrics["dc_mse"])) and np.isnan(float(metrics["actor_loss"]))


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="k"):
        PRDC(PRDCConfig(k=17)).setup(hn.SPEC)
    with pytest.raises(ConfigError, match="beta"):
        PRDC(PRDCConfig(beta=-1.0)).setup(hn.SPEC)
    with pytest.raises(ConfigError, match="no search table"):
        algo = PRDC(PRDCConfig(hidden_dims=(4, 3)))
        algo.update(
            algo.init(hn.SPEC, jax.random.PRNGKey(0)), hn.make_batch(), jax.random.PRNGKey(0)
        )


def test_prdc_learns_better_than_random_on_pendulum(tmp_path):
    # beta 10: Pendulum's 3-d states weigh little against the action at the README's beta 2
    # (3000 updates reach about -1020 there, TD3+BC -610, beta 10 about -510)
    result = train(
        "prdc",
        pendulum_dataset(),
        steps=3000,
        seed=0,
        config={"hidden_dims": (64, 64), "batch_size": 256, "beta": 10.0},
        out=tmp_path / "prdc",
        eval_every=0,
        save_every=0,
        eval_episodes=5,
        progress=False,
        fast_compile=False,  # optimized code: the updates run faster than they compile slower
    )
    final = result.summary["final_return_mean"]
    assert final > RANDOM_RETURN + 400, f"final return {final:.0f}"


def test_kdtree_search_gives_the_device_search_update():
    """search='kdtree' (scipy through pure_callback, the official code's method), the on-device
    search and both paths of 'hybrid' find the same neighbours, so one update is the same."""
    rng = np.random.default_rng(0)
    n = 500
    ds = Dataset(
        observations=rng.normal(size=(n, 2)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32) * np.float32(1.5)
        + np.float32(0.3),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=np.zeros(n, bool),
    )
    out, device = {}, {}
    # hybrid: switch 0 -> always the device path, 1e9 -> always the tree
    cases = {"device": {}, "kdtree": {}, "hybrid-far": {"search_switch": 0.0}}
    cases["hybrid-near"] = {"search_switch": 1e9}
    for name, extra in cases.items():
        search = name.split("-")[0]
        algo = PRDC(
            PRDCConfig(hidden_dims=(8, 8), beta=2.0, search=search, search_chunk=64, **extra)
        )
        state = algo.init(hn.SPEC, jax.random.PRNGKey(0))
        sampler = algo.make_sampler(ds, hn.SPEC)
        batch = sampler.sample(sampler.data, jax.random.PRNGKey(1), 64)
        _, metrics = jax.jit(algo.update)(state, batch, jax.random.PRNGKey(2))
        out[name], device[name] = float(metrics["dc_mse"]), float(metrics["search_device"])
    for name in cases:
        np.testing.assert_allclose(out[name], out["device"], rtol=1e-5, err_msg=name)
    assert device == {"device": 1.0, "kdtree": 0.0, "hybrid-far": 1.0, "hybrid-near": 0.0}
    with pytest.raises(ConfigError, match="search: must be 'auto', 'device', 'kdtree' or 'hybrid'"):
        PRDC(PRDCConfig(search="ball")).setup(hn.SPEC)
