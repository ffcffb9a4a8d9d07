"""PRDC — "Policy Regularization with Dataset Constraint for Offline RL" (Ran et al., ICML 2023).

TD3+BC (:mod:`policyfit.algos.td3bc`: the same critics, target smoothing, delayed actor and
target updates, state normalization) whose actor is pulled toward the NEAREST dataset pair
instead of the batch's own action. With states normalized and actions in ``[-1, 1]``:

    (s^, a^) = argmin_{(s', a') in D} || (beta s, pi(s)) - (beta s', a') ||_2     (pi(s) detached)
    L_pi = -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a^)^2,   lambda = alpha / mean|Q_1|

``beta -> inf`` recovers TD3+BC (the neighbour is the state's own row); ``beta -> 0`` takes the
nearest action anywhere in the dataset. ``k`` picks the k-th nearest instead, as the official
``kd_tree.query(key, k=[k])`` does (every published run uses ``k = 1``).

The official code (``LAMDA-RL/PRDC``, ``prdc.py`` and ``main.py`` at commit 9f38464) builds a
scipy ``KDTree`` over ``hstack[beta * S_normalized, A]`` and queries it on the host. Here the
search is exact either way (``search``):

* ``device``: inside the jitted update (:mod:`policyfit.algos.nearest`: a chunked brute-force
  search, certified against float rounding), for accelerators;
* ``kdtree`` (``auto`` on a CPU): scipy's ``cKDTree`` through ``jax.pure_callback``, on all
  cores. (Pruning each query by its own dataset pair, whose distance bounds the nearest one,
  was measured in ``benchmarks/prdc_nn.py`` and did not pay: no faster far from the data,
  slower near it.)

The cost depends on where the actor is. ``benchmarks/prdc_nn.py`` on ``halfcheetah-medium`` (1M
keys of 23 dimensions, batch 256, Intel Xeon, 2 cores): about 7 ms per query batch when
``pi(s)`` is near the data's actions (PRDC ~1.4x a TD3+BC update), but about 800 ms from a
young actor whose actions lie far from them (the KD-tree then visits most of its nodes, and the
brute force is no faster on 2 cores: 12 GFLOP per batch). With halfcheetah's ``alpha = 40`` the
actor stays far for the whole first thousand updates (~0.9 s per update). The table lives in the
sampler's data (:class:`PRDCSampler`), not in the checkpointed train state.

Defaults: ``prdc.py``/``utils/config.py`` — 2x256 actor and critics, Adam 3e-4, batch 256,
``gamma = 0.99``, ``tau = 0.005``, policy noise 0.2 clipped at 0.5, ``policy_freq = 2``, states
normalized (eps 1e-3), 1M updates. ``beta`` is 2.0 as in every README command (the argparse
default is 1.0). Per-environment settings from the README (:data:`PAPER_SETTINGS`):

=============================  =======  ======  ===  =========================================
environment                    alpha    beta    k    note
=============================  =======  ======  ===  =========================================
halfcheetah-*                  40.0     2.0     1
hopper-*, walker2d-*           2.5      2.0     1    the defaults here
antmaze-*                      7.5      7.5     1    rewards ``r * 10000 - 1`` (``--scale/shift``)
=============================  =======  ======  ===  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import DatasetSpec, register
from policyfit.algos.nearest import build_table, nearest_neighbor, table_rows
from policyfit.algos.td3bc import TD3BC, TD3BCConfig, regularized_actor_loss
from policyfit.data.sampler import TransitionSampler
from policyfit.errors import ConfigError
from policyfit.nn.normalization import normalize_observations, stats_from_spec, to_unit_actions

#: The README's per-environment ``alpha``/``beta``/``k`` (``LAMDA-RL/PRDC`` README).
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "halfcheetah": {"alpha": 40.0, "beta": 2.0, "k": 1},
    "hopper": {"alpha": 2.5, "beta": 2.0, "k": 1},
    "walker2d": {"alpha": 2.5, "beta": 2.0, "k": 1},
    "antmaze": {"alpha": 7.5, "beta": 7.5, "k": 1, "reward_scale": 10000.0, "reward_shift": -1.0},
}


@dataclass(frozen=True)
class PRDCConfig(TD3BCConfig):
    alpha: float = 2.5  # lambda = alpha / mean|Q| (README: 2.5 hopper/walker2d, 40 halfcheetah)
    beta: float = 2.0  # weight of the state in the search key (README: 2.0; argparse: 1.0)
    k: int = 1  # the k-th nearest neighbour (official code: kd_tree.query(k=[k]))
    # "device": the exact chunked search inside the jitted update (policyfit.algos.nearest), for
    # accelerators; "kdtree": scipy's cKDTree on the host through jax.pure_callback (the official
    # code's method), also exact and ~40x faster on a CPU at 1M rows (benchmarks/prdc_nn.py);
    # "auto": kdtree on the CPU backend, device otherwise
    search: str = "auto"
    search_chunk: int = 8192  # dataset rows per step of the on-device search (speed only)
    search_candidates: int = 16  # screened candidates per query, re-ranked exactly (speed only)


class PRDCSampler(TransitionSampler):
    """Uniform transitions plus the search table of ``(beta * normalized s, unit a)`` keys.

    ``data`` is ``{"transitions": ..., "table": ...}``; every batch carries the table (a reference
    inside jitted code, not a copy) under ``"nn_table"``.
    """

    def __init__(self, ds: Any, spec: DatasetSpec, config: PRDCConfig, action_scale: dict):
        super().__init__(ds)
        obs = normalize_observations(
            jnp.asarray(ds.observations, jnp.float32),
            stats_from_spec(spec, enabled=config.normalize_observations),
        )
        actions = to_unit_actions(jnp.asarray(ds.actions, jnp.float32), action_scale)
        keys = jnp.concatenate([config.beta * obs, actions], axis=1)
        host_keys = np.asarray(jax.device_get(keys))
        table = build_table(
            host_keys, chunk_size=config.search_chunk, candidates=config.search_candidates
        )
        self.data = {"transitions": self.data, "table": table}
        self.tree = None
        if resolve_search(config.search) == "kdtree":
            from scipy.spatial import cKDTree

            self.tree = cKDTree(host_keys.astype(np.float64))

    def sample(self, data: dict, key: jax.Array, batch_size: int) -> dict[str, Any]:
        batch = super().sample(data["transitions"], key, batch_size)
        return dict(batch, nn_table=data["table"])


def resolve_search(search: str) -> str:
    """``auto`` -> ``kdtree`` on the CPU backend, ``device`` on an accelerator."""
    if search != "auto":
        return search
    return "kdtree" if jax.default_backend() == "cpu" else "device"


@register("prdc")
class PRDC(TD3BC):
    """TD3+BC whose behaviour-cloning target is the nearest dataset pair in (beta s, a) space."""

    Config = PRDCConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if not cfg.beta >= 0.0:
            raise ConfigError(f"must be >= 0, got {cfg.beta}", path=self.name, field="beta")
        if cfg.search not in ("auto", "device", "kdtree"):
            raise ConfigError(
                f"must be 'auto', 'device' or 'kdtree', got {cfg.search!r}",
                path=self.name,
                field="search",
            )
        if cfg.search_chunk < 1:
            raise ConfigError("must be >= 1", path=self.name, field="search_chunk")
        if not 1 <= cfg.k <= cfg.search_candidates:
            raise ConfigError(
                f"must be between 1 and search_candidates={cfg.search_candidates}, got {cfg.k}",
                path=self.name,
                field="k",
            )
        super().setup(spec)

    def make_sampler(self, dataset: Any, spec: DatasetSpec) -> PRDCSampler:
        from policyfit.nn.normalization import action_scale_from_spec

        self.setup(spec)
        if len(dataset) < self.config.k:
            raise ConfigError(
                f"the dataset has {len(dataset)} transitions, fewer than k={self.config.k}",
                path=str(getattr(dataset, "source", "dataset")),
                field="k",
            )
        sampler = PRDCSampler(dataset, spec, self.config, action_scale_from_spec(spec))
        self._tree = sampler.tree  # the host-side index the kdtree search calls back into
        return sampler

    def nearest_actions(
        self, obs: jnp.ndarray, pi: jnp.ndarray, table: dict
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """``(a^ [B, A], fallback)``: the action of the dataset pair nearest (k-th nearest) to
        ``(beta * obs, pi)``; ``obs`` normalized, ``pi`` in ``[-1, 1]``; no gradient."""
        query = jax.lax.stop_gradient(jnp.concatenate([self.config.beta * obs, pi], axis=1))
        if getattr(self, "_tree", None) is not None:  # make_sampler chose the host KD-tree
            idx, fallback = self._kdtree_query(query), jnp.asarray(False)
        else:
            idx, _, fallback = nearest_neighbor(query, table, k=self.config.k)
        return table_rows(table, idx)[:, obs.shape[1] :], fallback

    def _kdtree_query(self, query: jnp.ndarray) -> jnp.ndarray:
        tree = getattr(self, "_tree", None)
        if tree is None:
            raise ConfigError(
                "search='kdtree' needs the index built by PRDC.make_sampler(dataset, spec)",
                path=self.name,
                field="search",
            )
        k = self.config.k

        def host(q):
            _, idx = tree.query(np.asarray(q, dtype=np.float64), k=[k], workers=-1)
            return idx[:, 0].astype(np.int32)

        shape = jax.ShapeDtypeStruct((query.shape[0],), jnp.int32)
        return jax.pure_callback(host, shape, query)

    def actor_loss(self, actor_params, critic_params, obs, table):
        pi = self.actor.apply(actor_params, obs)
        q = self.critic.apply(critic_params, obs, pi)[0]  # Q_1, as prdc.py
        target, fallback = self.nearest_actions(obs, pi, table)
        loss, mse = regularized_actor_loss(q, pi, target, self.config.alpha)
        return loss, (mse, fallback.astype(jnp.float32))

    def actor_inputs(self, obs: jnp.ndarray, actions: jnp.ndarray, batch: dict) -> tuple:
        if "nn_table" not in batch:
            raise ConfigError(
                "the batch has no search table; draw batches from PRDC.make_sampler(dataset, spec)",
                path=self.name,
                field="nn_table",
            )
        return obs, batch["nn_table"]

    def actor_metrics(self, aux) -> dict:
        mse, fallback = aux
        # dc_mse: the actor's distance to its neighbours (the paper's "dataset constraint");
        # search_fallback: share of actor steps whose search needed the direct-distance pass
        return {"dc_mse": mse, "search_fallback": fallback}
