"""The one training loop: every algorithm is trained here, none trains itself.

* the algorithm prepares its data (:meth:`~policyfit.algos.base.Algorithm.prepare`) and builds its
  sampler (:meth:`~policyfit.algos.base.Algorithm.make_sampler`: transitions by default,
  trajectory windows for sequence models); the data goes to the device once;
* batches are sampled on the device inside a jitted ``lax.scan`` that fuses ``fuse`` updates
  per call — one host round trip per chunk, not per step;
* an algorithm with ``pretrain_steps > 0`` first runs that many ``pretrain_update`` steps (a
  dynamics model, a behavior prior); the pretrained state is checkpointed as ``step_0``;
* the random key of step ``t`` is ``fold_in(train_key, t)``, so a run resumed from a checkpoint
  draws exactly the batches and noise of the uninterrupted run (same final parameters);
* every ``eval_every`` steps the deterministic policy is rolled out in vectorized gymnasium
  environments, with its carry (:mod:`policyfit.envs.rollout`); every ``save_every`` steps a
  checkpoint (msgpack, no pickle) and the policy are written; ``metrics.jsonl`` gets one line per
  chunk and per evaluation;
* the run directory (:mod:`policyfit.training.rundir`) holds ``config.json``, ``metrics.jsonl``,
  ``checkpoints/step_N/``, ``policy/`` and, at the end, ``summary.json``.

The code is in three parts: setting up the run (:func:`_setup_run`), the chunked loop
(:class:`_Loop`) and the orchestration (:func:`train`).

Example:
    >>> import policyfit
    >>> result = policyfit.train("iql", "hopper-medium", steps=10_000, seed=0)   # doctest: +SKIP
    >>> result.summary["final_normalized_score"], result.run_dir                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from policyfit.algos.base import ALGORITHMS, AlgoConfig, Algorithm, DatasetSpec
from policyfit.algos.policy import Policy, save_policy, spec_from_dict
from policyfit.algos.registry import get_algorithm
from policyfit.common.files import check_writable, dumps, to_jsonable
from policyfit.common.progress import ProgressBar
from policyfit.common.scores import normalized_score
from policyfit.common.versions import library_versions
from policyfit.common.xla import compiler_options, resolve_fast_compile
from policyfit.data.dataset import Dataset
from policyfit.envs.rollout import rollout_returns
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.training.checkpoint import list_checkpoints, restore_checkpoint, save_checkpoint
from policyfit.training.rundir import RUN_FORMAT, RunDir
from policyfit.training.tensorboard import TensorBoardWriter

DEFAULT_EVAL_EVERY = 10_000
DEFAULT_EVAL_EPISODES = 10
DEFAULT_SAVE_EVERY = 50_000
DEFAULT_FUSE = 500  # updates per jitted call

__all__ = ["TrainResult", "make_train_chunk", "resolve_config", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns: the learned policy, the summary dict and where the run lives."""

    policy: Policy
    summary: dict[str, Any]
    run_dir: Path
    state: Any = field(repr=False, default=None)


# --------------------------------------------------------------------------- small helpers
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


def _jsonable_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    keep = ("env_id", "ref_min_score", "ref_max_score", "action_space", "observation_space", "card")
    return to_jsonable({k: metadata[k] for k in keep if k in metadata})


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
    from policyfit.envs.datasets import load_dataset

    return load_dataset(dataset)


def _unique_dir(path: Path) -> Path:
    if not path.exists() or not any(path.iterdir()):
        return path
    for i in range(2, 10_000):
        candidate = path.with_name(f"{path.name}-{i}")
        if not candidate.exists():
            return candidate
    raise PolicyfitError("too many runs with this name", path=str(path))


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


def check_action_space(cls: type[Algorithm], ds: Dataset) -> None:
    """ConfigError unless ``cls`` declares support for ``ds``'s kind of actions."""
    kind, ok = (
        ("discrete", cls.supports_discrete)
        if ds.discrete
        else (
            "continuous",
            cls.supports_continuous,
        )
    )
    if ok:
        return
    fits = sorted(
        n
        for n, c in ALGORITHMS.items()
        if (c.supports_discrete if ds.discrete else c.supports_continuous)
    )
    raise ConfigError(
        f"{cls.name} learns {cls.action_spaces()} actions; this dataset's actions are {kind} "
        f"(algorithms for {kind} actions: {', '.join(fits) or 'none'})",
        path=str(ds.source),
        field="actions",
    )


