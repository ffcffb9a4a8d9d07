"""The discrete dataset suite of Schweighofer et al. (2022), rebuilt locally from shipped DQN runs.

Names ``{env}-{random,mixed,replay,noisy,expert}`` for the environments of
:data:`policyfit.envs.jaxenv.DISCRETE_ENVS` (classic control: cartpole, acrobot, mountaincar;
MinAtar: breakout, asterix, freeway, spaceinvaders, seaquest). Each name is a *recipe* over one
online DQN run per environment whose parameter snapshots ship in the package
(:mod:`policyfit.envs.dqn_behavior`, trained by ``policyfit behavior dqn``). The first
:func:`make_dataset` call rolls the recipe out in jitted, vectorized gymnax environments and writes
a Minari dataset under ``$POLICYFIT_HOME/datasets``; later calls read the cache. Same name, size and
seed give the identical dataset.

The paper's five recipes (ml-jku/OfflineRL, ``source/train_online.py``), ``N`` transitions each:

===========  ==================================================================================
``random``   the uniformly random policy
``expert``   the online run's final policy, greedy (the paper's "fully" buffer)
``noisy``    the final policy, epsilon-greedy with epsilon 0.2
``mixed``    ``0.8 N`` transitions of ``random`` then ``0.2 N`` of ``expert`` (``buffer.mix``)
``replay``   every transition of the online run (the paper's "er" buffer). Here: the run replayed
             from its shipped snapshots (see :data:`DIFFERENCES_FROM_PAPER`)
===========  ==================================================================================

Normalization follows the paper's plots (``source/plotting/create_plots.py``): ``ref_min_score``
is the random policy's mean return, ``ref_max_score`` the online run's best greedy evaluation
(both measured in the run, recorded in the shipped index), so TQ and the normalized score use the
paper's scale. SACo's reference is the same environment's ``replay`` dataset (same size and seed):
``{env}-replay`` has SACo 1 by definition (:func:`reference_for`).

Example:
    >>> from policyfit.envs.discrete_suite import parse_name, list_datasets
    >>> spec, kind = parse_name("cartpole-replay")
    >>> spec.gymnax_id, kind
    ('CartPole-v1', 'replay')
    >>> [row["name"] for row in list_datasets()][:2]
    ['cartpole-random', 'cartpole-mixed']
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.progress import ProgressBar
from policyfit.common.versions import library_versions
from policyfit.data.dataset import Dataset
from policyfit.data.io import load_dataset, read_minari, save_dataset
from policyfit.data.spaces import box_space, discrete_space
from policyfit.envs import dqn_behavior, jaxenv
from policyfit.envs.jaxenv import DISCRETE_ENVS, DiscreteEnvSpec
from policyfit.errors import PolicyfitError
from policyfit.paths import datasets_dir

KINDS = ("random", "mixed", "replay", "noisy", "expert")
NAMES: tuple[str, ...] = tuple(f"{key}-{kind}" for key in DISCRETE_ENVS for kind in KINDS)
RECIPE_VERSION = 1  # bump when generation changes in a way that changes the arrays
NOISY_EPSILON = 0.2  # train_online.py: agent.eval_eps = 0.2
MIXED_RANDOM_SHARE = 0.8  # train_online.py: random_buffer.mix(final_policy_buffer, p_orig=0.8)

RECIPES = {
    "random": "the uniformly random policy",
    "expert": "the online DQN run's final policy, greedy",
    "noisy": f"the online DQN run's final policy, epsilon-greedy with epsilon {NOISY_EPSILON}",
    "mixed": (
        f"{MIXED_RANDOM_SHARE:.0%} transitions of the random policy, then "
        f"{1 - MIXED_RANDOM_SHARE:.0%} of the final greedy policy"
    ),
    "replay": (
        "the online DQN run replayed: each shipped snapshot acts epsilon-greedily (the run's "
        "schedule) for the stretch of training it started, in training order"
    ),
}

DIFFERENCES_FROM_PAPER = [
    "environments are the gymnax JAX ports (classic control; MinAtar without sticky actions, "
    "minimal action sets, episodes capped as gymnax caps them); evaluation uses gymnasium's "
    "classic control and the reference minatar package with the same settings. MinAtar's "
    "default repeats the last action with probability 0.1; without it SpaceInvaders is "
    "deterministic and a greedy policy's episodes are all the same",
    "replay regenerates the online run from its parameter snapshots (taken every tenth of the "
    "run) instead of storing it: within a stretch one snapshot acts instead of a policy that "
    "changes every update; the first stretch acts uniformly at random for the warm-up and with "
    "the mean epsilon of the decay (0.505) for the 1,000 decay updates",
    "each recipe runs in parallel lanes; every episode is whole except the dataset's last, which "
    "is cut at the requested size and marked as a timeout",
    "the behavior network is 2x128 ReLU (the paper: 3x256 SELU), so the weights ship small",
    "timeouts are stored apart from terminals (the paper stores gym's done for both)",
]


# ---------------------------------------------------------------------------------- names
def is_discrete_name(name: Any) -> bool:
    """True for the built-in discrete names (``cartpole-replay``, ...), case-insensitive.

    Example:
        >>> is_discrete_name("Breakout-Noisy"), is_discrete_name("cartpole-medium")
        (True, False)
    """
    return isinstance(name, str) and name.strip().lower() in NAMES


def parse_name(name: str) -> tuple[DiscreteEnvSpec, str]:
    """``"cartpole-replay"`` -> ``(DISCRETE_ENVS["cartpole"], "replay")``."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in NAMES:
        raise PolicyfitError(
            f"not a built-in discrete dataset; names are {{env}}-{{{','.join(KINDS)}}} with env "
            f"one of {', '.join(DISCRETE_ENVS)}",
            path=str(name),
            field="name",
        )
    env, kind = key.split("-", 1)
    return DISCRETE_ENVS[env], kind


