"""Device samplers: transitions keep (s, a, r, s') together; windows never cross an episode."""

import jax
import numpy as np

from policyfit.data import Dataset
from policyfit.data.sampler import TrajectorySampler, TransitionSampler, next_actions


def episodes_dataset(lengths=(3, 5, 2, 4), obs_dim=2):
    n = sum(lengths)
    idx = np.arange(n, dtype=np.float32)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    ends = np.cumsum(lengths) - 1
    terminals[ends[0]] = True
    timeouts[ends[1:]] = True
    # observation i encodes its own index; next observation i + 0.5 marks it as "the successor of i"
    obs = np.repeat(idx[:, None], obs_dim, axis=1)
    return Dataset(
        observations=obs,
        actions=idx[:, None] / 100.0,
        rewards=idx * 10.0,
        terminals=terminals,
        timeouts=timeouts,
        next_observations=obs + 0.5,
    )


def test_transition_batches_keep_fields_aligned():
    ds = episodes_dataset()
    sampler = TransitionSampler(ds)
    batch = jax.jit(lambda d, k: sampler.sample(d, k, 512))(sampler.data, jax.random.PRNGKey(0))
    i = np.asarray(batch["observations"][:, 0]).astype(int)
    assert set(i) == set(range(len(ds)))  # uniform over all transitions
    np.testing.assert_allclose(batch["actions"][:, 0], i / 100.0, rtol=1e-6)
    np.testing.assert_allclose(batch["rewards"], i * 10.0)
    np.testing.assert_allclose(batch["next_observations"][:, 0], i + 0.5)
    np.testing.assert_array_equal(batch["terminals"], ds.terminals[i].astype(np.float32))
    np.testing.assert_array_equal(batch["timeouts"], ds.timeouts[i].astype(np.float32))
    # a' is the next logged action inside the episode, never the first action of the next one
    expected = next_actions(ds)[i, 0]
    np.testing.assert_allclose(batch["next_actions"][:, 0], expected, rtol=1e-6)
    ends = np.isin(i, ds.episode_ends)
    np.testing.assert_allclose(batch["next_actions"][ends, 0], i[ends] / 100.0, rtol=1e-6)


def test_trajectory_windows_never_cross_episode_boundaries():
    ds = episodes_dataset()
    sampler = TrajectorySampler(ds, length=4)
    batch = sampler.sample(sampler.data, jax.random.PRNGKey(1), 256)
    episode_of = ds.episode_ids()
    obs = np.asarray(batch["observations"][..., 0]).astype(int)
    mask = np.asarray(batch["mask"]).astype(bool)
    assert mask[:, 0].all()
    for row, m in zip(obs, mask, strict=True):
        valid = row[m]
        assert len(set(episode_of[valid])) == 1  # one episode per window
        np.testing.assert_array_equal(valid, np.arange(valid[0], valid[0] + len(valid)))
        # the window is cut exactly at the episode's end (or at length 4)
        end = ds.episode_ends[episode_of[valid[0]]]
        assert len(valid) == min(4, end - valid[0] + 1)
        assert (row[~m] == 0).all()  # padding is zeros
    rtg = ds.returns_to_go()
    np.testing.assert_allclose(np.asarray(batch["returns_to_go"])[mask], rtg[obs[mask]], rtol=1e-6)
    timesteps = np.arange(len(ds)) - ds.episode_starts[episode_of]
    np.testing.assert_array_equal(np.asarray(batch["timesteps"])[mask], timesteps[obs[mask]])
