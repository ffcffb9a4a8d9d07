"""Results of many runs: one table row per run, per-cell intervals and Agarwal et al. aggregates.

Used by ``policyfit sweep`` (after the trials) and ``policyfit compare RUN ...``. A run is a
directory with ``summary.json`` (written by :func:`policyfit.train` at the end); a sweep's trials
also carry ``trial.json`` (its grid point), whose ``variant`` (``iql[expectile=0.9]``) groups seeds.

* per ``(variant, dataset)`` cell: seeds, mean and std of the score and a 95% percentile bootstrap
  interval over seeds (:func:`policyfit.evaluation.stats.bootstrap_ci`);
* per variant over datasets: mean, median, IQM and optimality gap with stratified-bootstrap
  intervals (datasets are the strata, seeds are resampled within each;
  :func:`policyfit.evaluation.stats.aggregate_scores`).

Example:
    >>> rows = [{"variant": "bc", "algorithm": "bc", "dataset": "d", "seed": s,
    ...          "final_normalized_score": v} for s, v in enumerate([40.0, 50.0, 60.0])]
    >>> summarize_rows(rows, reps=200)["cells"][0]["mean"]
    50.0
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import (
    atomic_write_bytes,
    atomic_write_text,
    ensure_dir,
    read_json,
    write_json,
)
from policyfit.errors import PolicyfitError
from policyfit.evaluation.stats import (
    DEFAULT_REPS,
    aggregate_scores,
    bootstrap_ci,
    figure_png_bytes,
    format_interval,
    performance_profile,
    plot_performance_profiles,
)
from policyfit.training.rundir import RunDir

TABLE_COLUMNS = (
    "trial_id",
    "variant",
    "algorithm",
    "dataset",
    "seed",
    "steps",
    "status",
    "final_normalized_score",
    "best_normalized_score",
    "final_return_mean",
    "wall_seconds",
    "run_dir",
)
SCORE_KEYS = ("final_normalized_score", "final_return_mean")


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One table row from a finished run directory (``summary.json``, plus ``trial.json`` if any)."""
    run = RunDir(run_dir)
    summary = run.read_summary()
    if summary is None:
        hint = "the run has not finished" if run.config_path.is_file() else "not a run directory"
        raise PolicyfitError(f"no summary.json ({hint})", path=str(run.path), field="run")
    trial_path = run.path / "trial.json"
    trial = read_json(trial_path) if trial_path.is_file() else {}
    if not isinstance(trial, dict):
        raise PolicyfitError("not a JSON object", path=str(trial_path))
    run_dir = run.path
    return {
        "trial_id": trial.get("trial_id", run_dir.name),
        "variant": trial.get("variant", summary.get("algorithm")),
        "algorithm": summary.get("algorithm"),
        "dataset": trial.get("dataset", summary.get("dataset")),
        "seed": summary.get("seed"),
        "steps": summary.get("steps"),
        "status": "done",
        "final_normalized_score": summary.get("final_normalized_score"),
        "best_normalized_score": summary.get("best_normalized_score"),
        "final_return_mean": summary.get("final_return_mean"),
        "wall_seconds": summary.get("wall_seconds"),
        "run_dir": str(run_dir),
    }


