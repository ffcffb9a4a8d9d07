"""The registry and config validation: the errors a user can cause are clear ConfigErrors."""

import pytest

from policyfit.algos.registry import ALGORITHMS, get_algorithm
from policyfit.errors import ConfigError


def test_all_algorithms_registered_with_paper_defaults():
    builtin = {
        "bc",
        "td3bc",
        "iql",
        "riql",
        "cql",
        "awac",
        "rebrac",
        "discrete_bc",
        "rvs_r",
        "dqn",
        "qrdqn",
    }
    dqn = get_algorithm("dqn").Config()  # Schweighofer et al. 2022 (ml-jku/OfflineRL)
    assert (dqn.double, dqn.discount, dqn.learning_rate, dqn.batch_size) == (True, 0.95, 1e-4, 128)
    assert dqn.target_update_period == 100
    assert get_algorithm("qrdqn").Config().n_quantiles == 50  # ml-jku/OfflineRL
    assert get_algorithm("rem").Config().n_heads == 200  # batch_rl, ml-jku/OfflineRL
    builtin |= {"bcq_discrete", "crr", "bve", "rem", "cql_discrete", "mce"}
    builtin |= {"prdc", "a2pr", "lipschitz_bc", "demo_reg", "vgps"}  # policy regularization
    builtin |= {"dt", "doc", "rvs_g", "mbrcsl"}  # outcome-conditioned
    assert builtin <= set(ALGORITHMS)
    assert get_algorithm("TD3+BC") is ALGORITHMS["td3bc"]
    assert get_algorithm("td3bc").Config().alpha == 2.5
    iql = get_algorithm("iql").Config()
    assert (iql.expectile, iql.temperature, iql.max_weight) == (0.7, 3.0, 100.0)
    assert get_algorithm("bc").Config().top_fraction == 1.0


def test_unknown_algorithm_lists_valid_ones():
    with pytest.raises(ConfigError, match="valid: " + ", ".join(sorted(ALGORITHMS))):
        get_algorithm("sac-n")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        get_algorithm("iql").Config.from_dict({"expectle": "0.8"}, algo="iql")
    assert "expectile" in str(info.value) and "valid keys" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("expectile", "high"),
        ("batch_size", "2.5"),
        ("cosine_schedule", "maybe"),
        ("hidden_dims", "a,b"),
    ],
)
def test_bad_value_types_rejected(key, value):
    with pytest.raises(ConfigError, match="cannot read"):
        get_algorithm("iql").Config.from_dict({key: value}, algo="iql")


def test_strings_are_converted():
    cfg = get_algorithm("iql").Config.from_dict(
        {"expectile": "0.9", "hidden_dims": "64,64", "value_quantile": "0.25", "huber_delta": "1"}
    )
    assert cfg.expectile == 0.9 and cfg.hidden_dims == (64, 64)
    assert cfg.value_quantile == 0.25 and cfg.huber_delta == 1


def test_out_of_range_values_rejected_at_setup():
    from policyfit.algos.base import DatasetSpec

    spec = DatasetSpec(observation_dim=3, action_dim=1)
    cls = get_algorithm("iql")
    with pytest.raises(ConfigError, match="expectile"):
        cls(cls.Config(expectile=1.5)).setup(spec)
    with pytest.raises(ConfigError, match="reward_normalization.*per_step, return_range, none"):
        cls(cls.Config(reward_normalization="d4rl")).setup(spec)
    bc = get_algorithm("bc")
    with pytest.raises(ConfigError, match="policy"):
        bc(bc.Config(policy="diffusion")).setup(spec)