def make_train_chunk(
    algo: Algorithm,
    sampler: Any,
    train_key: jax.Array,
    batch_size: int,
    options: dict | None = None,
    update: Any = None,
):
    """``chunk(state, data, start, n) -> (state, mean metrics)``: ``n`` fused updates, jitted.

    Step ``t`` uses ``fold_in(train_key, t)`` for its batch and its update noise. ``update``
    defaults to ``algo.update`` (the pretraining phase passes ``algo.pretrain_update``).
    """
    update = algo.update if update is None else update

    def chunk(state, data, start, n):
        def body(state, t):
            k_batch, k_update = jax.random.split(jax.random.fold_in(train_key, t))
            batch = sampler.sample(data, k_batch, batch_size)
            return update(state, batch, k_update)

        state, metrics = jax.lax.scan(body, state, start + jnp.arange(n, dtype=jnp.int32))
        return state, jax.tree_util.tree_map(jnp.nanmean, metrics)

    return jax.jit(chunk, static_argnums=3, compiler_options=options)


def _progress_bar(enabled: bool, total: int, start: int, title: str) -> ProgressBar:
    """The trainer's bar: steps done, steps/s, the last evaluation, elapsed time, ETA."""
    return ProgressBar(
        title,
        total,
        completed=start,
        texts=("{task.fields[rate]} steps/s", "eval {task.fields[score]}"),
        fields={"rate": "-", "score": "-"},
        elapsed=True,
        enabled=enabled,
    )


# --------------------------------------------------------------------------- run setup
@dataclass
class _Settings:
    """The loop's schedule: what the user asked, or what a resumed run recorded."""

    steps: int | None
    seed: int
    eval_every: int | None
    eval_episodes: int | None
    save_every: int | None
    fuse: int
    keep_checkpoints: int
    fast_compile: bool | None
    tensorboard: bool | None = None

    # what a new run gets for the fields left None
    DEFAULTS = {
        "steps": 1_000_000,
        "eval_every": DEFAULT_EVAL_EVERY,
        "eval_episodes": DEFAULT_EVAL_EPISODES,
        "save_every": DEFAULT_SAVE_EVERY,
        "tensorboard": False,
    }

    def fill(self, recorded: dict[str, Any]) -> None:
        """Fields left None take the resumed run's recorded value, else the default.

        A resumed run keeps its schedule (steps, evaluation cadence and episodes, checkpoint
        cadence), so its evaluations — same parameters, same seeds, same episodes — give the
        uninterrupted run's scores; a value passed explicitly still wins.
        """
        for name, default in self.DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, recorded.get(name, default))


@dataclass
class _Run:
    """Everything the loop needs, set up once."""

    learner: Algorithm
    dataset: Dataset  # as given (fingerprinted, scored)
    train_data: Dataset  # after ``learner.prepare``
    spec: DatasetSpec
    name: str
    run: RunDir
    config: dict[str, Any]
    resumed: bool
    refs: tuple[float, float] | None


def _check_settings(s: _Settings) -> None:
    if s.steps is not None and s.steps < 1:
        raise ConfigError("must be >= 1", field="steps")
    if (
        (s.eval_every or 0) < 0
        or (s.save_every or 0) < 0
        or s.fuse < 1
        or (s.eval_episodes is not None and s.eval_episodes < 1)
    ):
        raise ConfigError(
            "eval_every and save_every must be >= 0, fuse and eval_episodes >= 1", field="train"
        )


