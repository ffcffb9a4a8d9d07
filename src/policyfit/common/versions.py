"""Provenance: the library versions and the machine behind generated data, runs and results.

One package list (:data:`LIBRARIES`) for everything policyfit records: run directories
(``config.json``), generated datasets (the card's ``library_versions``), behavior-policy runs and the
benchmarks' result files (``versions``, ``machine``).

Example:
    >>> versions = library_versions()
    >>> sorted(versions)[:3], versions["python"].count(".")
    (['flax', 'gymnasium', 'h5py'], 2)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LIBRARIES = (
    "policyfit",
    "numpy",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "h5py",
    "gymnasium",
    "mujoco",
    "minari",
)
NOT_INSTALLED = "not installed"


def library_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """``{"python": ..., library: version or "not installed"}`` for :data:`LIBRARIES` + ``extra``."""
    out = {"python": platform.python_version()}
    for name in (*LIBRARIES, *(n for n in extra if n not in LIBRARIES)):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`, else ``""``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def machine_info() -> dict[str, Any]:
    """Host name, platform, Python version, CPU model and count."""
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: this
    package), ``None`` values outside a checkout or without git. ``dirty`` ignores untracked files.

    >>> sorted(git_state())
    ['commit', 'dirty']
    """
    import subprocess

    where = str(Path(path if path is not None else __file__).resolve().parent)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", where, *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}