def expand_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories from the arguments: a sweep output directory stands for all its trials."""
    out: list[Path] = []
    for p in map(Path, paths):
        if RunDir(p).exists():
            out.append(p)
        elif (p / "trials").is_dir():
            out.extend(
                sorted(d for d in (p / "trials").iterdir() if RunDir(d).summary_path.is_file())
            )
        else:
            raise PolicyfitError("not a run directory or sweep output", path=str(p), field="run")
    if not out:
        raise PolicyfitError("no finished runs found", field="run")
    return out


def _score_key(rows: Sequence[dict[str, Any]]) -> str:
    """Normalized score when every finished row has one, else the raw return."""
    done = [r for r in rows if r.get("status", "done") == "done"]
    if done and all(r.get("final_normalized_score") is not None for r in done):
        return "final_normalized_score"
    return "final_return_mean"


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def summarize_rows(
    rows: Sequence[dict[str, Any]], *, reps: int = DEFAULT_REPS, seed: int = 0
) -> dict[str, Any]:
    """Per-cell intervals and per-variant aggregates of finished rows (see the module docstring)."""
    score = _score_key(rows)
    done = [r for r in rows if r.get("status", "done") == "done" and _finite(r.get(score))]
    cells: dict[tuple[str, str], list[float]] = {}
    for r in done:
        cells.setdefault((r["variant"], r["dataset"]), []).append(float(r[score]))
    cell_rows = []
    for (variant, dataset), values in sorted(cells.items()):
        lo, hi = bootstrap_ci(values, reps=reps, seed=seed)
        cell_rows.append(
            {
                "variant": variant,
                "dataset": dataset,
                "seeds": len(values),
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    by_variant: dict[str, list[list[float]]] = {}
    for (variant, _dataset), values in sorted(cells.items()):
        by_variant.setdefault(variant, []).append(values)
    aggregates = aggregate_scores(by_variant, reps=reps, seed=seed) if by_variant else {}
    return {
        "score": score,
        "runs": len(done),
        "failed": sum(1 for r in rows if r.get("status") == "failed"),
        "cells": cell_rows,
        "aggregates": aggregates,
        "tasks": {v: len(t) for v, t in by_variant.items()},
    }


def profiles_png(rows: Sequence[dict[str, Any]], *, reps: int = DEFAULT_REPS) -> bytes | None:
    """Performance profiles (per variant, over datasets x seeds) as PNG; None without results."""
    score = _score_key(rows)
    by_variant: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r.get("status", "done") == "done" and _finite(r.get(score)):
            by_variant.setdefault(r["variant"], {}).setdefault(r["dataset"], []).append(
                float(r[score])
            )
    if not by_variant:
        return None
    tables = {v: list(d.values()) for v, d in by_variant.items()}
    label = "normalized score τ" if score == "final_normalized_score" else "return τ"
    return figure_png_bytes(
        plot_performance_profiles(performance_profile(tables, reps=reps), xlabel=label)
    )


def markdown_report(rows: Sequence[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The results table and the aggregates as markdown."""
    score = summary["score"]
    lines = [
        f"## Runs ({summary['runs']} finished, {summary['failed']} failed; score: `{score}`)",
        "",
    ]
    lines.append("| trial | variant | dataset | seed | status | score | best | return |")
    lines.append("|---|---|---|---|---|---|---|---|")

    def num(x: Any) -> str:
        return f"{x:.1f}" if _finite(x) else "-"

    for r in rows:
        lines.append(
            f"| {r['trial_id']} | {r['variant']} | {r['dataset']} | {r['seed']} | {r['status']} | "
            f"{num(r.get(score))} | {num(r.get('best_normalized_score'))} | {num(r.get('final_return_mean'))} |"
        )
    lines += ["", "## Per dataset (mean [95% bootstrap CI over seeds])", ""]
    lines.append("| variant | dataset | seeds | mean [CI] | std |")
    lines.append("|---|---|---|---|---|")
    for c in summary["cells"]:
        lines.append(
            f"| {c['variant']} | {c['dataset']} | {c['seeds']} | "
            f"{format_interval(c['mean'], c['ci_low'], c['ci_high'])} | {c['std']:.1f} |"
        )
    lines += [
        "",
        "## Aggregates over datasets (95% stratified-bootstrap CI, Agarwal et al. 2021)",
        "",
        "| variant | datasets | mean | median | IQM | optimality gap |",
        "|---|---|---|---|---|---|",
    ]
    for variant, agg in summary["aggregates"].items():
        cells = [
            format_interval(agg[m]["estimate"], agg[m]["ci_low"], agg[m]["ci_high"])
            for m in ("mean", "median", "iqm", "optimality_gap")
        ]
        lines.append(f"| {variant} | {summary['tasks'][variant]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in TABLE_COLUMNS})
    return buf.getvalue()


def write_results(
    out: str | Path, rows: Sequence[dict[str, Any]], *, reps: int = DEFAULT_REPS
) -> dict[str, Any]:
    """Write ``results.md``, ``results.csv``, ``results.json`` and ``profiles.png`` into ``out``."""
    out = ensure_dir(out)
    summary = summarize_rows(rows, reps=reps)
    atomic_write_text(out / "results.md", markdown_report(rows, summary))
    atomic_write_text(out / "results.csv", rows_csv(rows))
    write_json(out / "results.json", {"rows": list(rows), **summary})
    png = profiles_png(rows, reps=reps)
    if png is not None:
        atomic_write_bytes(out / "profiles.png", png)
    return summary


def compare_runs(paths: Iterable[str | Path], *, reps: int = DEFAULT_REPS) -> dict[str, Any]:
    """Aggregate finished runs (or sweep outputs): ``{"rows", "score", "cells", "aggregates", ...}``.

    Example:
        >>> compare_runs(["runs/iql-hopper-medium-s0", "runs/iql-hopper-medium-s1"])  # doctest: +SKIP
    """
    rows = [read_run(p) for p in expand_run_dirs(paths)]
    return {"rows": rows, **summarize_rows(rows, reps=reps)}
