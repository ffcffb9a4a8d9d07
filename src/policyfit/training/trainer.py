"""The one training loop: every algorithm is trained here, none trains itself.

* the dataset goes to the device once (:class:`~policyfit.data.sampler.TransitionSampler`);
* batches are sampled on the device inside a jitted ``lax.scan`` that fuses ``fuse`` updates
  per call — one host round trip per chunk, not per step;
* the random key of step ``t`` is ``fold_in(train_key, t)``, so a run resumed from a checkpoint
  draws exactly the batches and noise of the uninterrupted run (same final parameters);
* every ``eval_every`` steps the deterministic policy is rolled out in vectorized gymnasium
  environments; every ``save_every`` steps a checkpoint (msgpack, no pickle) and the policy are
  written; ``metrics.jsonl`` gets one line per chunk and per evaluation;
* the run directory holds ``config.json``, ``metrics.jsonl``, ``checkpoints/step_N/``,
  ``policy/`` and, at the end, ``summary.json``.

Example:
    >>> import policyfit
    >>> result = policyfit.train("iql", "hopper-medium", steps=10_000, seed=0)   # doctest: +SKIP
    >>> result.summary["final_normalized_score"], result.run_dir                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import AlgoConfig, Algorithm, DatasetSpec
from policyfit.algos.policy import (
    Policy,
    atomic_write_bytes,
    compiler_options,
    policy_params,
    read_run_config,
    save_policy,
    spec_from_dict,
)
from policyfit.algos.registry import get_algorithm
from policyfit.data.dataset import Dataset
from policyfit.data.sampler import TransitionSampler
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.checkpoint import list_checkpoints, restore_checkpoint, save_checkpoint

DEFAULT_EVAL_EVERY = 10_000
DEFAULT_EVAL_EPISODES = 10
DEFAULT_SAVE_EVERY = 50_000
DEFAULT_FUSE = 500  # updates per jitted call
RUN_FORMAT = "policyfit-run/1"


@dataclass
class TrainResult:
    """What :func:`train` returns: the learned policy, the summary dict and where the run lives."""

    policy: Policy
    summary: dict[str, Any]
    run_dir: Path
    state: Any = field(repr=False, default=None)


# --------------------------------------------------------------------------- small helpers
def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("policyfit", "jax", "jaxlib", "flax", "optax", "numpy", "gymnasium", "mujoco"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> str:
    """The backend and chip the updates ran on, e.g. ``"cpu"`` or ``"gpu: NVIDIA H200"``."""
    device = jax.devices()[0]
    kind = getattr(device, "device_kind", "") or ""
    backend = jax.default_backend()
    return backend if backend == "cpu" or not kind else f"{backend}: {kind}"


def dataset_name(ds: Dataset, given: Any) -> str:
    """A short id for run names: the name the user gave, else the dataset's id or source stem."""
    if isinstance(given, str | Path):
        text = str(given)
        return Path(text).stem if Path(text).suffix in (".hdf5", ".h5", ".npz") else Path(text).name
    for key in ("dataset_id", "name"):
        if ds.metadata.get(key):
            return str(ds.metadata[key])
    return Path(ds.source).stem or "dataset"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, default=_json_default).encode())


def _jsonable_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    keep = ("env_id", "ref_min_score", "ref_max_score", "action_space", "observation_space", "card")
    return json.loads(
        json.dumps({k: metadata[k] for k in keep if k in metadata}, default=_json_default)
    )


def resolve_config(
    cls: type[Algorithm], config: AlgoConfig | dict[str, Any] | None, steps: int, name: str
) -> AlgoConfig:
    """Build the algorithm's config; fields named ``schedule_steps`` follow ``steps`` unless set."""
    if isinstance(config, AlgoConfig):
        if not isinstance(config, cls.Config):
            raise ConfigError(
                f"config is a {type(config).__name__}, expected {cls.Config.__name__}",
                path=name,
                field="config",
            )
        return config
    values = dict(config or {})
    if "schedule_steps" in cls.Config.field_names() and "schedule_steps" not in values:
        values["schedule_steps"] = steps
    return cls.Config.from_dict(values, algo=name)


def _resolve_dataset(dataset: Any) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    from policyfit.data.io import load_dataset

    return load_dataset(dataset)


def _unique_dir(path: Path) -> Path:
    if not path.exists() or not any(path.iterdir()):
        return path
    for i in range(2, 10_000):
        candidate = path.with_name(f"{path.name}-{i}")
        if not candidate.exists():
            return candidate
    raise PolicyfitError("too many runs with this name", path=str(path))


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line and json.loads(line)["step"] <= last_step
    ]
    atomic_write_bytes(path, ("\n".join(kept) + "\n" if kept else "").encode())