def default_size(name: str) -> int:
    """The paper's dataset size for classic control (100,000, the online run's length); for
    MinAtar 1,000,000 (the paper's runs and datasets have 2,000,000)."""
    return parse_name(name)[0].default_size


# ---------------------------------------------------------------------------------- recipes
def _sub_seed(seed: int, part: int) -> int:
    return int(np.random.SeedSequence([seed, 104_729, part]).generate_state(1)[0] % (2**31))


def _split(n: int, shares: list[float]) -> list[int]:
    """``n`` split by ``shares`` (floors, the remainder to the last part)."""
    out = [int(n * s) for s in shares[:-1]]
    return [*out, n - sum(out)]


def _replay_plan(record: dict[str, Any], size: int) -> list[tuple[str, int, float, int]]:
    """``(label, snapshot index, epsilon, transitions)`` in training order.

    Step ``t`` of the online run acts with the latest snapshot at or before ``t``; epsilon is 1
    for the warm-up (no update yet), decays linearly to its end value over the first
    ``decay_updates`` updates (here: their mean) and stays there. A ``size`` other than the
    run's length scales every stretch proportionally.
    """
    steps = [int(s) for s in record["snapshot_steps"]]
    total = int(record["online_steps"])
    sched = record["epsilon"]
    warmup, decay = int(sched["warmup"]), int(sched["decay_updates"])
    end_eps = float(sched["end"])
    spans: list[tuple[str, int, float, int]] = [
        ("warm-up (uniform)", 0, 1.0, warmup),
        ("epsilon decay", 0, (float(sched["start"]) + end_eps) / 2, decay),
    ]
    bounds = [*steps[: len(steps) - 1], total]  # snapshot k acts from steps[k] to steps[k+1]
    for k in range(len(bounds) - 1):
        start = max(bounds[k], warmup + decay)
        if bounds[k + 1] > start:
            spans.append((f"snapshot {k} (step {steps[k]})", k, end_eps, bounds[k + 1] - start))
    sizes = _split(size, [n / total for *_, n in spans])
    return [(label, k, eps, n) for (label, k, eps, _), n in zip(spans, sizes, strict=True) if n]


def _plan(spec: DiscreteEnvSpec, kind: str, size: int) -> list[tuple[str, int | None, float, int]]:
    """``(label, snapshot index or None for uniform, epsilon, transitions)`` of one recipe."""
    if kind == "random":
        return [("uniform random", None, 1.0, size)]
    record = dqn_behavior.behavior_record(spec.key)
    final = int(record["snapshots"])
    if kind == "expert":
        return [("final policy, greedy", final, 0.0, size)]
    if kind == "noisy":
        return [(f"final policy, epsilon {NOISY_EPSILON}", final, NOISY_EPSILON, size)]
    if kind == "mixed":
        n_random, n_expert = _split(size, [MIXED_RANDOM_SHARE, 1 - MIXED_RANDOM_SHARE])
        return [
            ("uniform random", None, 1.0, n_random),
            ("final policy, greedy", final, 0.0, n_expert),
        ]
    return list(_replay_plan(record, size))


@cache
def _recipe_act(key: str) -> jaxenv.ActFn:
    """Every recipe's policy as one :data:`~policyfit.envs.jaxenv.ActFn` over ``params =
    (snapshot, epsilon)``: epsilon-greedy on the snapshot's Q-values, epsilon traced, so that all
    parts of all recipes of an environment share compiled collectors (uniform = epsilon 1)."""
    record = dqn_behavior.behavior_record(key)
    net = dqn_behavior.q_network(int(record["n_actions"]), tuple(record["hidden_dims"]))

    def act(params, obs, rng):
        snapshot, epsilon = params
        return dqn_behavior.epsilon_greedy(net.apply(snapshot, obs), epsilon, rng)

    return act


