"""Run a sweep: every trial calls :func:`policyfit.train` in a worker process or a Ray task.

* ``engine="local"`` (the default): a process pool of ``jobs`` workers on this machine (default:
  one per CPU, at most one per trial), no Ray needed. ``engine="ray"`` (implied by ``address``):
  one Ray task per trial on a local Ray instance with ``jobs`` CPUs, or on an existing cluster
  (``ray start --head`` elsewhere, then ``address="HOST:PORT"`` or ``"auto"``); on a cluster every
  node needs policyfit installed and the datasets reachable by the same names or paths.
* Trial ``t`` lives in ``OUT/trials/<trial_id>/``: a normal run directory (:class:`RunDir`) plus
  ``trial.json``. A trial whose ``summary.json`` records the same algorithm, seed, config and
  steps is finished and skipped on re-run; one with ``config.json`` but no summary was interrupted
  and resumes from its last checkpoint (exact continuation, see the trainer), and so does a finished
  one when ``steps`` grew. A directory holding a run of another algorithm, seed or config is left
  alone and the trial fails saying so.
* A trial that raises is recorded as ``failed`` (message in the table, traceback in
  ``error.txt``); the others go on. The results (``results.md``, ``results.csv``, ``results.json``,
  ``profiles.png``) are written when all trials are done.

Example:
    >>> from policyfit.sweep import run_sweep, read_spec
    >>> result = run_sweep(read_spec("sweep.yaml"), "sweeps/demo", jobs=4)  # doctest: +SKIP
    >>> result["ran"], result["skipped"], result["aggregates"]["iql"]["iqm"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policyfit.common.files import atomic_write_text, dumps, ensure_dir, write_json
from policyfit.errors import PolicyfitError
from policyfit.evaluation.stats import DEFAULT_REPS
from policyfit.sweep.executor import Outcome, error_line, resolve_engine, run_trials
from policyfit.sweep.results import read_run, write_results
from policyfit.sweep.spec import SweepSpec, Trial, expand_trials
from policyfit.training.rundir import RunDir

TrialFn = Callable[[dict[str, Any], str], dict[str, Any]]
TRIAL_FILE = "trial.json"
ERROR_FILE = "error.txt"


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, numpy scalars numbers)."""
    return json.loads(dumps(value, indent=None))


def run_state(
    run_dir: str | Path,
    *,
    algorithm: str,
    seed: int,
    steps: int,
    config: dict[str, Any] | None = None,
) -> str:
    """What a trial's directory holds: ``"new"`` (nothing), ``"resume"`` or ``"finished"``.

    ``"finished"``: ``summary.json`` is there with ``steps`` steps. ``"resume"``: ``config.json``
    without a summary (interrupted), or a summary with fewer steps (the budget grew). Raises
    :class:`PolicyfitError` when the directory holds a run of another algorithm or seed, of other
    values for the keys of ``config`` (compared after the algorithm's type conversion), or a
    finished run with more steps than asked.
    """
    run = RunDir(run_dir)
    summary = run.read_summary()
    stored = run.read_config()
    if summary is None and not stored:
        return "new"
    recorded = stored or summary or {}
    where = str(run.path)
    have_algo = recorded.get("algorithm")
    if have_algo is not None and have_algo != algorithm:
        from policyfit.algos.registry import get_algorithm

        if get_algorithm(algorithm).name != have_algo:
            raise PolicyfitError(
                f"holds a {have_algo} run, not {algorithm}; use another output directory",
                path=where,
                field="algorithm",
            )
    have_seed = recorded.get("seed")
    if have_seed is not None and have_seed != seed:
        raise PolicyfitError(
            f"holds the run of seed {have_seed}, not {seed}; use another output directory",
            path=where,
            field="seed",
        )
    if config and isinstance(stored.get("config"), dict):
        from policyfit.algos.registry import get_algorithm

        cls = get_algorithm(algorithm)
        wanted = cls.Config.from_dict(dict(config), algo=cls.name).to_dict()
        for key in config:
            have, want = _plain(stored["config"].get(key)), _plain(wanted[key])
            if have != want:
                raise PolicyfitError(
                    f"holds a run with {key}={have!r}, this trial asks {key}={want!r}; "
                    "use another output directory",
                    path=where,
                    field=f"config.{key}",
                )
    if summary is not None:
        done = summary.get("steps")
        if done == steps:
            return "finished"
        if isinstance(done, int) and done > steps:
            raise PolicyfitError(
                f"finished with {done} steps, more than the {steps} asked; use another output "
                "directory for a smaller budget",
                path=where,
                field="steps",
            )
    return "resume"


def run_trial(trial: dict[str, Any], trial_dir: str) -> dict[str, Any]:
    """Train one grid point into ``trial_dir`` (resuming an interrupted run); return its table row.

    ``trial`` is :meth:`Trial.to_dict` (``algorithm``, ``dataset``, ``seed``, ``steps``,
    ``eval_every``, ``eval_episodes``, ``config``), optionally with ``save_every`` and
    ``dataset_options`` (keyword arguments of :func:`policyfit.load_dataset`; when present the
    dataset is loaded here and handed to the trainer). Runs in a worker; also callable directly.
    Never raises for a failed training: the row says ``status: failed`` and ``error.txt`` holds
    the traceback.
    """
    import traceback

    run_dir = Path(trial_dir)
    try:
        state = run_state(
            run_dir,
            algorithm=trial["algorithm"],
            seed=trial["seed"],
            steps=trial["steps"],
            config=trial.get("config"),
        )
        if state == "finished":
            return {**read_run(run_dir), "status": "skipped"}
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / TRIAL_FILE, trial)
        _train(trial, run_dir, resume=state == "resume")
    except Exception as exc:  # recorded in the table; the sweep goes on
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / ERROR_FILE, traceback.format_exc())
        return failed_row(trial, run_dir, error_line(exc))
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    return read_run(run_dir)


