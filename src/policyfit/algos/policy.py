"""A trained policy: its parameters on disk, and the carry-aware object that acts with them.

A saved policy is a folder with ``params.msgpack`` (``Algorithm.policy_params`` of the train state,
written with ``flax.serialization``: arrays and dicts only, no pickle — reading it never runs code)
and ``policy.json`` (the algorithm's name, its config and the dataset spec).
:func:`read_policy` turns such a folder into a :class:`Policy`; :func:`policyfit.load_policy`
also accepts a run directory (see :mod:`policyfit.training.rundir`).

Every policy has the carry-aware call of the algorithm contract, with numpy in and out::

    carry = policy.initial_carry(batch_size)
    actions, carry = policy.act(obs, carry)            # obs [B, obs_dim]
    carry = policy.observe_reward(carry, rewards)      # rewards [B], after the env step

A stateless policy (BC, IQL, ...) has an empty carry and can also be called directly,
``policy(obs) -> actions``, on one observation or a batch.

Example:
    >>> policy = read_policy("runs/iql-hopper-medium-s0/policy")   # doctest: +SKIP
    >>> policy(np.zeros(11)).shape                                 # doctest: +SKIP
    (3,)
    >>> rvs = read_policy("runs/rvs_r-hopper-medium-s0/policy", target_return=3000)  # doctest: +SKIP
    >>> carry = rvs.initial_carry(1)                               # doctest: +SKIP
    >>> action, carry = rvs.act(np.zeros((1, 11)), carry)          # doctest: +SKIP
    >>> carry = rvs.observe_reward(carry, np.array([3.2]))         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.algos.base import Algorithm, DatasetSpec
from policyfit.common.files import atomic_write_bytes, write_json
from policyfit.common.xla import compiler_options
from policyfit.errors import PolicyfitError

POLICY_FORMAT = "policyfit-policy/1"
PARAMS_FILE = "params.msgpack"
META_FILE = "policy.json"


def spec_from_dict(values: dict[str, Any]) -> DatasetSpec:
    """A :class:`DatasetSpec` from its JSON form (unknown keys ignored, lists -> tuples)."""
    names = {f.name for f in dataclasses.fields(DatasetSpec)}
    return DatasetSpec(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    )


def save_policy(directory: str | Path, algo: Algorithm, spec: DatasetSpec, params: Any) -> Path:
    """Write ``params.msgpack`` and ``policy.json`` into ``directory``."""
    import jax
    from flax import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    host = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
    atomic_write_bytes(directory / PARAMS_FILE, serialization.msgpack_serialize(host))
    meta = {
        "format": POLICY_FORMAT,
        "algorithm": algo.name,
        "config": algo.config.to_dict(),
        "spec": dataclasses.asdict(spec),
        "action_space": "discrete" if spec.discrete else "continuous",
        "stateful": has_carry(algo),
    }
    write_json(directory / META_FILE, meta)
    return directory


def has_carry(algo: Algorithm) -> bool:
    """Whether the algorithm's policy keeps a memory between steps (its carry has any arrays)."""
    import jax

    return len(jax.tree_util.tree_leaves(algo.initial_carry(1))) > 0


def is_policy_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / META_FILE).is_file() and (path / PARAMS_FILE).is_file()


def build_algorithm(
    name: str, config: dict[str, Any], spec: DatasetSpec, overrides: dict[str, Any] | None = None
) -> Algorithm:
    """An algorithm object with its networks set up (no parameters) from stored JSON."""
    from policyfit.algos.registry import get_algorithm

    cls = get_algorithm(name)
    values = {**config, **(overrides or {})}
    algo = cls(cls.Config.from_dict(values, algo=name))
    algo.setup(spec)
    return algo


