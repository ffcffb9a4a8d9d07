"""The behavior policies shipped with the package: ``envs/policies/policies.json`` and weights.

:func:`~policyfit.training.behavior_export.export_policies` writes them (SAC actors chosen from
an online training run); the suite's recipes (:mod:`policyfit.envs.suite`) roll them out. The
index holds, per environment, the ``random``/``medium``/``expert`` actors, the ``medium_replay``
snapshots, their measured scores and sha256 digests.

Example:
    >>> import numpy as np
    >>> policy = load_behavior_policy("Hopper-v5", "expert")   # doctest: +SKIP
    >>> policy(np.zeros(11, np.float32)).shape                  # doctest: +SKIP
    (3,)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.envs.registry import get_env_spec
from policyfit.errors import PolicyfitError

POLICIES_DIR = Path(__file__).parent / "policies"
POLICIES_INDEX = POLICIES_DIR / "policies.json"


def policies_index() -> dict[str, Any]:
    """The whole ``policies.json`` (environment id -> entry); empty when nothing is shipped."""
    if not POLICIES_INDEX.exists():
        return {}
    return json.loads(POLICIES_INDEX.read_text())


def policy_entry(env_id: str, required: bool = True) -> dict[str, Any] | None:
    """The index entry of ``env_id`` (``Hopper-v5``); None, or an error when ``required``."""
    entry = policies_index().get(env_id)
    if entry is None and required:
        raise PolicyfitError(
            "no behavior policies are shipped for this environment yet; train them with "
            "`policyfit behavior train ENV` and export with `policyfit behavior export`",
            path=str(POLICIES_INDEX),
            field=env_id,
        )
    return entry


def resolve_policy(env_id: str, kind: str) -> dict[str, Any]:
    """The index record of one shipped policy: ``random``/``medium``/``expert``/``medium-replay-I``."""
    entry = policy_entry(env_id)
    policies = entry["policies"]
    if kind.startswith("medium-replay-") or kind.startswith("medium_replay_"):
        index = int(kind.rsplit("-", 1)[-1].rsplit("_", 1)[-1])
        snaps = entry.get("medium_replay") or []
        if not 0 <= index < len(snaps):
            raise PolicyfitError(
                f"medium-replay snapshot {index} does not exist (have {len(snaps)})",
                path=env_id,
                field="kind",
            )
        return snaps[index]
    if kind not in policies:
        raise PolicyfitError(
            f"unknown behavior policy kind; shipped: {', '.join(policies)}, medium-replay-I",
            path=env_id,
            field="kind",
        )
    return policies[kind]


def load_params(record: dict[str, Any]) -> Any:
    """The actor parameters of an index record, after checking their sha256."""
    import flax.serialization

    path = POLICIES_DIR / record["file"]
    data = path.read_bytes()
    if "sha256" in record and hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise PolicyfitError(
            "weights do not match the sha256 recorded in policies.json",
            path=str(path),
            field="file",
        )
    return flax.serialization.msgpack_restore(data)


@dataclass(frozen=True)
class BehaviorPolicy:
    """A shipped behavior policy: ``policy(obs)`` acts deterministically (``tanh(mean)``),
    ``policy(obs, key)`` samples; ``obs`` is ``[obs_dim]`` or ``[n, obs_dim]``.
    Actions are in ``[-1, 1]``, the action box of all three suite environments.
    """

    env_id: str
    kind: str
    params: Any
    normalized_score: float | None
    return_mean: float | None
    step: int | None
    file: str | None

    def __call__(self, obs: Any, key: Any = None) -> np.ndarray:
        fn = _batched_policy_fns(self.action_dim)
        obs = np.asarray(obs, np.float32)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        out = fn[0](self.params, batch) if key is None else fn[1](self.params, batch, key)
        out = np.asarray(out)
        return out[0] if single else out

    @property
    def action_dim(self) -> int:
        return int(self.params["params"]["Dense_0"]["kernel"].shape[-1])


_POLICY_FN_CACHE: dict[int, tuple[Callable, Callable]] = {}


def _batched_policy_fns(action_dim: int) -> tuple[Callable, Callable]:
    """Jitted batched ``mode(params, obs)`` and ``sample(params, obs, key)`` for an actor."""
    if action_dim not in _POLICY_FN_CACHE:
        import jax

        from policyfit.nn import TanhGaussianPolicy

        actor = TanhGaussianPolicy(action_dim=action_dim)

        @jax.jit
        def mode(params, obs):
            return actor.apply(params, obs).mode()

        @jax.jit
        def sample(params, obs, key):
            return actor.apply(params, obs).sample(key)

        _POLICY_FN_CACHE[action_dim] = (mode, sample)
    return _POLICY_FN_CACHE[action_dim]


def load_behavior_policy(env_id: str, kind: str) -> BehaviorPolicy:
    """Load a shipped behavior policy of ``env_id`` (``Hopper-v5`` or ``hopper``).

    ``kind`` is ``random``, ``medium``, ``expert`` or ``medium-replay-I`` (the I-th snapshot).
    The returned callable needs only numpy and jax.

    Example:
        >>> import numpy as np
        >>> policy = load_behavior_policy("Hopper-v5", "expert")   # doctest: +SKIP
        >>> policy(np.zeros(11, np.float32)).shape                  # doctest: +SKIP
        (3,)
    """
    env_id = get_env_spec(env_id).env_id
    record = resolve_policy(env_id, kind)
    return BehaviorPolicy(
        env_id=env_id,
        kind=kind,
        params=load_params(record),
        normalized_score=record.get("normalized_score"),
        return_mean=record.get("return_mean"),
        step=record.get("step"),
        file=record.get("file"),
    )