def _read_resumed(resume: str | Path, algo: str | None, config: Any) -> dict[str, Any]:
    """``config.json`` of the run to resume, checked against what the caller passed."""
    run = RunDir(resume)
    run_config = run.require_training_run(field="resume")
    if algo is not None and get_algorithm(algo).name != run_config["algorithm"]:
        raise ConfigError(
            f"the run trained {run_config['algorithm']!r}, not {algo!r}",
            path=str(run.path),
            field="algorithm",
        )
    if config:
        raise ConfigError("a resumed run keeps its config; do not pass --set", field="config")
    return run_config


def _new_run_config(
    learner: Algorithm,
    cfg: AlgoConfig,
    ds: Dataset,
    train_ds: Dataset,
    spec: DatasetSpec,
    name: str,
    source: str,
    s: _Settings,
) -> dict[str, Any]:
    return {
        "format": RUN_FORMAT,
        "algorithm": learner.name,
        "config": cfg.to_dict(),
        "seed": s.seed,
        "steps": s.steps,
        "pretrain_steps": learner.pretrain_steps,
        "batch_size": cfg.batch_size,
        "fuse": s.fuse,
        "fast_compile": resolve_fast_compile(s.fast_compile),
        "eval_every": s.eval_every,
        "eval_episodes": s.eval_episodes,
        "save_every": s.save_every,
        "tensorboard": bool(s.tensorboard),
        "dataset": {
            "name": name,
            "source": source,
            "fingerprint": ds.fingerprint(),
            "training_transitions": len(train_ds),
            "training_fingerprint": train_ds.fingerprint(),
            "env_id": ds.env_id,
            "metadata": _jsonable_metadata(ds.metadata),
        },
        "spec": dataclasses.asdict(spec),
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _open_new_run(out: str | Path | None, algo_name: str, name: str, seed: int) -> RunDir:
    default = Path("runs") / _safe(f"{algo_name}-{name}-s{seed}")
    path = Path(out) if out is not None else _unique_dir(default)
    run = RunDir(path).create()
    if run.config_path.exists():
        raise PolicyfitError(
            "already holds a run; pass --resume to continue it or choose another --out",
            path=str(path),
            field="out",
        )
    return run


def _setup_run(
    algo: str | None,
    dataset: Any,
    config: Any,
    out: str | Path | None,
    resume: str | Path | None,
    s: _Settings,
) -> _Run:
    """Resolve algorithm, data and run directory; write ``config.json`` for a new run.

    For a resumed run the recorded seed, config, chunking and compiler options win, so the
    continuation is bit-exact; ``s`` is updated in place.
    """
    run_config: dict[str, Any] = {}
    if out is not None and resume is None:
        check_writable(out)  # before a possibly long dataset build, not after it
    if resume is not None:
        run_config = _read_resumed(resume, algo, config)
        algo, s.seed, config = (
            run_config["algorithm"],
            int(run_config["seed"]),
            run_config["config"],
        )
        s.fuse = int(run_config.get("fuse", s.fuse))
        s.fast_compile = run_config.get("fast_compile")
        dataset = run_config["dataset"]["source"] if dataset is None else dataset
    s.fill(run_config)
    _check_settings(s)
    if algo is None:
        raise ConfigError("name an algorithm", field="algorithm")
    if dataset is None:
        raise ConfigError("name a dataset (--dataset NAME_OR_PATH)", field="dataset")

    cls = get_algorithm(algo)
    cfg = resolve_config(cls, config, s.steps, cls.name)
    learner = cls(cfg)
    ds = _resolve_dataset(dataset)
    ds.require_actions()  # before any run directory: action-free data must be relabelled first
    check_action_space(cls, ds)
    if run_config and run_config["dataset"]["fingerprint"] != ds.fingerprint():
        raise PolicyfitError(
            f"dataset fingerprint {ds.fingerprint()} differs from the run's "
            f"{run_config['dataset']['fingerprint']}: resuming on other data would not be exact",
            path=str(ds.source),
            field="dataset",
        )
    train_ds = learner.prepare(ds)
    refs = ds.reference_scores()
    if run_config:
        spec = spec_from_dict(run_config["spec"])
        return _Run(
            learner,
            ds,
            train_ds,
            spec,
            run_config["dataset"]["name"],
            RunDir(resume),
            run_config,
            True,
            refs,
        )
    spec = DatasetSpec.from_dataset(train_ds)
    name = dataset_name(ds, dataset)
    run = _open_new_run(out, cls.name, name, s.seed)
    source = str(dataset) if isinstance(dataset, str | Path) else ds.source
    run_config = _new_run_config(learner, cfg, ds, train_ds, spec, name, source, s)
    run.write_config(run_config)
    return _Run(learner, ds, train_ds, spec, name, run, run_config, False, refs)


# --------------------------------------------------------------------------- the chunked loop
class _Loop:
    """Runs the updates in fused chunks; evaluates, checkpoints and logs at the boundaries."""

    def __init__(self, r: _Run, s: _Settings, progress: bool):
        self.r, self.s = r, s
        learner = r.learner
        init_key, self.train_key = jax.random.split(jax.random.PRNGKey(s.seed))
        self.pretrain_key = jax.random.fold_in(init_key, 1)
        self.options = compiler_options(s.fast_compile)
        # init and act run rarely and are small: always compile them for compile speed.
        fast = compiler_options(True)
        self.state = jax.jit(learner.init, static_argnums=0, compiler_options=fast)(
            r.spec, init_key
        )
        self.start, meta = 0, {}
        self.pretrained = False
        if r.resumed:
            found = list_checkpoints(r.run.path)
            if found:
                self.start, path = found[-1]
                self.state, meta = restore_checkpoint(path, self.state)
                self.pretrained = True  # every checkpoint is written after pretraining
            r.run.trim_metrics(self.start)
        if self.start > s.steps:
            raise ConfigError(
                f"the run is already at step {self.start} > --steps {s.steps}", field="steps"
            )
        self.history: list[dict] = list(meta.get("evals", []))
        self.wall_before = float(meta.get("wall_seconds", 0.0))
        self.train_seconds_before = float(meta.get("train_seconds", 0.0))
        self.train_seconds = self.train_seconds_before
        self.t0 = time.perf_counter()
        self.sampler = learner.make_sampler(r.train_data, r.spec)
        self.policy = Policy(learner, learner.policy_params(self.state), r.spec)
        self.bar = _progress_bar(progress, s.steps, self.start, f"{learner.name} {r.name}")
        self.metrics_file = r.run.open_metrics()
        self.tensorboard = (
            TensorBoardWriter(r.run.tensorboard_dir, resumed_from=self.start if r.resumed else None)
            if s.tensorboard
            else None
        )

    # ---------------------------------------------------------------- bookkeeping
    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def log(self, row: dict) -> None:
        self.metrics_file.write(dumps(row, indent=None) + "\n")
        self.metrics_file.flush()
        if self.tensorboard is not None:
            self.tensorboard.write(row)

    def close(self) -> None:
        self.bar.close()
        self.metrics_file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def run_chunk(self, chunk: Any, key_step: int, n: int) -> tuple[dict, float]:
        t = time.perf_counter()
        self.state, metrics = chunk(self.state, self.sampler.data, jnp.int32(key_step), n)
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        elapsed = time.perf_counter() - t
        self.train_seconds += elapsed
        return metrics, n / max(elapsed, 1e-9)

    # ---------------------------------------------------------------- phases
    def pretrain(self) -> None:
        """The algorithm's pretraining phase (skipped when resuming: it is in every checkpoint)."""
        total = self.r.learner.pretrain_steps
        if total <= 0 or self.pretrained:
            return
        learner = self.r.learner
        chunk = make_train_chunk(
            learner,
            self.sampler,
            self.pretrain_key,
            learner.config.batch_size,
            self.options,
            update=learner.pretrain_update,
        )
        self.bar.update(0, total=total, description=f"{learner.name} pretraining")
        done = 0
        while done < total:
            n = min(self.s.fuse, total - done)
            metrics, rate = self.run_chunk(chunk, done, n)
            done += n
            self.log(
                {
                    "step": 0,
                    "pretrain_step": done,
                    **{f"pretrain/{k}": v for k, v in metrics.items()},
                }
            )
            self.bar.update(done, rate=f"{rate:,.0f}")
        self.bar.update(0, total=self.s.steps, description=f"{learner.name} {self.r.name}")
        self.checkpoint(0)

    def evaluate(self, step: int) -> dict | None:
        """Roll out the deterministic policy; one metrics row (None without an environment)."""
        env_id = self.r.dataset.env_id
        if env_id is None:
            return None
        self.policy.params = self.r.learner.policy_params(self.state)
        returns, lengths = rollout_returns(
            self.policy, env_id, episodes=self.s.eval_episodes, seed=self.s.seed
        )
        scores = normalized_score(returns, self.r.refs) if self.r.refs else None
        row = {
            "step": step,
            "eval/return_mean": float(returns.mean()),
            "eval/return_std": float(returns.std()),
            "eval/length_mean": float(lengths.mean()),
            "eval/normalized_score": None if scores is None else float(scores.mean()),
            # what the user has waited so far (compilation, training, evaluations, resumes)
            "wall_seconds": self.wall_seconds(),
        }
        self.log(row)
        self.history.append(row)
        shown = row["eval/normalized_score"]
        self.bar.update(step, score=f"{row['eval/return_mean'] if shown is None else shown:.1f}")
        return row

    def checkpoint(self, step: int) -> None:
        meta = {
            "evals": self.history,
            "wall_seconds": self.wall_seconds(),
            "train_seconds": self.train_seconds,
        }
        save_checkpoint(self.r.run.path, step, self.state, meta, keep=self.s.keep_checkpoints)
        learner = self.r.learner
        save_policy(self.r.run.policy_dir, learner, self.r.spec, learner.policy_params(self.state))

    def _next_boundary(self, step: int, every: int) -> int:
        steps = self.s.steps
        return steps if every == 0 else min(steps, (step // every + 1) * every)

    def main(self) -> dict | None:
        """The main updates from ``self.start`` to ``steps``; returns the final evaluation row."""
        s, learner = self.s, self.r.learner
        chunk = make_train_chunk(
            learner, self.sampler, self.train_key, learner.config.batch_size, self.options
        )
        step = self.start
        while step < s.steps:
            stop = min(
                self._next_boundary(step, s.eval_every),
                self._next_boundary(step, s.save_every),
                step + s.fuse,
            )
            metrics, rate = self.run_chunk(chunk, step, stop - step)
            step = stop
            self.log(
                {
                    "step": step,
                    **{f"train/{k}": v for k, v in metrics.items()},
                    "steps_per_second": rate,
                }
            )
            self.bar.update(step, rate=f"{rate:,.0f}")
            if s.eval_every and step % s.eval_every == 0 and step < s.steps:
                self.evaluate(step)
            if s.save_every and step % s.save_every == 0 and step < s.steps:
                self.checkpoint(step)
        done = self.history and self.history[-1]["step"] == s.steps
        final = self.history[-1] if done else self.evaluate(s.steps)
        self.checkpoint(s.steps)
        return final


def _summary(r: _Run, s: _Settings, loop: _Loop, final: dict | None) -> dict[str, Any]:
    history = loop.history
    scores = [
        h["eval/normalized_score"] for h in history if h.get("eval/normalized_score") is not None
    ]
    returns = [h["eval/return_mean"] for h in history]
    data_returns = r.dataset.episode_returns()
    return {
        "algorithm": r.learner.name,
        "dataset": r.name,
        "dataset_fingerprint": r.config["dataset"]["fingerprint"],
        "env_id": r.dataset.env_id,
        "action_space": "discrete" if r.dataset.discrete else "continuous",
        "seed": s.seed,
        "steps": s.steps,
        "pretrain_steps": r.learner.pretrain_steps,
        "resumed_from_step": loop.start if r.resumed else None,
        "wall_seconds": loop.wall_seconds(),
        "train_seconds": loop.train_seconds,
        "steps_per_second": (s.steps - loop.start)
        / max(loop.train_seconds - loop.train_seconds_before, 1e-9),
        "device": device_description(),
        "final_normalized_score": final["eval/normalized_score"] if final else None,
        "best_normalized_score": max(scores) if scores else None,
        "final_return_mean": final["eval/return_mean"] if final else None,
        "final_return_std": final["eval/return_std"] if final else None,
        "best_return_mean": max(returns) if returns else None,
        "eval_episodes": s.eval_episodes,
        "data_return_mean": float(data_returns.mean()),
        "data_normalized_return_mean": (
            float(np.mean(normalized_score(data_returns, r.refs))) if r.refs else None
        ),
        "run_dir": str(r.run.path),
    }


# --------------------------------------------------------------------------- the trainer
def train(
    algo: str | None,
    dataset: Dataset | str | Path | None = None,
    *,
    steps: int | None = None,
    seed: int = 0,
    config: AlgoConfig | dict[str, Any] | None = None,
    out: str | Path | None = None,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    save_every: int | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    fuse: int = DEFAULT_FUSE,
    keep_checkpoints: int = 2,
    fast_compile: bool | None = None,
    tensorboard: bool | None = None,
) -> TrainResult:
    """Train ``algo`` on ``dataset`` for ``steps`` gradient updates; return policy and summary.

    Args:
        algo: registry name (``policyfit algos`` lists them: ``bc``, ``td3bc``, ``iql``, ``riql``,
            ``cql``, ``awac``, ``rebrac``, ``discrete_bc``, ``rvs_r``); may be None when resuming.
        dataset: a :class:`Dataset`, a path, or a dataset name (:func:`policyfit.load_dataset`);
            when resuming, None reloads the run's dataset (its fingerprint must match).
        steps: total number of updates (default 1,000,000; when resuming: the total, not the
            remainder, default the run's own); an algorithm's pretraining phase comes on top.
        config: hyperparameters overriding the algorithm's defaults (dict or config object).
        out: run directory; default ``./runs/<algo>-<dataset>-s<seed>`` (``-2``, ... if taken).
        eval_every / eval_episodes: evaluation cadence (0 = only at the end; default 10,000) and
            episodes (default 10). Evaluation seeds belong to the run: episode ``i`` starts from
            reset seed ``seed + i``, so the same parameters always get the same score.
        save_every: checkpoint cadence (0 = only at the end; default 50,000).
        resume: a run directory to continue from its latest checkpoint; the continuation is
            exact — the final parameters equal those of an uninterrupted run.
        progress: show a progress bar.
        fuse: updates fused into one jitted ``lax.scan`` call.
        keep_checkpoints: how many recent checkpoints to keep.
        fast_compile: compile with low XLA optimization (seconds instead of tens of seconds on
            a busy CPU, slower updates); default from ``$POLICYFIT_FAST_COMPILE``.
        tensorboard: also write the metrics as TensorBoard event files into
            ``RUN/tensorboard/`` (see :mod:`policyfit.training.tensorboard`).

        A resumed run keeps what it recorded for every schedule argument left None (steps,
        evaluation cadence and episodes, checkpoint cadence, TensorBoard), so its final
        evaluation equals the uninterrupted run's.

    Raises:
        ConfigError: an unknown algorithm or config key, an algorithm that does not learn this
            dataset's kind of actions, bad schedule values.
        PolicyfitError: an unreadable dataset, a taken ``out``, resuming on other data.

    Example:
        >>> result = train("td3bc", "hopper-medium", steps=100_000, seed=1)  # doctest: +SKIP
        >>> result.policy(obs)                                              # doctest: +SKIP
    """
    s = _Settings(
        steps,
        seed,
        eval_every,
        eval_episodes,
        save_every,
        fuse,
        keep_checkpoints,
        fast_compile,
        tensorboard,
    )
    _check_settings(s)
    enable_compilation_cache()
    r = _setup_run(algo, dataset, config, out, resume, s)
    loop = _Loop(r, s, progress)
    try:
        loop.pretrain()
        final = loop.main()
    finally:
        loop.close()
    summary = _summary(r, s, loop, final)
    r.run.write_summary(summary)
    params = jax.tree_util.tree_map(jnp.asarray, r.learner.policy_params(loop.state))
    policy = Policy(r.learner, params, r.spec)
    return TrainResult(policy=policy, summary=summary, run_dir=r.run.path, state=loop.state)
