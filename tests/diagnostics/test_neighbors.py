import numpy as np

from policyfit.diagnostics.neighbors import neighbour_spread, standardize


def test_deterministic_policy_is_consistent_random_policy_is_not():
    rng = np.random.default_rng(1)
    states = rng.uniform(-1, 1, size=(3000, 3))
    episodes = np.repeat(np.arange(300), 10)
    consistent = neighbour_spread(states, np.tanh(states[:, :2] * 2), episodes, k=8)["ratio"]
    random = neighbour_spread(states, rng.uniform(-1, 1, (3000, 2)), episodes, k=8)["ratio"]
    assert consistent < 0.1
    assert 0.85 < random < 1.15


def test_discrete_actions_use_disagreement_rate():
    rng = np.random.default_rng(2)
    states = rng.uniform(-1, 1, size=(2000, 2))
    by_region = (states[:, 0] > 0).astype(np.int64)
    out = neighbour_spread(states, by_region, np.arange(2000), k=5)
    assert out["ratio"] < 0.1
    coin = rng.integers(0, 2, 2000)
    assert neighbour_spread(states, coin, np.arange(2000), k=5)["ratio"] > 0.8


def test_same_episode_neighbours_are_ignored():
    # one smooth episode per "behaviour": inside an episode the actions are constant, but two
    # episodes through the same states act oppositely -> the action divergence must be high
    t = np.linspace(0, 1, 500)[:, None]
    states = np.concatenate([t, t])
    actions = np.concatenate([np.ones((500, 1)), -np.ones((500, 1))])
    groups = np.repeat([0, 1], 500)
    assert neighbour_spread(states, actions, groups, k=4)["ratio"] > 1.5


def test_card_action_consistency_orders_noise_levels(make_linear_ds):
    from policyfit.diagnostics.card import diagnose

    clean = diagnose(make_linear_ds(policy_noise=0.02, episodes=30), reference=None)
    noisy = diagnose(make_linear_ds(policy_noise=1.0, episodes=30), reference=None)
    assert clean.action_consistency["consistency"] > noisy.action_consistency["consistency"] + 0.3
    assert 0 <= noisy.transition_diversity["diversity"] < 0.5  # deterministic dynamics


def test_standardize_constant_column():
    z, mean, std = standardize(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert z[:, 1].tolist() == [0.0, 0.0] and z[:, 0].tolist() == [-1.0, 1.0]


def test_discrete_action_dataset_gets_a_full_card():
    from policyfit.data import Dataset
    from policyfit.diagnostics.card import diagnose

    rng = np.random.default_rng(0)
    n = 3000
    obs = rng.uniform(-1, 1, size=(n, 2))
    actions = (obs[:, 0] > 0).astype(np.int64) + 2 * (obs[:, 1] > 0)
    ds = Dataset(
        observations=obs,
        actions=actions,
        rewards=obs[:, 0],
        terminals=np.arange(n) % 30 == 29,
        next_observations=obs + 0.01,
        metadata={"action_space": {"type": "discrete", "n": 4}},
    )
    card = diagnose(ds, reference=ds)
    assert card.coverage["saco"] == 1.0 and card.coverage["reference_is_dataset"]
    assert card.action_consistency["consistency"] > 0.8
    assert [row["count"] for row in card.dimensions["actions"]] == np.bincount(actions).tolist()
    assert card.to_dict()["summary"]["discrete"] is True
