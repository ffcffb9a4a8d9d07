"""Shared by every benchmark: where results go and what each result records about the run."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PACKAGES = (
    "policyfit",
    "numpy",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "h5py",
    "minari",
    "gymnasium",
    "mujoco",
)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
    }


def cpu_kind() -> str:
    """A short, file-name-safe CPU family for per-machine results: ``amd-epyc``, ``intel-xeon``..."""
    cpu = machine()["cpu"].lower()
    for vendor, family in (("amd", "epyc"), ("amd", "ryzen"), ("intel", "xeon"), ("intel", "core")):
        if vendor in cpu and family in cpu:
            return f"{vendor}-{family}"
    words = [w for w in "".join(c if c.isalnum() else " " for c in cpu).split() if w]
    return "-".join(words[:2]) or "unknown-cpu"


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    for name in PACKAGES + extra:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_result(name: str, payload: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (or ``directory/<name>.json``) atomically with
    machine, versions and commit."""
    directory = RESULTS_DIR if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
        **payload,
    }
    return write_text(directory / f"{name}.json", json.dumps(record, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> Path:
    """Write ``path`` through a temporary file and a rename: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


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