def test_percent_bc_keeps_the_best_trajectories():
    import numpy as np

    from policyfit.data import Dataset

    lengths, returns = [3, 2, 4, 1], [5.0, 1.0, 9.0, 3.0]
    rewards = np.concatenate([np.full(n, r / n) for n, r in zip(lengths, returns, strict=True)])
    ends = np.cumsum(lengths) - 1
    timeouts = np.zeros(len(rewards), bool)
    timeouts[ends] = True
    ds = Dataset(
        observations=np.arange(len(rewards), dtype=float)[:, None],
        actions=np.zeros((len(rewards), 1)),
        rewards=rewards,
        terminals=np.zeros(len(rewards)),
        timeouts=timeouts,
    )
    bc = get_algorithm("bc")
    top = bc(bc.Config(top_fraction=0.5)).prepare(ds)
    # the two best episodes (returns 9 and 5), in storage order
    np.testing.assert_allclose(sorted(top.episode_returns()), [5.0, 9.0])
    assert top.num_transitions == 7
    assert bc(bc.Config()).prepare(ds) is ds
    assert bc(bc.Config(top_fraction=0.01)).prepare(ds).num_episodes == 1


def test_riql_is_iql_with_the_papers_robust_defaults():
    from policyfit.algos.iql import IQL, IQLConfig

    riql = get_algorithm("riql")
    assert issubclass(riql, IQL) and riql.name == "riql"
    cfg = riql.Config()
    assert (cfg.n_critics, cfg.value_quantile, cfg.huber_delta) == (5, 0.25, 1.0)
    assert cfg.target_clip == (-100.0, 1000.0) and cfg.normalize_with_next
    assert isinstance(cfg, IQLConfig) and cfg.expectile == IQLConfig().expectile
    plain = IQLConfig()
    assert (plain.target_clip, plain.normalize_with_next) == (None, False)
    # optional tuples read from the CLI and from config.json
    assert riql.Config.from_dict({"target_clip": "-5,5"}).target_clip == (-5.0, 5.0)
    assert riql.Config.from_dict({"target_clip": "none"}).target_clip is None
    assert IQLConfig.from_dict({"target_clip": [-1, 2]}).target_clip == (-1, 2)
    with pytest.raises(ConfigError, match="target_clip"):
        IQLConfig.from_dict({"target_clip": "a,b"})
    spec = __import__("policyfit.algos.base", fromlist=["DatasetSpec"]).DatasetSpec(3, 1)
    with pytest.raises(ConfigError, match="low < high"):
        riql(riql.Config(target_clip=(5.0, -5.0))).setup(spec)


def test_riql_clips_targets_and_normalizes_with_next_observations():
    import jax
    import numpy as np

    from policyfit.algos.base import DatasetSpec
    from policyfit.data.dataset import Dataset

    rng = np.random.default_rng(0)
    n = 64
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    ds = Dataset(
        observations=obs,
        actions=rng.uniform(-1, 1, size=(n, 1)).astype(np.float32),
        rewards=np.full(n, 50.0, np.float32),
        terminals=np.zeros(n, bool),
        timeouts=np.r_[np.zeros(n - 1, bool), True],
        next_observations=obs + 10.0,
    )
    spec = DatasetSpec.from_dataset(ds)
    both = np.concatenate([ds.observations, ds.next_observations])
    np.testing.assert_allclose(spec.obs_next_mean, both.mean(0), rtol=1e-5)
    riql = get_algorithm("riql")
    batch = {
        "observations": ds.observations[:16],
        "actions": ds.actions[:16],
        "rewards": ds.rewards[:16],
        "next_observations": ds.next_observations[:16],
        "terminals": ds.terminals[:16].astype(np.float32),
    }

    def q_after_training(target_clip):
        cfg = riql.Config(
            hidden_dims=(16,),
            target_clip=target_clip,
            reward_normalization="none",
            huber_delta=None,
            critic_lr=1e-2,
        )
        algo = riql(cfg)
        state = algo.init(spec, jax.random.PRNGKey(0))
        np.testing.assert_allclose(state["obs_norm"]["mean"], both.mean(0), rtol=1e-5)
        update = jax.jit(algo.update)
        for i in range(150):
            state, metrics = update(state, batch, jax.random.PRNGKey(i))
        return float(metrics["q_mean"])

    # rewards of 50 make every TD target >= 50; clipped to [-1, 1] they pull Q to 1 at most
    assert q_after_training((-1.0, 1.0)) < 1.5
    assert q_after_training(None) > 10.0
