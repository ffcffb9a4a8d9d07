"""Reading training runs for reports: ``config.json``, ``metrics.jsonl``, ``summary.json``.

Read defensively: a run that is still going (no ``summary.json``), was killed mid-line (a torn last
line in ``metrics.jsonl``) or comes from an older trainer still gives what it has, with notes.

Example:
    >>> run = load_run("runs/iql-hopper-medium-s0")            # doctest: +SKIP
    >>> run.curve("eval/normalized_score")                       # doctest: +SKIP
    (array([ 5000, 10000]), array([41.2, 55.0]))
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.errors import PolicyfitError
from policyfit.training.rundir import METRICS_FILE, RunDir

SCORE_KEYS = ("eval/normalized_score", "eval/return_mean")


def is_run_dir(path: str | Path) -> bool:
    """A directory holding any of ``config.json`` / ``metrics.jsonl`` / ``summary.json``."""
    return RunDir(path).exists()


@dataclass
class Run:
    """One training run as a report sees it."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def algorithm(self) -> str | None:
        return self.config.get("algorithm") or self.summary.get("algorithm")

    @property
    def dataset(self) -> str | None:
        ds = self.config.get("dataset")
        if isinstance(ds, dict):
            return ds.get("name") or ds.get("source")
        return ds if isinstance(ds, str) else self.summary.get("dataset")

    def metric_keys(self) -> list[str]:
        keys: dict[str, None] = {}
        for row in self.metrics:
            keys.update(dict.fromkeys(k for k in row if k != "step"))
        return list(keys)

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Steps and finite values of one metric, in step order."""
        pts = [
            (row["step"], row[key])
            for row in self.metrics
            if isinstance(row.get(key), int | float)
            and isinstance(row.get("step"), int | float)
            and math.isfinite(row[key])
        ]
        pts.sort(key=lambda p: p[0])
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=np.float64)

    def score_key(self) -> str | None:
        """The metric to compare runs by: normalized score when present, else mean return."""
        for key in SCORE_KEYS:
            if len(self.curve(key)[0]):
                return key
        return None

    def loss_keys(self) -> list[str]:
        keys = [k for k in self.metric_keys() if "loss" in k.lower()]
        return keys or [k for k in self.metric_keys() if k.startswith("train/")][:6]

    def final_and_best(self) -> tuple[float | None, float | None]:
        """Final and best normalized score (summary.json first, else the metrics)."""
        final, best = (
            self.summary.get("final_normalized_score"),
            self.summary.get("best_normalized_score"),
        )
        if final is None or best is None:
            key = self.score_key()
            if key is not None:
                _, values = self.curve(key)
                final = values[-1] if final is None else final
                best = values.max() if best is None else best
        return (
            None if final is None else float(final),
            None if best is None else float(best),
        )


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        notes.append(f"{path.name} missing")
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} unreadable ({exc})")
        return {}
    if not isinstance(value, dict):
        notes.append(f"{path.name} is not a JSON object")
        return {}
    return value


def load_run(path: str | Path) -> Run:
    """Read a run directory; raises only when it is not a run directory at all."""
    run = RunDir(path)
    if not run.exists():
        raise PolicyfitError(
            "not a run directory (no config.json, metrics.jsonl or summary.json)",
            path=str(run.path),
            field="run",
        )
    notes: list[str] = []
    config = _read_json(run.config_path, notes)
    summary = _read_json(run.summary_path, notes)
    metrics, bad = run.read_metrics()
    if not run.metrics_path.is_file():
        notes.append(f"{METRICS_FILE} missing")
    if bad:
        notes.append(f"{bad} unreadable line(s) in {METRICS_FILE} skipped")
    return Run(run.path, config, metrics, summary, notes)