def generate_arrays(
    name: str, size: int | None = None, seed: int = 0, progress: bool = True
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Roll out the recipe of ``name``: the six dataset arrays and a description of the parts."""
    spec, kind = parse_name(name)
    size = default_size(name) if size is None else int(size)
    if size < 1:
        raise PolicyfitError("size must be at least 1", path=name, field="size")
    plan = _plan(spec, kind, size)
    snapshots = dqn_behavior.load_snapshots(spec.key)
    act = _recipe_act(spec.key)
    arrays, parts = [], []
    with ProgressBar(f"building {name}", size, enabled=progress) as bar:
        for i, (label, k, eps, n) in enumerate(plan):
            params = (snapshots[0 if k is None else k], np.float32(eps))
            part_seed = seed if len(plan) == 1 else _sub_seed(seed, i)
            arrays.append(jaxenv.collect(spec.key, act, params, n, part_seed))
            parts.append({"policy": label, "snapshot": k, "epsilon": eps, "transitions": n})
            bar.advance(n)
    return {f: np.concatenate([a[f] for a in arrays]) for f in arrays[0]}, parts


# ---------------------------------------------------------------------------------- datasets
def minari_dataset_id(name: str, size: int, seed: int) -> str:
    """``policyfit/<name>-v0`` (``<name>-n<size>-s<seed>-v0`` when not the defaults).

    Example:
        >>> minari_dataset_id("cartpole-noisy", 5_000, 1)
        'policyfit/cartpole-noisy-n5000-s1-v0'
    """
    key = name if (size == default_size(name) and seed == 0) else f"{name}-n{size}-s{seed}"
    return f"policyfit/{key}-v0"


def _cache_path(name: str, size: int, seed: int) -> Path:
    return datasets_dir() / minari_dataset_id(name, size, seed)


def _digest(spec: DiscreteEnvSpec, kind: str) -> str:
    """Hash of the recipe version and the shipped weights (cache invalidation)."""
    h = hashlib.sha256(f"discrete-recipe-v{RECIPE_VERSION}-{spec.key}".encode())
    if kind != "random":
        h.update(str(dqn_behavior.behavior_record(spec.key)["sha256"]).encode())
    return h.hexdigest()[:16]


def _references(spec: DiscreteEnvSpec) -> tuple[float, float]:
    record = dqn_behavior.behavior_record(spec.key)
    return float(record["random_return"]), float(record["online_best_return"])


def _observation_space(spec: DiscreteEnvSpec) -> dict[str, Any]:
    if spec.minatar:
        return box_space(np.full(spec.obs_dim, -0.5), np.full(spec.obs_dim, 0.5))
    env, env_params = jaxenv.make_gymnax(spec.key)
    space = env.observation_space(env_params)
    return box_space(np.asarray(space.low), np.asarray(space.high))


def _card(name, spec, kind, size, seed, parts) -> dict[str, Any]:
    record = dqn_behavior.behavior_record(spec.key)
    command = f"policyfit data make {name}"
    if size != default_size(name):
        command += f" --size {size}"
    if seed:
        command += f" --seed {seed}"
    return {
        "name": name,
        "env": spec.env_id,
        "gymnax_env": spec.gymnax_id,
        "behavior": RECIPES[kind],
        "recipe": RECIPES[kind],
        "parts": parts,
        "size": size,
        "seed": seed,
        "discount": spec.discount,
        "max_episode_steps": spec.max_episode_steps,
        "online_run": {
            k: record.get(k)
            for k in (
                "online_steps",
                "seed",
                "online_best_return",
                "final_greedy_return",
                "random_return",
                "hidden_dims",
                "snapshot_steps",
            )
        },
        "references": (
            "ref_min_score: the random policy's mean return; ref_max_score: the online run's best "
            "greedy evaluation (Schweighofer et al. 2022, create_plots.py)"
        ),
        "generating_command": command,
        "library_versions": library_versions(),
        "policy_digest": _digest(spec, kind),
        "recipe_version": RECIPE_VERSION,
        "differences_from_paper": DIFFERENCES_FROM_PAPER,
        "description": f"policyfit built-in discrete dataset {name}: {RECIPES[kind]}",
    }


def _data_returns(ds: Dataset) -> dict[str, Any]:
    """Returns of the dataset's complete episodes (the cut last one left out), for the card."""
    returns = ds.episode_returns()
    if bool(ds.timeouts[-1]) and len(returns) > 1:
        returns = returns[:-1]
    norm = np.asarray(ds.normalized_score(returns), dtype=np.float64)
    return {
        "episodes": int(len(returns)),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "normalized_mean": float(norm.mean()),
    }


def make_dataset(
    name: str,
    size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = True,
) -> Dataset:
    """Build (first call) or load (later calls) the built-in discrete dataset ``name``.

    Written as a Minari dataset under ``$POLICYFIT_HOME/datasets/policyfit/<name>-v0`` (see
    :func:`minari_dataset_id`) or at ``out``; rebuilt when the shipped weights change.

    Example:
        >>> ds = make_dataset("cartpole-noisy", size=2_000, progress=False)
        >>> ds.discrete, ds.env_id, len(ds)
        (True, 'CartPole-v1', 2000)
    """
    name = name.strip().lower()
    spec, kind = parse_name(name)
    size = default_size(name) if size is None else int(size)
    path = Path(out) if out is not None else _cache_path(name, size, seed)
    if out is None and _cache_is_valid(path, spec, kind):
        return read_minari(path)
    arrays, parts = generate_arrays(name, size, seed, progress)
    ref_min, ref_max = _references(spec)
    metadata = {
        "env_id": spec.env_id,
        "observation_space": _observation_space(spec),
        "action_space": discrete_space(spec.n_actions),
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "behavior": kind,
        "suite_name": name,
        "card": _card(name, spec, kind, size, seed, parts),
    }
    ds = Dataset(**arrays, metadata=metadata, source=name)
    ds.metadata["card"]["data_returns"] = _data_returns(ds)
    jaxenv.register_envs()
    # the cache is a Minari dataset; --out follows its suffix (.hdf5/.h5, .npz, else Minari)
    fmt = "minari" if out is None else None
    save_dataset(ds, path, format=fmt, dataset_id=minari_dataset_id(name, size, seed))
    return load_dataset(path)


def reference_for(dataset: Dataset) -> tuple[str, int, int]:
    """``(name, size, seed)`` of SACo's reference for a discrete-suite dataset: the same
    environment's ``replay`` with the same size and seed (the paper's normalization)."""
    card = dataset.metadata.get("card") or {}
    name = str(dataset.metadata.get("suite_name", ""))
    if not is_discrete_name(name):
        raise LookupError(f"{dataset.source} is not a built-in discrete dataset")
    spec, _ = parse_name(name)
    return f"{spec.key}-replay", int(card.get("size", len(dataset))), int(card.get("seed", 0))


def _cache_is_valid(path: Path, spec: DiscreteEnvSpec, kind: str) -> bool:
    meta_file = path / "data" / "metadata.json"
    try:
        return meta_file.is_file() and _digest(spec, kind) in meta_file.read_text()
    except (OSError, PolicyfitError):
        return False


def _list_score(record: dict[str, Any], kind: str) -> Any:
    """The behavior's normalized score for ``data list`` (the paper's scale: random 0, the run's
    best evaluation 100): random 0; expert the final greedy policy (100 episodes); mixed both
    parts; replay the run's first and last greedy evaluation; noisy not measured (None; the
    data's own score is in its card once built)."""
    ref_min, ref_max = float(record["random_return"]), float(record["online_best_return"])

    def norm(value: Any) -> float | None:
        if value is None or ref_max == ref_min:
            return None
        return round(100 * (float(value) - ref_min) / (ref_max - ref_min), 1)

    expert = norm(record.get("final_greedy_return"))
    curve = record.get("eval_curve") or []
    if kind == "random":
        return 0.0
    if kind == "expert":
        return expert
    if kind == "mixed" and expert is not None:
        return {"random": 0.0, "expert": expert}
    if kind == "replay" and curve:
        return {"first": norm(curve[0][1]), "last": norm(curve[-1][1])}
    return None


def list_datasets() -> list[dict[str, Any]]:
    """Rows for ``policyfit data list``: every discrete name, whether its run ships, cached?

    Example:
        >>> rows = list_datasets()
        >>> len(rows), rows[0]["env_id"]
        (40, 'CartPole-v1')
    """
    shipped = dqn_behavior.behavior_index()
    rows = []
    for name in NAMES:
        spec, kind = parse_name(name)
        available = spec.key in shipped
        path = _cache_path(name, spec.default_size, 0)
        score = _list_score(shipped[spec.key], kind) if available else None
        rows.append(
            {
                "name": name,
                "env_id": spec.env_id,
                "behavior": kind,
                "available": available,
                "cached": bool(available and _cache_is_valid(path, spec, kind)),
                "size": spec.default_size,
                "behavior_normalized_score": score,
                "path": str(path) if available else None,
            }
        )
    return rows


__all__ = [
    "KINDS",
    "NAMES",
    "default_size",
    "generate_arrays",
    "is_discrete_name",
    "list_datasets",
    "make_dataset",
    "minari_dataset_id",
    "parse_name",
    "reference_for",
]