def enable_compilation_cache() -> None:
    """Keep XLA executables under ``$POLICYFIT_HOME/jax_cache`` so reruns skip compilation.

    Compiling the fused update takes seconds on a busy CPU; the cache is keyed by the program, so
    a resumed run, a second seed or the next CLI call reuse it. A cache the user configured wins;
    ``POLICYFIT_JAX_CACHE=0`` turns it off.
    """
    if jax.config.jax_compilation_cache_dir or os.environ.get("POLICYFIT_JAX_CACHE") == "0":
        return
    from policyfit.paths import home

    jax.config.update("jax_compilation_cache_dir", str(home() / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def make_train_chunk(
    algo: Algorithm,
    sampler: TransitionSampler,
    train_key: jax.Array,
    batch_size: int,
    options: dict | None = None,
):
    """``chunk(state, data, start, n) -> (state, mean metrics)``: ``n`` fused updates, jitted.

    Step ``t`` uses ``fold_in(train_key, t)`` for its batch and its update noise.
    """

    def chunk(state, data, start, n):
        def body(state, t):
            k_batch, k_update = jax.random.split(jax.random.fold_in(train_key, t))
            batch = sampler.sample(data, k_batch, batch_size)
            return algo.update(state, batch, k_update)

        state, metrics = jax.lax.scan(body, state, start + jnp.arange(n, dtype=jnp.int32))
        return state, jax.tree_util.tree_map(jnp.nanmean, metrics)

    return jax.jit(chunk, static_argnums=3, compiler_options=options)


class _Progress:
    """A rich progress bar (steps/s, last eval, ETA) or nothing."""

    def __init__(self, enabled: bool, total: int, start: int, title: str):
        self.bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("eval {task.fields[score]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.bar.start()
        self.task = self.bar.add_task(title, total=total, completed=start, rate="-", score="-")

    def update(self, step: int, rate: float | None = None, score: str | None = None) -> None:
        if self.bar is None:
            return
        fields = {}
        if rate is not None:
            fields["rate"] = f"{rate:,.0f}"
        if score is not None:
            fields["score"] = score
        self.bar.update(self.task, completed=step, **fields)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------------- the trainer
def train(
    algo: str | None,
    dataset: Dataset | str | Path | None = None,
    *,
    steps: int = 1_000_000,
    seed: int = 0,
    config: AlgoConfig | dict[str, Any] | None = None,
    out: str | Path | None = None,
    eval_every: int = DEFAULT_EVAL_EVERY,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    save_every: int = DEFAULT_SAVE_EVERY,
    resume: str | Path | None = None,
    progress: bool = True,
    fuse: int = DEFAULT_FUSE,
    keep_checkpoints: int = 2,
    fast_compile: bool | None = None,
) -> TrainResult:
    """Train ``algo`` on ``dataset`` for ``steps`` gradient updates; return policy and summary.

    Args:
        algo: registry name (``bc``, ``td3bc``, ``iql``, ``cql``, ``awac``, ``rebrac``); may be None
            when resuming.
        dataset: a :class:`Dataset`, a path, or a dataset name (:func:`policyfit.load_dataset`);
            when resuming, None reloads the run's dataset (its fingerprint must match).
        steps: total number of updates (when resuming: the total, not the remainder).
        config: hyperparameters overriding the algorithm's defaults (dict or config object).
        out: run directory; default ``./runs/<algo>-<dataset>-s<seed>`` (``-2``, ... if taken).
        eval_every / eval_episodes: evaluation cadence (0 = only at the end) and episodes.
        save_every: checkpoint cadence (0 = only at the end).
        resume: a run directory to continue from its latest checkpoint; the continuation is
            exact — the final parameters equal those of an uninterrupted run.
        progress: show a progress bar.
        fuse: updates fused into one jitted ``lax.scan`` call.
        fast_compile: compile with low XLA optimization (seconds instead of tens of seconds on
            a busy CPU, slower updates); default from ``$POLICYFIT_FAST_COMPILE``.

    Example:
        >>> result = train("td3bc", "hopper-medium", steps=100_000, seed=1)  # doctest: +SKIP
        >>> result.policy(obs)                                              # doctest: +SKIP
    """
    if steps < 1:
        raise ConfigError("must be >= 1", field="steps")
    if eval_every < 0 or save_every < 0 or fuse < 1 or eval_episodes < 1:
        raise ConfigError(
            "eval_every and save_every must be >= 0, fuse and eval_episodes >= 1", field="train"
        )
    run_config: dict[str, Any] = {}
    if resume is not None:
        run_dir = Path(resume)
        run_config = read_run_config(run_dir)
        if run_config.get("format") != RUN_FORMAT:
            raise PolicyfitError(
                "not a policyfit run directory (no config.json)", path=str(run_dir), field="resume"
            )
        if algo is not None and get_algorithm(algo).name != run_config["algorithm"]:
            raise ConfigError(
                f"the run trained {run_config['algorithm']!r}, not {algo!r}",
                path=str(run_dir),
                field="algorithm",
            )
        algo = run_config["algorithm"]
        seed = int(run_config["seed"])
        if config:
            raise ConfigError("a resumed run keeps its config; do not pass --set", field="config")
        config = run_config["config"]
        if dataset is None:
            dataset = run_config["dataset"]["source"]
    if algo is None:
        raise ConfigError("name an algorithm", field="algorithm")
    if dataset is None:
        raise ConfigError("name a dataset (--dataset NAME_OR_PATH)", field="dataset")

    enable_compilation_cache()
    cls = get_algorithm(algo)
    cfg = resolve_config(cls, config, steps, cls.name)
    learner = cls(cfg)
    ds_given = dataset
    ds = _resolve_dataset(dataset)
    if ds.discrete:
        raise ConfigError(
            f"{cls.name} needs continuous actions; this dataset's actions are discrete",
            path=str(ds.source),
            field="actions",
        )
    full_fingerprint = ds.fingerprint()
    if run_config and run_config["dataset"]["fingerprint"] != full_fingerprint:
        raise PolicyfitError(
            f"dataset fingerprint {full_fingerprint} differs from the run's "
            f"{run_config['dataset']['fingerprint']}: resuming on other data would not be exact",
            path=str(ds.source),
            field="dataset",
        )
    name = run_config["dataset"]["name"] if run_config else dataset_name(ds, ds_given)
    prepare = getattr(learner, "prepare_dataset", None)
    train_ds = prepare(ds) if prepare is not None else ds
    spec = DatasetSpec.from_dataset(train_ds)
    env_id = ds.env_id

    if resume is None:
        default = Path("runs") / _safe(f"{cls.name}-{name}-s{seed}")
        run_dir = Path(out) if out is not None else _unique_dir(default)
        run_dir.mkdir(parents=True, exist_ok=True)
        if (run_dir / "config.json").exists():
            raise PolicyfitError(
                "already holds a run; pass --resume to continue it or choose another --out",
                path=str(run_dir),
                field="out",
            )
        source = str(ds_given) if isinstance(ds_given, str | Path) else ds.source
        run_config = {
            "format": RUN_FORMAT,
            "algorithm": cls.name,
            "config": cfg.to_dict(),
            "seed": seed,
            "steps": steps,
            "batch_size": cfg.batch_size,
            "fuse": fuse,
            "fast_compile": compiler_options(fast_compile) is not None,
            "eval_every": eval_every,
            "eval_episodes": eval_episodes,
            "save_every": save_every,
            "dataset": {
                "name": name,
                "source": source,
                "fingerprint": full_fingerprint,
                "training_transitions": len(train_ds),
                "training_fingerprint": train_ds.fingerprint(),
                "env_id": env_id,
                "metadata": _jsonable_metadata(ds.metadata),
            },
            "spec": dataclasses.asdict(spec),
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_json(run_dir / "config.json", run_config)
    else:
        # The same chunking and compiler options as the original run: bit-exact continuation.
        fuse = int(run_config.get("fuse", fuse))
        fast_compile = bool(run_config.get("fast_compile", False))
        spec = spec_from_dict(run_config["spec"])

    key = jax.random.PRNGKey(seed)
    init_key, train_key = jax.random.split(key)
    # One compiled program instead of hundreds of eager ops (much faster on a busy CPU).
    options = compiler_options(fast_compile)
    # init and act run rarely and are small: always compile them for compile speed.
    state = jax.jit(learner.init, static_argnums=0, compiler_options=compiler_options(True))(
        spec, init_key
    )
    start, meta = 0, {}
    if resume is not None:
        found = list_checkpoints(run_dir)
        if found:
            start, path = found[-1]
            state, meta = restore_checkpoint(path, state)
        _trim_metrics(run_dir / "metrics.jsonl", start)
    if start > steps:
        raise ConfigError(f"the run is already at step {start} > --steps {steps}", field="steps")

    sampler = TransitionSampler(train_ds)
    chunk = make_train_chunk(learner, sampler, train_key, cfg.batch_size, options)
    act = jax.jit(learner.act, compiler_options=compiler_options(True))
    refs = None
    if env_id is not None:
        from policyfit.evaluation.rollout import reference_scores

        refs = reference_scores(env_id, ds.metadata)

    history: list[dict] = list(meta.get("evals", []))
    wall_before = float(meta.get("wall_seconds", 0.0))
    train_seconds = float(meta.get("train_seconds", 0.0))
    t0 = time.perf_counter()
    bar = _Progress(progress, steps, start, f"{cls.name} {name}")
    metrics_file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in finally

    def log(row: dict) -> None:
        metrics_file.write(json.dumps(row, default=_json_default) + "\n")
        metrics_file.flush()

    def run_eval(step: int) -> dict | None:
        if env_id is None:
            return None
        from policyfit.evaluation.rollout import evaluate

        params = policy_params(state)
        result = evaluate(
            lambda obs: np.asarray(act(params, obs)),
            env_id,
            episodes=eval_episodes,
            seed=seed,
            ref_scores=refs,
        )
        row = {
            "step": step,
            "eval/return_mean": result["return_mean"],
            "eval/return_std": result["return_std"],
            "eval/length_mean": result["length_mean"],
            "eval/normalized_score": result["normalized_score"],
            # what the user has waited so far (compilation, training, evaluations, resumes)
            "wall_seconds": wall_before + time.perf_counter() - t0,
        }
        log(row)
        history.append(row)
        shown = (
            result["normalized_score"]
            if result["normalized_score"] is not None
            else result["return_mean"]
        )
        bar.update(step, score=f"{shown:.1f}")
        return row

    def checkpoint(step: int) -> None:
        save_checkpoint(
            run_dir,
            step,
            state,
            {
                "evals": history,
                "wall_seconds": wall_before + time.perf_counter() - t0,
                "train_seconds": train_seconds,
            },
            keep=keep_checkpoints,
        )
        save_policy(run_dir / "policy", learner, spec, policy_params(state))

    def next_boundary(step: int, every: int) -> int:
        return steps if every == 0 else min(steps, (step // every + 1) * every)

    step = start
    try:
        while step < steps:
            stop = min(
                next_boundary(step, eval_every), next_boundary(step, save_every), step + fuse
            )
            t_chunk = time.perf_counter()
            state, metrics = chunk(state, sampler.data, jnp.int32(step), stop - step)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            elapsed = time.perf_counter() - t_chunk
            train_seconds += elapsed
            rate = (stop - step) / max(elapsed, 1e-9)
            step = stop
            log(
                {
                    "step": step,
                    **{f"train/{k}": v for k, v in metrics.items()},
                    "steps_per_second": rate,
                }
            )
            bar.update(step, rate=rate)
            if (eval_every and step % eval_every == 0) and step < steps:
                run_eval(step)
            if (save_every and step % save_every == 0) and step < steps:
                checkpoint(step)
        final = run_eval(steps) if not history or history[-1]["step"] != steps else history[-1]
        checkpoint(steps)
    finally:
        bar.close()
        metrics_file.close()

    scores = [
        h["eval/normalized_score"] for h in history if h.get("eval/normalized_score") is not None
    ]
    returns = [h["eval/return_mean"] for h in history]
    summary = {
        "algorithm": cls.name,
        "dataset": name,
        "dataset_fingerprint": full_fingerprint,
        "env_id": env_id,
        "seed": seed,
        "steps": steps,
        "resumed_from_step": start if resume is not None else None,
        "wall_seconds": wall_before + time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "steps_per_second": (steps - start)
        / max(train_seconds - float(meta.get("train_seconds", 0.0)), 1e-9),
        "device": device_description(),
        "final_normalized_score": final["eval/normalized_score"] if final else None,
        "best_normalized_score": max(scores) if scores else None,
        "final_return_mean": final["eval/return_mean"] if final else None,
        "final_return_std": final["eval/return_std"] if final else None,
        "best_return_mean": max(returns) if returns else None,
        "eval_episodes": eval_episodes,
        "data_return_mean": float(ds.episode_returns().mean()),
        "data_normalized_return_mean": (
            float(np.mean(100.0 * (ds.episode_returns() - refs[0]) / (refs[1] - refs[0])))
            if refs
            else None
        ),
        "run_dir": str(run_dir),
    }
    _write_json(run_dir / "summary.json", summary)
    policy = Policy(learner, jax.tree_util.tree_map(jnp.asarray, policy_params(state)), spec)
    return TrainResult(policy=policy, summary=summary, run_dir=run_dir, state=state)
