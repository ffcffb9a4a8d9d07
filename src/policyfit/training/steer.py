"""Steer a trained policy with an offline critic (V-GPS, :mod:`policyfit.algos.vgps`).

:func:`steer` combines the saved policy of one run (any stateless continuous policy; a
stochastic one, since a deterministic policy gives K equal candidates) with the Q function of an
IQL-like run (the target critic of its latest checkpoint: a saved IQL *policy* keeps only the
actor) and writes a run directory whose ``policy/`` is a ``vgps`` policy. That directory is read
like any other: :func:`policyfit.load_policy`, :func:`policyfit.evaluate`, ``policyfit eval``,
``policyfit report``. Its ``config.json`` says what was combined (``steered``) and carries the
base run's dataset section, so evaluation finds the environment and the reference scores.

Example:
    >>> steer("runs/bc-hopper-medium-s0", "runs/iql-hopper-medium-s0",
    ...       "runs/vgps-bc-hopper-medium-s0", k=10)                          # doctest: +SKIP
    PosixPath('runs/vgps-bc-hopper-medium-s0')
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from policyfit.algos.policy import (
    META_FILE,
    PARAMS_FILE,
    build_algorithm,
    is_policy_dir,
    save_policy,
    spec_from_dict,
)
from policyfit.common.versions import library_versions
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.rundir import RUN_FORMAT, RunDir


def _base_policy(path: Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(policy folder, its policy.json, the run's config.json or {}) of a run or policy folder."""
    run = RunDir(path)
    if is_policy_dir(run.policy_dir):
        folder, config = run.policy_dir, run.read_config()
    elif is_policy_dir(path):
        folder, config = path, {}
    else:
        raise PolicyfitError(
            "no policy found (expected policy/policy.json and policy/params.msgpack); "
            "is this a run directory of `policyfit train`?",
            path=str(path),
            field="policy",
        )
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise PolicyfitError(f"cannot read policy: {exc}", path=str(folder / META_FILE)) from None
    return folder, meta, config


def _critic_state(path: Path) -> tuple[dict[str, Any], dict[str, Any], Path, int]:
    """(run config, raw train state of the latest checkpoint, checkpoint folder, its step)."""
    from flax import serialization

    from policyfit.algos.registry import get_algorithm
    from policyfit.algos.vgps import CRITIC_ALGORITHMS
    from policyfit.training.checkpoint import list_checkpoints

    config = RunDir(path).require_training_run(field="critic")
    name = config.get("algorithm", "")
    try:
        canonical = get_algorithm(name).name
    except ConfigError:
        canonical = name
    if canonical not in CRITIC_ALGORITHMS:
        raise PolicyfitError(
            f"is a {name!r} run; V-GPS re-ranks with an IQL-like critic "
            f"({', '.join(CRITIC_ALGORITHMS)}): train one with `policyfit train iql DATASET`",
            path=str(path),
            field="critic",
        )
    found = list_checkpoints(path)
    if not found:
        raise PolicyfitError(
            "has no checkpoint (checkpoints/step_N/state.msgpack); the critic is saved only in "
            "checkpoints (a saved IQL policy keeps the actor): let the critic run finish",
            path=str(path),
            field="critic",
        )
    step, folder = found[-1]
    try:
        raw = serialization.msgpack_restore((folder / "state.msgpack").read_bytes())
    except (OSError, ValueError) as exc:
        raise PolicyfitError(f"cannot read checkpoint: {exc}", path=str(folder)) from None
    missing = [k for k in ("critic_target", "obs_norm", "action_scale") if k not in raw]
    if missing:
        raise PolicyfitError(
            f"checkpoint lacks {', '.join(missing)}; was it written by {canonical}?",
            path=str(folder),
            field="critic",
        )
    return config, raw, folder, step


def steer(
    policy_run: str | Path,
    critic_run: str | Path,
    out: str | Path,
    *,
    k: int = 10,
    temperature: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write a run directory ``out`` whose policy is ``policy_run``'s steered by ``critic_run``.

    Args:
        policy_run: a training run (or a bare ``policy/`` folder) with a stateless continuous
            policy.
        critic_run: an ``iql`` / ``riql`` training run with a checkpoint.
        out: the new run directory (must not hold a run).
        k: candidate actions per observation (V-GPS's K).
        temperature: 0 = act the argmax of Q; > 0 = sample softmax(Q / temperature).
        seed: the internal key of deterministic calls (``key=None``).

    Raises:
        PolicyfitError: a missing policy or checkpoint, a critic run that is not IQL-like, a
            base policy that is already steered, observation or action sizes that differ, an
            ``out`` that already holds a run.
        ConfigError: ``k < 1``, a negative temperature, a discrete or carry-keeping base policy.
    """
    from flax import serialization

    from policyfit.algos.vgps import critic_params_from_state

    policy_run, critic_run, out = Path(policy_run), Path(critic_run), Path(out)
    folder, meta, base_config = _base_policy(policy_run)
    if meta.get("algorithm") == "vgps":
        raise PolicyfitError(
            "is already a steered (vgps) policy; steer its base policy run instead",
            path=str(policy_run),
            field="policy",
        )
    critic_config, raw_state, checkpoint, step = _critic_state(critic_run)
    spec = spec_from_dict(meta["spec"])
    critic_spec = critic_config.get("spec", {})
    for key in ("observation_dim", "action_dim"):
        if critic_spec.get(key) != getattr(spec, key):
            raise PolicyfitError(
                f"the critic's {key} is {critic_spec.get(key)}, the policy's {getattr(spec, key)}; "
                "train the critic on the policy's dataset",
                path=str(critic_run),
                field=key,
            )
    values = {
        "base_algorithm": meta["algorithm"],
        "base_config": meta["config"],
        "critic_algorithm": critic_config["algorithm"],
        "critic_config": critic_config.get("config", {}),
        "k": k,
        "temperature": temperature,
        "seed": seed,
    }
    algo = build_algorithm("vgps", values, spec)
    run = RunDir(out)
    if run.exists() or (run.policy_dir / META_FILE).exists():
        raise PolicyfitError(
            "already holds a run; choose another --out", path=str(out), field="out"
        )
    run.create()
    try:
        base_params = serialization.msgpack_restore((folder / PARAMS_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise PolicyfitError(f"cannot read policy: {exc}", path=str(folder)) from None
    params = {"base": base_params, "critic": critic_params_from_state(raw_state)}
    save_policy(run.policy_dir, algo, spec, params)
    base_ds = base_config.get("dataset", {})
    critic_ds = critic_config.get("dataset", {})
    run.write_config(
        {
            "format": RUN_FORMAT,
            "algorithm": algo.name,
            "config": algo.config.to_dict(),
            "steered": {
                "policy_run": str(policy_run),
                "policy_algorithm": meta["algorithm"],
                "critic_run": str(critic_run),
                "critic_algorithm": critic_config["algorithm"],
                "critic_checkpoint": str(checkpoint),
                "critic_step": step,
                "same_dataset": bool(base_ds)
                and base_ds.get("fingerprint") == critic_ds.get("fingerprint"),
                "k": k,
                "temperature": temperature,
            },
            "seed": base_config.get("seed", seed),
            "steps": 0,
            "dataset": base_ds or critic_ds,
            "spec": meta["spec"],
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    return out
