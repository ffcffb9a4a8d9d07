"""Batches drawn on the accelerator: the dataset is copied to the device once, and every batch is a
gather inside jitted code (no host-to-device copy per step).

* :class:`TransitionSampler` — uniform transitions ``(s, a, r, d, timeout, s', a')``; ``a'`` is the
  logged next action inside the episode (ReBRAC's critic penalty needs it).
* :class:`TrajectorySampler` — windows of ``K`` consecutive steps of ONE episode with a padding
  mask, return-to-go and timestep (sequence models).

Both expose a pure ``sample(data, key, batch_size)`` that can be called inside ``jax.jit`` /
``lax.scan``; ``data`` is the device pytree held in ``sampler.data``.

Example:
    >>> import jax, numpy as np
    >>> from policyfit.data import Dataset
    >>> ds = Dataset(observations=np.zeros((5, 2)), actions=np.zeros((5, 1)), rewards=np.ones(5),
    ...              terminals=np.array([0, 0, 1, 0, 1]))
    >>> sampler = TransitionSampler(ds)
    >>> batch = sampler.sample(sampler.data, jax.random.PRNGKey(0), 4)
    >>> batch["observations"].shape, batch["terminals"].dtype
    ((4, 2), dtype('float32'))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError


def next_actions(ds: Dataset) -> np.ndarray:
    """``a_{t+1}`` inside each episode; at an episode's last step, the step's own action."""
    nxt = np.empty_like(ds.actions)
    nxt[:-1] = ds.actions[1:]
    ends = ds.episode_ends
    nxt[ends] = ds.actions[ends]
    return nxt


class TransitionSampler:
    """Uniform transition batches from a dataset placed on the device once.

    All float fields are packed into one ``[N, width]`` matrix so a batch is a single row gather
    (one memory pass instead of seven) and then split into named columns.
    """

    def __init__(self, ds: Dataset, device: Any = None):
        ds.require_actions()  # action-free episodes: the error says to run `policyfit data relabel`
        if ds.discrete:
            actions = ds.actions[:, None].astype(np.float32)
            nxt_actions = next_actions(ds)[:, None].astype(np.float32)
        else:
            actions, nxt_actions = ds.actions, next_actions(ds)
        columns = {
            "observations": ds.observations,
            "actions": actions,
            "rewards": ds.rewards[:, None],
            "terminals": ds.terminals[:, None],
            "timeouts": ds.timeouts[:, None],
            "next_observations": ds.next_observations,
            "next_actions": nxt_actions,
        }
        self.layout: list[tuple[str, int, int]] = []
        start = 0
        for name, arr in columns.items():
            width = arr.shape[1]
            self.layout.append((name, start, start + width))
            start += width
        packed = np.concatenate([np.asarray(a, np.float32) for a in columns.values()], axis=1)
        self.size = len(ds)
        self.discrete = ds.discrete
        self.data = jax.device_put(jnp.asarray(packed), device)

    def sample(self, data: jnp.ndarray, key: jax.Array, batch_size: int) -> dict[str, jnp.ndarray]:
        """``batch_size`` transitions drawn uniformly with replacement; pure, jit-able."""
        idx = jax.random.randint(key, (batch_size,), 0, self.size)
        rows = jnp.take(data, idx, axis=0)
        batch = {}
        for name, lo, hi in self.layout:
            col = rows[:, lo:hi]
            if name in ("rewards", "terminals", "timeouts"):
                col = col[:, 0]
            elif self.discrete and name in ("actions", "next_actions"):
                col = col[:, 0].astype(jnp.int32)
            batch[name] = col
        return batch


class TrajectorySampler:
    """Windows of ``length`` consecutive steps that never cross an episode boundary.

    A window starts at a uniformly drawn transition and runs to ``length`` steps or the end of its
    episode, whichever comes first; positions past the end are padding (``mask == 0``, zeros in the
    arrays). ``returns_to_go`` is per episode (:meth:`Dataset.returns_to_go`), ``timesteps`` is the
    position inside the episode.
    """

    def __init__(self, ds: Dataset, length: int, discount: float = 1.0, device: Any = None):
        ds.require_actions()
        if length < 1:
            raise ConfigError(f"window length must be >= 1, got {length}", field="length")
        self.length = length
        self.size = len(ds)
        episode_of = ds.episode_ids()
        self.data = jax.device_put(
            {
                "observations": jnp.asarray(ds.observations),
                "actions": jnp.asarray(ds.actions),
                "rewards": jnp.asarray(ds.rewards),
                "terminals": jnp.asarray(ds.terminals, jnp.float32),
                "next_observations": jnp.asarray(ds.next_observations),
                "returns_to_go": jnp.asarray(ds.returns_to_go(discount), jnp.float32),
                "timesteps": jnp.asarray(
                    np.arange(len(ds)) - ds.episode_starts[episode_of], jnp.int32
                ),
                "episode_end": jnp.asarray(ds.episode_ends[episode_of], jnp.int32),
            },
            device,
        )

    def sample(self, data: dict[str, jnp.ndarray], key: jax.Array, batch_size: int) -> dict:
        """``[batch_size, length, ...]`` arrays plus ``mask`` ``[batch_size, length]``; pure, jit-able."""
        start = jax.random.randint(key, (batch_size,), 0, self.size)
        idx = start[:, None] + jnp.arange(self.length)[None, :]
        end = data["episode_end"][start][:, None]
        mask = idx <= end
        safe = jnp.where(mask, idx, end)
        out = {}
        for name, arr in data.items():
            if name == "episode_end":
                continue
            win = arr[safe]
            shape = mask.shape + (1,) * (win.ndim - 2)
            out[name] = jnp.where(mask.reshape(shape), win, jnp.zeros((), win.dtype))
        out["mask"] = mask.astype(jnp.float32)
        return out
