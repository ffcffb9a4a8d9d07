"""The discrete suite's behavior policies: snapshots of one online DQN run per environment.

Schweighofer et al. (CoLLAs 2022, github.com/ml-jku/OfflineRL ``source/train_online.py``) build
every discrete dataset from one online DQN run: ``replay`` is the run's transitions, ``expert``
its final network acting greedily, ``noisy`` the same with epsilon 0.2, ``mixed`` 80 % random and
20 % expert. :func:`~policyfit.training.online_dqn.ship_online_dqn` (``policyfit behavior dqn
KEY``) runs that DQN and ships ``K + 1`` snapshots of its Q-network here:

* ``policies/discrete/{key}.msgpack``: flax msgpack of ``{"snapshots": [params_0, ..., params_K]}``;
  ``params_k`` is the network after ``snapshot_steps[k] = k * online_steps / K`` environment steps
  (``params_0`` the initial random network, ``params_K`` the final one);
* ``policies/discrete/index.json``: ``{key: record}`` with the network shape, the run's settings,
  the file's sha256 and the measured returns (``online_best_return``: the best greedy evaluation
  during the run, the paper's expert reference; ``final_greedy_return`` and ``random_return``:
  100 episodes each, ``episode_returns`` seed 10 000).

The suite's recipes roll the snapshots out with :func:`q_act_fn` / :func:`greedy_act_fn` in
:func:`policyfit.envs.jaxenv.collect`.

Example:
    >>> import jax.numpy as jnp
    >>> q = jnp.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    >>> epsilon_greedy(q, 0.0, None).tolist()
    [1, 0]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import read_json
from policyfit.envs.jaxenv import ActFn, get_discrete_env
from policyfit.errors import PolicyfitError

DISCRETE_POLICIES_DIR = Path(__file__).parent / "policies" / "discrete"
INDEX_NAME = "index.json"


def policies_dir(directory: str | Path | None = None) -> Path:
    """The folder of the shipped files (the package's unless ``directory`` is given)."""
    return DISCRETE_POLICIES_DIR if directory is None else Path(directory)


def behavior_index(directory: str | Path | None = None) -> dict[str, Any]:
    """The whole ``index.json`` (environment key -> record); empty when nothing is shipped."""
    path = policies_dir(directory) / INDEX_NAME
    return read_json(path) if path.exists() else {}


def behavior_record(key: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The index record of ``key`` (``cartpole``); an error saying what to run when it is missing."""
    key = get_discrete_env(key).key
    record = behavior_index(directory).get(key)
    if record is None:
        raise PolicyfitError(
            f"no DQN behavior policy is shipped for {key!r}; train and ship one with "
            f"`policyfit behavior dqn {key}`",
            path=str(policies_dir(directory) / INDEX_NAME),
            field=key,
        )
    return record


def load_snapshots(key: str, directory: str | Path | None = None) -> list[Any]:
    """The ``K + 1`` Q-network parameter snapshots of ``key`` (float32 numpy pytrees), after
    checking the file's sha256 against the index."""
    import flax.serialization

    key = get_discrete_env(key).key
    record = behavior_record(key, directory)
    path = policies_dir(directory) / record["file"]
    if not path.exists():
        raise PolicyfitError(
            f"the weights file is missing; re-ship with `policyfit behavior dqn {key}`",
            path=str(path),
            field="file",
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        raise PolicyfitError(
            f"sha256 {digest[:12]}... does not match the index's {record['sha256'][:12]}...; the "
            f"file was changed or truncated: re-ship with `policyfit behavior dqn {key}`",
            path=str(path),
            field="sha256",
        )
    snaps = list(flax.serialization.msgpack_restore(data)["snapshots"])
    if len(snaps) != record["snapshots"] + 1:
        raise PolicyfitError(
            f"holds {len(snaps)} snapshots, the index says {record['snapshots'] + 1}",
            path=str(path),
            field="snapshots",
        )
    return [_as_float32(s) for s in snaps]


def _as_float32(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _as_float32(v) for k, v in tree.items()}
    return np.asarray(tree, np.float32)


def epsilon_greedy(q: Any, epsilon: Any, key: Any) -> Any:
    """Actions ``[B]`` (int32) from Q-values ``[B, n_actions]``: with probability ``epsilon`` a
    uniformly random action, else ``argmax_a Q`` (the paper's ``DQN.policy``; ``epsilon`` may be a
    traced scalar; with a Python ``0`` no randomness is drawn and ``key`` may be None)."""
    import jax
    import jax.numpy as jnp

    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    if isinstance(epsilon, int | float) and epsilon <= 0:
        return greedy
    k_explore, k_action = jax.random.split(key)
    batch, n_actions = q.shape[:-1], q.shape[-1]
    explore = jax.random.uniform(k_explore, batch) < epsilon
    random = jax.random.randint(k_action, batch, 0, n_actions, dtype=jnp.int32)
    return jnp.where(explore, random, greedy)


@cache
def q_network(n_actions: int, hidden_dims: tuple[int, ...]) -> Any:
    """The shipped Q-network module: ``DiscreteQNetwork(n_actions, hidden_dims)`` (ReLU MLP)."""
    from policyfit.nn import DiscreteQNetwork

    return DiscreteQNetwork(n_actions, tuple(hidden_dims))


def online_epsilon(step: int, schedule: dict[str, Any]) -> float:
    """The exploration epsilon of the online run's environment step ``step`` (0-indexed), from a
    record's ``epsilon`` entry: one update follows every step ``t > warmup``, and
    ``epsilon = max(start + (end - start) * updates / decay_updates, end)`` (the paper's
    ``agents/dqn.py``), computed in float32 as the training does.

    >>> schedule = {"start": 1.0, "end": 0.01, "decay_updates": 1000, "warmup": 32}
    >>> [round(online_epsilon(t, schedule), 5) for t in (0, 33, 34, 533, 5000)]
    [1.0, 1.0, 0.99901, 0.505, 0.01]
    """
    updates = np.float32(max(0, step - schedule["warmup"] - 1))
    start, end = np.float32(schedule["start"]), np.float32(schedule["end"])
    slope = np.float32((schedule["end"] - schedule["start"]) / schedule["decay_updates"])
    return float(np.maximum(slope * updates + start, end))


@cache
def network_act_fn(n_actions: int, hidden_dims: Sequence[int], epsilon: float | None) -> ActFn:
    """The epsilon-greedy :data:`~policyfit.envs.jaxenv.ActFn` of a Q-network of this shape:
    ``params`` is one snapshot, or ``(snapshot, epsilon)`` when ``epsilon`` is None (one compiled
    collector for every epsilon). The online DQN's evaluations use it too."""
    net = q_network(n_actions, tuple(hidden_dims))
    if epsilon is None:

        def act_with_epsilon(params, obs, key):
            snapshot, eps = params
            return epsilon_greedy(net.apply(snapshot, obs), eps, key)

        return act_with_epsilon
    eps = float(epsilon)

    def act(params, obs, key):
        return epsilon_greedy(net.apply(params, obs), eps, key)

    return act


def q_act_fn(key: str, epsilon: float | None, directory: str | Path | None = None) -> ActFn:
    """The epsilon-greedy policy of ``key``'s shipped Q-network; pass a snapshot as ``params``
    (with ``epsilon=None``, pass ``(snapshot, epsilon)``):

    >>> act = q_act_fn("cartpole", 0.2)                                   # doctest: +SKIP
    >>> collect("cartpole", act, load_snapshots("cartpole")[-1], 1000, 0)  # doctest: +SKIP
    """
    if epsilon is not None and not 0.0 <= epsilon <= 1.0:
        raise PolicyfitError("must be in [0, 1]", path=key, field="epsilon")
    record = behavior_record(key, directory)
    eps = None if epsilon is None else float(epsilon)
    return network_act_fn(record["n_actions"], tuple(record["hidden_dims"]), eps)


def greedy_act_fn(key: str, directory: str | Path | None = None) -> ActFn:
    """``argmax_a Q(s, a)`` of ``key``'s shipped Q-network (the ``expert`` policy with the final
    snapshot)."""
    return q_act_fn(key, 0.0, directory)
