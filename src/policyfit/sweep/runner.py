"""Run a sweep: every trial is a Ray task that calls :func:`policyfit.train`.

* Ray runs locally with this machine's CPUs (one CPU per trial) unless ``address`` names an existing
  cluster (``ray start --head`` elsewhere, then ``--address HOST:PORT`` or ``auto``); on a cluster every
  node needs policyfit installed and the datasets reachable by the same names or paths.
* Trial ``t`` lives in ``OUT/trials/<trial_id>/`` — a normal run directory plus ``trial.json``. A trial
  whose ``summary.json`` exists is finished and skipped on re-run; one with ``config.json`` but no
  summary was interrupted and resumes from its last checkpoint (exact continuation, see the trainer).
* A trial that raises is recorded as ``failed`` (message in ``error.txt`` and the table); the others go
  on. The results (``results.md``, ``results.csv``, ``results.json``, ``profiles.png``) are written
  when all trials are done.

Example:
    >>> from policyfit.sweep import run_sweep, read_spec
    >>> result = run_sweep(read_spec("sweep.yaml"), "sweeps/demo")      # doctest: +SKIP
    >>> result["ran"], result["skipped"], result["aggregates"]["iql"]["iqm"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policyfit.errors import PolicyfitError
from policyfit.evaluation.stats import DEFAULT_REPS
from policyfit.sweep.results import read_run, write_results
from policyfit.sweep.spec import SweepSpec, Trial, expand_trials

TrialFn = Callable[[dict[str, Any], str], dict[str, Any]]

# One XLA thread per trial: Ray gives each trial one CPU, and JAX's default thread pool would make
# concurrent trials fight over every core.
WORKER_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def run_trial(trial: dict[str, Any], trial_dir: str) -> dict[str, Any]:
    """Train one grid point into ``trial_dir`` (resuming an interrupted run); return its table row.

    Runs inside a Ray worker; also callable directly. Never raises for a failed training: the row
    says ``status: failed`` and ``error.txt`` holds the traceback.
    """
    from policyfit.training.trainer import train

    run_dir = Path(trial_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "trial.json").write_text(json.dumps(trial, indent=2))
    if (run_dir / "summary.json").is_file():
        return {**read_run(run_dir), "status": "skipped"}
    try:
        if (run_dir / "config.json").is_file():
            train(
                None,
                None,
                steps=trial["steps"],
                resume=run_dir,
                eval_every=trial["eval_every"],
                eval_episodes=trial["eval_episodes"],
                progress=False,
            )
        else:
            train(
                trial["algorithm"],
                trial["dataset"],
                steps=trial["steps"],
                seed=trial["seed"],
                config=dict(trial["config"]) or None,
                out=run_dir,
                eval_every=trial["eval_every"],
                eval_episodes=trial["eval_episodes"],
                progress=False,
            )
    except Exception as exc:  # recorded in the table; the sweep goes on
        (run_dir / "error.txt").write_text(traceback.format_exc())
        return failed_row(trial, run_dir, exc)
    return read_run(run_dir)


def failed_row(trial: dict[str, Any], run_dir: Path, exc: BaseException) -> dict[str, Any]:
    message = exc.one_line() if isinstance(exc, PolicyfitError) else f"{type(exc).__name__}: {exc}"
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


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start a local instance; True when we started it (and stop it)."""
    try:
        import ray
    except ImportError:
        raise PolicyfitError(
            "Ray is not installed; install the extra: pip install 'policyfit[ray]'", field="ray"
        ) from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        kwargs["runtime_env"] = {"env_vars": dict(WORKER_ENV)}
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PolicyfitError(
            f"cannot start or reach Ray: {exc}", path=address, field="address"
        ) from None
    return True


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    trial_fn: TrialFn | None = None,
    log: Callable[[str], None] | None = None,
    reps: int = DEFAULT_REPS,
) -> dict[str, Any]:
    """Run every unfinished trial of ``spec`` as a Ray task and write the results into ``out``.

    ``trial_fn(trial_dict, trial_dir) -> row`` replaces :func:`run_trial` (for tests and custom
    trials). Returns the summary (``ran``, ``skipped``, ``failed``, ``rows``, ``cells``,
    ``aggregates``, ``score``, ``out``, ``wall_seconds``).
    """
    out = Path(out)
    trials_dir = out / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(json.dumps(spec.to_dict(), indent=2))
    say = log or (lambda _msg: None)
    fn = trial_fn or run_trial
    trials: list[Trial] = expand_trials(spec)
    t0 = time.perf_counter()

    rows: dict[str, dict[str, Any]] = {}
    pending: list[Trial] = []
    for t in trials:
        if (trials_dir / t.trial_id / "summary.json").is_file():
            rows[t.trial_id] = {**read_run(trials_dir / t.trial_id), "status": "done"}
        else:
            pending.append(t)
    skipped = len(trials) - len(pending)
    say(f"{len(trials)} trials: {skipped} finished before (skipped), {len(pending)} to run")

    if pending:
        import ray

        started = _start_ray(address, num_cpus)
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(fn)
            futures = {remote.remote(t.to_dict(), str(trials_dir / t.trial_id)): t for t in pending}
            waiting = list(futures)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                t = futures[ready[0]]
                try:
                    row = ray.get(ready[0])
                except Exception as exc:  # the worker itself died
                    row = failed_row(t.to_dict(), trials_dir / t.trial_id, exc)
                if row.get("status") == "skipped":
                    row["status"] = "done"
                rows[t.trial_id] = row
                score = row.get("final_normalized_score")
                shown = (
                    f"score {score:.1f}" if isinstance(score, int | float) else row.get("error", "")
                )
                say(
                    f"[{len(futures) - len(waiting)}/{len(pending)}] {t.trial_id}: {row['status']} {shown}"
                )
        finally:
            if started:
                ray.shutdown()

    ordered = [rows[t.trial_id] for t in trials]
    summary = write_results(out, ordered, reps=reps)
    return {
        "out": str(out),
        "trials": len(trials),
        "ran": len(pending),
        "skipped": skipped,
        "wall_seconds": time.perf_counter() - t0,
        "rows": ordered,
        **summary,
    }
