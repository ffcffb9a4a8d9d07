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
* ``kdtree``: scipy's ``cKDTree`` through ``jax.pure_callback``, on all cores. (Pruning each
  query by its own dataset pair, whose distance bounds the nearest one, was measured in
  ``benchmarks/prdc_nn.py`` and did not pay: no faster far from the data, slower near it.)
* ``hybrid`` (``auto`` on a CPU): per actor step, the KD-tree when the batch's mean
  ``|pi(s) - a|`` is at most ``search_switch``, else the device search (``lax.cond``).

The cost depends on where the actor is. ``benchmarks/prdc_nn.py`` on ``halfcheetah-medium`` (1M
keys of 23 dimensions, batch 256, Intel Xeon, 2 cores): the KD-tree takes about 7 ms per query
batch when ``pi(s)`` is near the data's actions (PRDC ~1.4x a TD3+BC update), but 0.5-3 s
when the actions lie far from them (a young actor; halfcheetah's ``alpha = 40`` actor at the
box's corners): the tree then visits most of its nodes. The brute force costs about the same
everywhere (12 GFLOP per batch, 0.42-0.45 s on 2 cores with ``k = 1``'s band screen), so
``hybrid`` takes it past ``search_switch``, where it is the cheaper one. The table lives in the
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
    # code's method), also exact and ~100x faster on a CPU at 1M rows near the data
    # (benchmarks/prdc_nn.py); "hybrid": per batch, kdtree near the data and device far from it
    # (where the tree visits most of its nodes); "auto": hybrid on the CPU backend, else device
    search: str = "auto"
    # hybrid only: the batch's mean |pi(s) - a| (distance to its own pairs, an upper bound of the
    # nearest one) above which the device search runs. benchmarks/prdc_nn.py (2-core Xeon, 1M
    # keys): the tree takes 5 ms at 0.2, 63 ms at 0.8 and 0.6 s at 2.1, the device search
    # 0.42-0.45 s at any distance; they cross near 1.9 (smaller tables cross lower). Speed only:
    # both searches are exact
    search_switch: float = 2.0
    search_chunk: int = 1024  # dataset rows per step of the on-device search (speed only)
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
        if resolve_search(config.search) in ("kdtree", "hybrid"):
            from scipy.spatial import cKDTree

            self.tree = cKDTree(host_keys.astype(np.float64))

    def sample(self, data: dict, key: jax.Array, batch_size: int) -> dict[str, Any]:
        batch = super().sample(data["transitions"], key, batch_size)
        return dict(batch, nn_table=data["table"])


def resolve_search(search: str) -> str:
    """``auto`` -> ``hybrid`` on the CPU backend, ``device`` on an accelerator."""
    if search != "auto":
        return search
    return "hybrid" if jax.default_backend() == "cpu" else "device"


@register("prdc")
class PRDC(TD3BC):
    """TD3+BC whose behaviour-cloning target is the nearest dataset pair in (beta s, a) space."""

    Config = PRDCConfig

    def setup(self, spec: DatasetSpec) -> None:
        cfg = self.config
        if not cfg.beta >= 0.0:
            raise ConfigError(f"must be >= 0, got {cfg.beta}", path=self.name, field="beta")
        if cfg.search not in ("auto", "device", "kdtree", "hybrid"):
            raise ConfigError(
                f"must be 'auto', 'device', 'kdtree' or 'hybrid', got {cfg.search!r}",
                path=self.name,
                field="search",
            )
        if not cfg.search_switch >= 0.0:
            raise ConfigError(
                f"must be >= 0, got {cfg.search_switch}", path=self.name, field="search_switch"
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
        self, obs: jnp.ndarray, pi: jnp.ndarray, table: dict, actions: jnp.ndarray | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """``(a^ [B, A], fallback, device)``: the action of the dataset pair nearest (k-th
        nearest) to ``(beta * obs, pi)``; ``obs`` normalized, ``pi`` and ``actions`` (the batch's
        own, which only pick the hybrid search's path) in ``[-1, 1]``; no gradient. ``device``
        says the on-device search ran, ``fallback`` that it needed its direct-distance pass."""
        query = jax.lax.stop_gradient(jnp.concatenate([self.config.beta * obs, pi], axis=1))
        search = resolve_search(self.config.search)
        if getattr(self, "_tree", None) is None:  # no host index: the on-device search
            search = "device"
        elif search == "hybrid" and actions is None:
            search = "kdtree"

        def on_device(q):
            idx, _, fallback = nearest_neighbor(q, table, k=self.config.k)
            return idx, fallback, jnp.asarray(True)

        def on_host(q):
            return self._kdtree_query(q), jnp.asarray(False), jnp.asarray(False)

        if search == "device":
            idx, fallback, device = on_device(query)
        elif search == "kdtree":
            idx, fallback, device = on_host(query)
        else:  # hybrid: the tree near the data, the brute force far from it
            own = jnp.linalg.norm(jax.lax.stop_gradient(pi) - actions, axis=1).mean()
            idx, fallback, device = jax.lax.cond(
                own > self.config.search_switch, on_device, on_host, query
            )
        return table_rows(table, idx)[:, obs.shape[1] :], fallback, device

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

    def actor_loss(self, actor_params, critic_params, obs, table, actions=None):
        pi = self.actor.apply(actor_params, obs)
        q = self.critic.apply(critic_params, obs, pi)[0]  # Q_1, as prdc.py
        target, fallback, device = self.nearest_actions(obs, pi, table, actions)
        loss, mse = regularized_actor_loss(q, pi, target, self.config.alpha)
        return loss, (mse, fallback.astype(jnp.float32), device.astype(jnp.float32))

    def actor_inputs(self, obs: jnp.ndarray, actions: jnp.ndarray, batch: dict) -> tuple:
        if "nn_table" not in batch:
            raise ConfigError(
                "the batch has no search table; draw batches from PRDC.make_sampler(dataset, spec)",
                path=self.name,
                field="nn_table",
            )
        return obs, batch["nn_table"], actions

    def actor_metrics(self, aux) -> dict:
        mse, fallback, device = aux
        # dc_mse: the actor's distance to its neighbours (the paper's "dataset constraint");
        # search_fallback: share of actor steps whose search needed the direct-distance pass;
        # search_device: share of actor steps searched on the device (hybrid: far from the data)
        return {"dc_mse": mse, "search_fallback": fallback, "search_device": device}
