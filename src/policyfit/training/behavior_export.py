"""Export of a behavior-training run: choose snapshots after D4RL's recipe and ship them.

``policyfit behavior export RUN_DIR`` runs :func:`export_policies`: it reads the run's snapshot
index (:func:`read_snapshots`), picks ``random`` / ``medium`` / ``expert`` / ``medium-replay``
(:func:`choose_policies`), re-evaluates the picks on fresh seeds and writes the weights and
``policies.json`` into ``policyfit/envs/policies`` (read by :mod:`policyfit.envs.shipped`).

Example:
    >>> from policyfit.training.behavior_export import export_policies
    >>> export_policies("runs/behavior/Hopper-v5-s0")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax.numpy as jnp
import numpy as np

from policyfit.algos.sac import SAC
from policyfit.common.files import atomic_write_bytes, atomic_write_text, dumps, ensure_dir
from policyfit.common.versions import library_versions
from policyfit.envs.registry import ENVS, make_env, normalized_score
from policyfit.envs.shipped import POLICIES_DIR, POLICIES_INDEX
from policyfit.errors import PolicyfitError
from policyfit.training.behavior import BehaviorConfig, evaluate_actor, make_actor_fns

EXPORT_EVAL_SEED = 2_000_000  # fresh seeds for the scores that ship (not the ones used to choose)


def read_snapshots(run_dir: str | Path) -> list[dict[str, Any]]:
    """The snapshot index of a run (one record per evaluation, in step order)."""
    path = Path(run_dir) / "snapshots" / "index.jsonl"
    if not path.exists():
        raise PolicyfitError(
            "no snapshots yet (has the run reached its first evaluation?)", path=str(path)
        )
    records = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            rec["_dir"] = str(path.parent)  # where the weights file is (not exported)
            records[rec["step"]] = rec  # a resumed run may repeat a step; keep the last
    return [records[k] for k in sorted(records)]


def choose_policies(
    snapshots: list[dict[str, Any]], medium_fraction: float = 1 / 3, n_replay: int = 10
) -> dict[str, Any]:
    """D4RL's recipe on a run's snapshots: ``expert`` = best evaluation; ``medium`` = the snapshot
    before the expert whose return is closest to ``medium_fraction`` of the expert's;
    ``random`` = step 0; ``medium_replay`` = ``n_replay`` snapshots evenly spaced over
    ``[0, medium step)``.

    Example:
        >>> snaps = [{"step": s, "return_mean": r} for s, r in [(0, 5), (10, 300), (20, 900), (30, 1000)]]
        >>> picks = choose_policies(snaps, n_replay=2)
        >>> picks["expert"]["step"], picks["medium"]["step"], [s["step"] for s in picks["medium_replay"]]
        (30, 10, [0])
    """
    expert = max(snapshots, key=lambda r: r["return_mean"])
    random_init = snapshots[0]
    base = random_init["return_mean"]
    target = base + medium_fraction * (expert["return_mean"] - base)
    earlier = _early_snapshots(snapshots, base, expert["return_mean"], medium_fraction) or [expert]
    medium = min(earlier, key=lambda r: abs(r["return_mean"] - target))
    before = [r for r in snapshots if r["step"] < medium["step"]]
    return {
        "random": random_init,
        "medium": medium,
        "expert": expert,
        "medium_replay": _evenly_spaced(before, n_replay),
    }


def _early_snapshots(
    snapshots: list[dict[str, Any]], base: float, expert_return: float, fraction: float
) -> list[dict[str, Any]]:
    """Medium candidates: snapshots before the run first reaches twice the medium target's
    progress (D4RL's medium is early-stopped, not a later collapse of a better policy)."""
    ceiling = base + 2 * fraction * (expert_return - base)
    out = []
    for rec in snapshots:
        if rec["step"] > 0 and rec["return_mean"] >= ceiling:
            break
        if rec["step"] > 0:
            out.append(rec)
    return out


def _evenly_spaced(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """At most ``n`` records spread evenly over the list, first one included."""
    if len(records) <= n:
        return records
    picks = np.unique(np.linspace(0, len(records) - 1, n).round().astype(int))
    return [records[i] for i in picks]


def export_policies(
    run_dir: str | Path,
    dest: str | Path | None = None,
    medium_fraction: float = 1 / 3,
    n_replay: int = 10,
    eval_episodes: int = 10,
    top_k: int = 3,
    replay_from: str | Path | None = None,
) -> dict[str, Any]:
    """Copy a run's chosen snapshots into the package (``envs/policies``) with measured scores.

    The ``top_k`` best snapshots are re-evaluated on fresh seeds (``eval_episodes`` deterministic
    episodes) and the best of them becomes ``expert``; ``medium`` and ``random`` are re-evaluated
    the same way, so the shipped scores are not the (optimistically) selected ones.
    Updates ``policies.json`` for the run's environment and returns its entry.

    ``replay_from`` names a re-run of the same training (same environment, seed and
    hyperparameters, so the same trajectory; checked on the snapshots both runs share) with more
    frequent snapshots; its early snapshots fill in ``medium_replay`` when the main run reached
    the medium policy after only a few snapshots.

    Example:
        >>> export_policies("runs/behavior/Hopper-v5-s0")   # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    dest = Path(dest) if dest is not None else POLICIES_DIR
    config = json.loads((run_dir / "config.json").read_text())
    cfg = BehaviorConfig.from_dict(config["behavior"])
    env_id = cfg.env_id
    short = ENVS[env_id].short_name
    snapshots = read_snapshots(run_dir)

    def load(rec):
        return flax.serialization.msgpack_restore((Path(rec["_dir"]) / rec["file"]).read_bytes())

    env = make_env(env_id)
    act_dim = int(np.prod(env.action_space.shape))
    env.close()
    _, _, mode = make_actor_fns(SAC(cfg.sac), act_dim)
    eval_envs = [make_env(env_id) for _ in range(eval_episodes)]

    def measure(rec) -> dict[str, Any]:
        params = load(rec)
        returns = evaluate_actor(
            env_id,
            lambda o: mode(params, jnp.asarray(o)),
            eval_episodes,
            seed=EXPORT_EVAL_SEED,
            envs=eval_envs,
        )
        return {
            "step": rec["step"],
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "normalized_score": float(normalized_score(env_id, returns.mean())),
            "eval_episodes": eval_episodes,
            "training_eval_return": rec["return_mean"],
        }

    candidates = sorted(snapshots, key=lambda r: -r["return_mean"])[:top_k]
    measured = [(measure(rec), rec) for rec in candidates]
    expert_measured, expert_rec = max(measured, key=lambda m: m[0]["return_mean"])
    eligible = [r for r in snapshots if r["step"] <= expert_rec["step"]]
    picks = choose_policies(eligible, medium_fraction, n_replay)
    picks["expert"] = expert_rec
    # Single evaluations are noisy (Walker2d's std is often 20% of its mean): re-measure the
    # top_k snapshots nearest the medium target and keep the one whose fresh score is nearest.
    base = measure(picks["random"])["return_mean"]
    target = base + medium_fraction * (expert_measured["return_mean"] - base)
    early = _early_snapshots(eligible, base, expert_measured["return_mean"], medium_fraction)
    nearest = sorted(early or [picks["medium"]], key=lambda r: abs(r["return_mean"] - target))[
        :top_k
    ]
    medium_measured, medium_rec = min(
        ((measure(r), r) for r in nearest), key=lambda m: abs(m[0]["return_mean"] - target)
    )
    picks["medium"] = medium_rec
    picks["medium_replay"] = _evenly_spaced(
        [r for r in eligible if r["step"] < medium_rec["step"]], n_replay
    )
    if replay_from is not None:
        early = _same_trajectory_snapshots(run_dir, Path(replay_from), snapshots)
        medium_step = picks["medium"]["step"]
        pool = {r["step"]: r for r in [*snapshots, *early] if r["step"] < medium_step}
        # Snapshots taken during the warm-up equal the step-0 actor (no update has run yet).
        steps = [k for k in sorted(pool) if k == 0 or k > cfg.start_steps]
        picks["medium_replay"] = _evenly_spaced([pool[k] for k in steps], n_replay)
    ensure_dir(dest, "dest")
    for old in dest.glob(f"{short}_*.msgpack"):
        old.unlink()

    shipped: dict[str, str] = {}  # sha256 -> file, so a snapshot used twice is stored once

    def ship(rec, kind: str, measured_rec: dict[str, Any] | None) -> dict[str, Any]:
        data = (Path(rec["_dir"]) / rec["file"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        name = shipped.get(digest) or f"{short}_{kind}.msgpack"
        if digest not in shipped:
            atomic_write_bytes(dest / name, data)
            shipped[digest] = name
        out = measured_rec or {
            "step": rec["step"],
            "return_mean": rec["return_mean"],
            "return_std": rec.get("return_std"),
            "normalized_score": float(normalized_score(env_id, rec["return_mean"])),
            "eval_episodes": len(rec.get("returns", [])),
            "training_eval_return": rec["return_mean"],
        }
        return {"file": name, "sha256": digest, **out}

    policies = {
        "random": ship(picks["random"], "random", measure(picks["random"])),
        "medium": ship(picks["medium"], "medium", medium_measured),
        "expert": ship(expert_rec, "expert", expert_measured),
    }
    replay = [
        ship(rec, f"medium_replay_{i:02d}", None) for i, rec in enumerate(picks["medium_replay"])
    ]
    entry = {
        "env_id": env_id,
        "hidden_dims": list(cfg.sac.hidden_dims),
        "policies": policies,
        "medium_replay": replay,
        "medium_replay_size": int(picks["medium"]["step"]),
        "start_steps": cfg.start_steps,
        "training": {
            "algorithm": "sac",
            "seed": cfg.seed,
            "steps_trained": int(snapshots[-1]["step"]),
            "snapshots": len(snapshots),
            "wall_time_s": snapshots[-1].get("wall_time"),
            "sac": cfg.sac.to_dict(),
            "command": f"policyfit behavior train {env_id} --steps {cfg.steps} --seed {cfg.seed}",
            "versions": config.get("versions") or library_versions(),
        },
        "score_protocol": (
            f"deterministic policy (tanh of the mean), {eval_episodes} episodes, reset seeds "
            f"{EXPORT_EVAL_SEED}..{EXPORT_EVAL_SEED + eval_episodes - 1}; D4RL normalization"
        ),
    }
    index_path = dest / POLICIES_INDEX.name
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[env_id] = entry
    atomic_write_text(index_path, dumps(dict(sorted(index.items())), indent=1) + "\n")
    return entry


def _same_trajectory_snapshots(
    run_dir: Path, other: Path, snapshots: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Snapshots of ``other`` after checking it retraced ``run_dir``'s training exactly."""
    mine = json.loads((run_dir / "config.json").read_text())["behavior"]
    theirs = json.loads((other / "config.json").read_text())["behavior"]
    keys = ("env_id", "seed", "start_steps", "chunk", "sac", "buffer_capacity")
    if any(mine.get(k) != theirs.get(k) for k in keys):
        raise PolicyfitError(
            f"not a re-run of {run_dir}: {', '.join(keys)} must match", path=str(other)
        )
    extra = read_snapshots(other)
    by_step = {r["step"]: r for r in snapshots}
    shared = [r for r in extra if r["step"] in by_step and r["step"] > 0]
    if not shared:
        raise PolicyfitError(f"shares no snapshot step with {run_dir}", path=str(other))
    for rec in shared:
        a = (Path(rec["_dir"]) / rec["file"]).read_bytes()
        b = (Path(by_step[rec["step"]]["_dir"]) / by_step[rec["step"]]["file"]).read_bytes()
        if a != b:
            raise PolicyfitError(
                f"snapshot at step {rec['step']} differs from {run_dir}'s: not the same trajectory",
                path=str(other),
            )
    return extra
