"""A trained policy on disk, and loading it back as a plain ``obs -> action`` function.

Every algorithm keeps three entries in its train state that together are its deterministic policy:
``actor`` (network parameters), ``obs_norm`` (observation mean/std) and ``action_scale`` (map from
``[-1, 1]`` to the action box). :func:`policy_params` picks them out; :func:`save_policy` writes them
as msgpack (``flax.serialization``: arrays and dicts only, no pickle — reading it never runs code)
with a ``policy.json`` that names the algorithm, its config and the dataset spec.

Example:
    >>> policy = load_policy("runs/iql-hopper-medium-s0")     # doctest: +SKIP
    >>> policy(obs)            # [obs_dim] -> [act_dim], or [B, obs_dim] -> [B, act_dim]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.errors import PolicyfitError

POLICY_KEYS = ("actor", "obs_norm", "action_scale")
POLICY_FORMAT = "policyfit-policy/1"
# XLA options that cut compile time several-fold for slower steps: right for tiny runs and tests,
# where compiling dominates. Turned on by fast_compile=True or POLICYFIT_FAST_COMPILE=1.
FAST_COMPILE_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def compiler_options(fast_compile: bool | None = None) -> dict | None:
    """XLA options for ``jax.jit``: :data:`FAST_COMPILE_OPTIONS` when asked, else None."""
    if fast_compile is None:
        fast_compile = os.environ.get("POLICYFIT_FAST_COMPILE", "") not in ("", "0")
    return dict(FAST_COMPILE_OPTIONS) if fast_compile else None


def policy_params(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a train state that ``Algorithm.act`` needs."""
    return {k: state[k] for k in POLICY_KEYS}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to ``path.tmp`` then rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_policy(directory: str | Path, algo: Any, spec: Any, params: dict[str, Any]) -> Path:
    """Write ``params.msgpack`` and ``policy.json`` into ``directory``."""
    import jax
    from flax import serialization

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    host = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
    atomic_write_bytes(directory / "params.msgpack", serialization.msgpack_serialize(host))
    meta = {
        "format": POLICY_FORMAT,
        "algorithm": algo.name,
        "config": algo.config.to_dict(),
        "spec": dataclasses.asdict(spec),
    }
    atomic_write_bytes(directory / "policy.json", json.dumps(meta, indent=2).encode())
    return directory


def _policy_dir(path: str | Path) -> Path:
    path = Path(path)
    for candidate in (path, path / "policy"):
        if (candidate / "policy.json").is_file() and (candidate / "params.msgpack").is_file():
            return candidate
    raise PolicyfitError(
        "no policy found (expected policy/policy.json and policy/params.msgpack); "
        "is this a run directory of `policyfit train`?",
        path=str(path),
        field="policy",
    )


def spec_from_dict(values: dict[str, Any]) -> Any:
    from policyfit.algos.base import DatasetSpec

    names = {f.name for f in dataclasses.fields(DatasetSpec)}
    return DatasetSpec(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    )


def build_algorithm(name: str, config: dict[str, Any], spec: Any) -> Any:
    """An algorithm object with its networks set up (no parameters) from stored JSON."""
    from policyfit.algos.registry import get_algorithm

    cls = get_algorithm(name)
    algo = cls(cls.Config.from_dict(config, algo=name))
    algo.setup(spec)
    return algo


class Policy:
    """A deterministic policy: ``policy(obs) -> action`` with numpy in and out, batched or single."""

    def __init__(self, algo: Any, params: dict[str, Any], spec: Any):
        import jax

        self.algo, self.params, self.spec = algo, params, spec
        self.observation_dim = spec.observation_dim
        self.action_dim = spec.action_dim
        # A forward pass compiles in a fraction of the time at low XLA optimization, and runs
        # about as fast for the small batches a policy sees.
        self._act = jax.jit(lambda p, o: algo.act(p, o), compiler_options=compiler_options(True))

    def __call__(self, obs: Any) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        if obs.shape[-1] != self.observation_dim:
            raise PolicyfitError(
                f"observation has {obs.shape[-1]} dimensions, the policy expects {self.observation_dim}",
                field="obs",
            )
        out = np.asarray(self._act(self.params, obs[None] if single else obs))
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"Policy(algorithm={self.algo.name!r}, obs_dim={self.observation_dim}, act_dim={self.action_dim})"


def load_policy(run_dir: str | Path) -> Policy:
    """Load the policy of a run directory (or of its ``policy/`` folder) as ``obs -> action``.

    Example:
        >>> policy = load_policy("runs/iql-hopper-medium-s0")   # doctest: +SKIP
        >>> policy(np.zeros(11)).shape                         # doctest: +SKIP
        (3,)
    """
    import jax.numpy as jnp
    from flax import serialization

    directory = _policy_dir(run_dir)
    try:
        meta = json.loads((directory / "policy.json").read_text())
        raw = serialization.msgpack_restore((directory / "params.msgpack").read_bytes())
    except (ValueError, OSError) as exc:
        raise PolicyfitError(f"cannot read policy: {exc}", path=str(directory)) from None
    if meta.get("format") != POLICY_FORMAT:
        raise PolicyfitError(
            f"unknown policy format {meta.get('format')!r}; expected {POLICY_FORMAT}",
            path=str(directory / "policy.json"),
            field="format",
        )
    spec = spec_from_dict(meta["spec"])
    algo = build_algorithm(meta["algorithm"], meta["config"], spec)
    import jax

    params = jax.tree_util.tree_map(jnp.asarray, raw)
    return Policy(algo, params, spec)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a run directory (empty dict when absent, e.g. for a bare policy folder)."""
    path = Path(run_dir)
    for candidate in (path / "config.json", path.parent / "config.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except ValueError as exc:
                raise PolicyfitError(f"not valid JSON: {exc}", path=str(candidate)) from None
    return {}