class Policy:
    """A learned policy with the carry-aware call; numpy in, numpy out (see the module docstring).

    ``params`` are the algorithm's policy parameters; jitted functions are built once per object
    and reused when :attr:`params` is replaced (the trainer evaluates this way).
    """

    def __init__(self, algo: Algorithm, params: Any, spec: DatasetSpec):
        import jax

        self.algo, self.params, self.spec = algo, params, spec
        self.observation_dim = spec.observation_dim
        self.action_dim = spec.action_dim
        self.discrete = spec.discrete
        # A forward pass compiles in a fraction of the time at low XLA optimization, and runs
        # about as fast for the small batches a policy sees.
        options = compiler_options(True)
        self._act = jax.jit(algo.act, compiler_options=options)
        self._observe = jax.jit(algo.observe_reward, compiler_options=options)
        self.stateful = has_carry(algo)

    @property
    def name(self) -> str:
        return self.algo.name

    def _check(self, obs: np.ndarray) -> None:
        if obs.shape[-1:] != (self.observation_dim,):
            raise PolicyfitError(
                f"observation has {obs.shape[-1] if obs.ndim else 0} dimensions, the policy "
                f"expects {self.observation_dim}",
                field="obs",
            )
        if obs.ndim != 2:
            raise PolicyfitError(
                f"observations of shape {obs.shape}; act expects a batch [B, {self.observation_dim}]",
                field="obs",
            )

    def initial_carry(self, batch_size: int = 1) -> Any:
        """The carry at the start of ``batch_size`` episodes (``()`` for stateless policies), as
        numpy arrays like everything else this class returns."""
        import jax

        return jax.tree_util.tree_map(np.asarray, self.algo.initial_carry(batch_size))

    def act(self, obs: Any, carry: Any, key: Any = None) -> tuple[np.ndarray, Any]:
        """Actions for ``obs [B, obs_dim]`` and the next carry; ``key`` samples instead of the mode."""
        import jax

        obs = np.asarray(obs, dtype=np.float32)
        self._check(obs)
        actions, carry = self._act(self.params, obs, carry, key)
        return np.asarray(actions), jax.tree_util.tree_map(np.asarray, carry)

    def observe_reward(self, carry: Any, reward: Any) -> Any:
        """The carry after the environment paid ``reward`` ``[B]`` for the last actions."""
        import jax

        if not self.stateful:
            return carry
        out = self._observe(carry, np.asarray(reward, dtype=np.float32))
        return jax.tree_util.tree_map(np.asarray, out)

    def __call__(self, obs: Any) -> np.ndarray:
        """``obs -> action`` for stateless policies, on one observation or a batch."""
        if self.stateful:
            raise PolicyfitError(
                f"{self.name} keeps a carry between steps (e.g. its remaining return target); "
                "call policy.act(obs, carry) with carry = policy.initial_carry(batch_size), and "
                "policy.observe_reward(carry, reward) after each step",
                field="policy",
            )
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        actions, _ = self.act(obs[None] if single else obs, ())
        return actions[0] if single else actions

    def __repr__(self) -> str:
        kind = "discrete" if self.discrete else "continuous"
        return (
            f"Policy(algorithm={self.name!r}, obs_dim={self.observation_dim}, "
            f"act_dim={self.action_dim}, {kind}{', stateful' if self.stateful else ''})"
        )


def read_policy(directory: str | Path, **overrides: Any) -> Policy:
    """The :class:`Policy` saved in ``directory`` (``policy.json`` + ``params.msgpack``).

    ``overrides`` replace config fields that matter when acting, e.g. RvS-R's ``target_return``.
    """
    import jax
    import jax.numpy as jnp
    from flax import serialization

    directory = Path(directory)
    if not is_policy_dir(directory):
        raise PolicyfitError(
            f"no policy found (expected {META_FILE} and {PARAMS_FILE})",
            path=str(directory),
            field="policy",
        )
    try:
        meta = json.loads((directory / META_FILE).read_text())
        raw = serialization.msgpack_restore((directory / PARAMS_FILE).read_bytes())
    except (ValueError, OSError) as exc:
        raise PolicyfitError(f"cannot read policy: {exc}", path=str(directory)) from None
    if meta.get("format") != POLICY_FORMAT:
        raise PolicyfitError(
            f"unknown policy format {meta.get('format')!r}; expected {POLICY_FORMAT}",
            path=str(directory / META_FILE),
            field="format",
        )
    spec = spec_from_dict(meta["spec"])
    algo = build_algorithm(meta["algorithm"], meta["config"], spec, overrides)
    return Policy(algo, jax.tree_util.tree_map(jnp.asarray, raw), spec)