def _train(trial: dict[str, Any], run_dir: Path, *, resume: bool) -> None:
    from policyfit.training.trainer import train

    dataset: Any = trial["dataset"]
    if trial.get("dataset_options") is not None:
        from policyfit.data.io import load_dataset

        dataset = load_dataset(dataset, **trial["dataset_options"])
    common: dict[str, Any] = {
        "steps": trial["steps"],
        "eval_every": trial["eval_every"],
        "eval_episodes": trial["eval_episodes"],
        "progress": False,
    }
    if trial.get("save_every") is not None:
        common["save_every"] = trial["save_every"]
    if trial.get("tensorboard"):
        common["tensorboard"] = True
    if resume:
        train(None, dataset, resume=run_dir, **common)
    else:
        config = dict(trial.get("config") or {})
        train(
            trial["algorithm"],
            dataset,
            seed=trial["seed"],
            config=config or None,
            out=run_dir,
            **common,
        )


def failed_row(trial: dict[str, Any], run_dir: str | Path, message: str) -> dict[str, Any]:
    """The table row of a trial that did not finish."""
    return {
        "trial_id": trial["trial_id"],
        "variant": trial["variant"],
        "algorithm": trial["algorithm"],
        "dataset": trial["dataset"],
        "seed": trial["seed"],
        "steps": trial["steps"],
        "status": "failed",
        "error": message,
        "run_dir": str(run_dir),
    }


def _row_of(trial: Trial, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    if outcome.status == "pending":
        return {**failed_row(trial.to_dict(), run_dir, ""), "status": "pending", "error": None}
    if outcome.status == "failed":
        return failed_row(trial.to_dict(), run_dir, outcome.error or "failed")
    row = dict(outcome.value)
    if row.get("status") == "skipped":  # finished between the check here and the worker's
        row["status"] = "done"
    return row


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    engine: str | None = None,
    jobs: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    trial_fn: TrialFn | None = None,
    log: Callable[[str], None] | None = None,
    reps: int = DEFAULT_REPS,
    progress: bool = False,
    stop_at: float | None = None,
) -> dict[str, Any]:
    """Run every unfinished trial of ``spec`` and write the results into ``out``.

    ``engine``: ``"local"`` (process pool, default) or ``"ray"`` (default when ``address`` is
    given); ``jobs``: trials side by side (local workers or the local Ray instance's CPUs;
    ``num_cpus`` is its older name). ``trial_fn(trial_dict, trial_dir) -> row`` replaces
    :func:`run_trial` (it must be importable by name in the workers). ``stop_at``: a
    :func:`time.time` after which no trial starts (those stay ``pending``). Returns the summary
    (``ran``, ``skipped``, ``failed``, ``pending``, ``rows``, ``cells``, ``aggregates``, ``score``,
    ``out``, ``engine``, ``wall_seconds``).
    """
    engine = resolve_engine(engine, address)
    jobs = jobs if jobs is not None else num_cpus
    out = Path(out)
    trials_dir = out / "trials"
    ensure_dir(out)
    trials_dir.mkdir(parents=True, exist_ok=True)
    write_json(out / "spec.json", spec.to_dict())
    say = log or (lambda _msg: None)
    fn = trial_fn or run_trial
    trials: list[Trial] = expand_trials(spec)
    t0 = time.perf_counter()

    rows: dict[str, dict[str, Any]] = {}
    pending: list[Trial] = []
    refused = 0
    for t in trials:
        run_dir = trials_dir / t.trial_id
        try:
            state = run_state(
                run_dir, algorithm=t.algorithm, seed=t.seed, steps=t.steps, config=t.config
            )
        except PolicyfitError as exc:
            rows[t.trial_id] = failed_row(t.to_dict(), run_dir, exc.one_line())
            refused += 1
            continue
        if state == "finished":
            rows[t.trial_id] = {**read_run(run_dir), "status": "done"}
        else:
            pending.append(t)
    skipped = len(trials) - len(pending) - refused
    say(
        f"{len(trials)} trials: {skipped} finished before (skipped), {len(pending)} to run"
        + (f", {refused} refused (the directory holds another run)" if refused else "")
        + (f" ({engine} engine)" if pending else "")
    )

    def report(index: int, outcome: Outcome) -> None:
        t = pending[index]
        row = rows[t.trial_id] = _row_of(t, trials_dir / t.trial_id, outcome)
        score = row.get("final_normalized_score")
        if score is None:
            score = row.get("final_return_mean")
        shown = f"score {score:.1f}" if isinstance(score, int | float) else row.get("error") or ""
        finished = sum(1 for p in pending if p.trial_id in rows)
        say(f"[{finished}/{len(pending)}] {t.trial_id}: {row['status']} {shown}".rstrip())

    run_trials(
        fn,
        [(t.to_dict(), str(trials_dir / t.trial_id)) for t in pending],
        engine=engine,
        jobs=jobs,
        address=address,
        stop_at=stop_at,
        on_result=report,
        progress=progress,
        description="sweep",
    )

    ordered = [rows[t.trial_id] for t in trials]
    summary = write_results(out, ordered, reps=reps)
    return {
        "out": str(out),
        "engine": engine,
        "trials": len(trials),
        "ran": sum(1 for t in pending if rows[t.trial_id]["status"] != "pending"),
        "skipped": skipped,
        "pending": sum(1 for r in ordered if r["status"] == "pending"),
        "wall_seconds": time.perf_counter() - t0,
        "rows": ordered,
        **summary,
    }
