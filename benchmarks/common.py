"""Shared by every benchmark: where results go and what each result records about the run.

Files are written with :func:`policyfit.common.files.atomic_write_text` (and the other
``atomic_write*``), the one atomic writer; provenance comes from :mod:`policyfit.common.versions`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from policyfit.common.files import atomic_write_text, dumps
from policyfit.common.versions import git_state, library_versions, machine_info

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The checkout's commit, ``-dirty`` when tracked files changed (``"unknown"`` without git)."""
    state = git_state(Path(__file__))
    if state["commit"] is None:
        return "unknown"
    return state["commit"] + ("-dirty" if state["dirty"] else "")


def machine() -> dict[str, Any]:
    """The machine a result was measured on: :func:`policyfit.common.versions.machine_info`."""
    return machine_info()


def cpu_kind() -> str:
    """A short, file-name-safe CPU family for per-machine results: ``amd-epyc``, ``intel-xeon``..."""
    cpu = machine()["cpu"].lower()
    for vendor, family in (("amd", "epyc"), ("amd", "ryzen"), ("intel", "xeon"), ("intel", "core")):
        if vendor in cpu and family in cpu:
            return f"{vendor}-{family}"
    words = [w for w in "".join(c if c.isalnum() else " " for c in cpu).split() if w]
    return "-".join(words[:2]) or "unknown-cpu"


def write_text(path: Path, text: str) -> Path:
    """Write ``path`` atomically: :func:`policyfit.common.files.atomic_write_text`."""
    return atomic_write_text(path, text)


def write_result(name: str, payload: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``directory/<name>.json``) atomically with
    machine, versions and commit (:mod:`policyfit.common.versions`)."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    record = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "versions": library_versions(),
        **payload,
    }
    return atomic_write_text(directory / f"{name}.json", dumps(record, indent=2) + "\n")


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``["cql.bc_steps=3000", ...]`` -> ``{"cql": {"bc_steps": "3000"}}`` (``--set`` options).

    Values stay strings: ``policyfit.train`` coerces them to each config field's type.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        algo, dot, key = target.partition(".")
        if not sep or not dot or not algo or not key:
            raise SystemExit(f"--set {item}: expected ALGO.KEY=VALUE, e.g. cql.bc_steps=3000")
        out.setdefault(algo, {})[key] = value
    return out


def train_or_resume(
    algo: str,
    dataset: Any,
    run_dir: Path,
    steps: int,
    seed: int,
    eval_every: int,
    save_every: int,
    eval_episodes: int = 10,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A benchmark trial: read a finished run's summary, resume a killed one, else start it.

    ``dataset`` may be a callable returning the dataset, so finished runs never load their data.
    """
    import policyfit
    from policyfit.training.rundir import RunDir

    run = RunDir(run_dir)
    summary = run.read_summary()
    if summary is not None and summary["steps"] >= steps:
        return summary
    resume = run_dir if run.config_path.is_file() else None
    return policyfit.train(
        None if resume else algo,
        dataset() if callable(dataset) else dataset,
        steps=steps,
        seed=seed,
        config=None if resume else config,
        out=None if resume else run_dir,
        resume=resume,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        save_every=save_every,
        progress=False,
    ).summary
