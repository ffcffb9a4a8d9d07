"""Versions of the libraries that shape generated data, trained policies and results.

Example:
    >>> versions = library_versions()
    >>> sorted(versions)[:3], versions["python"].count(".")
    (['flax', 'gymnasium', 'jax'], 2)
"""

from __future__ import annotations

import importlib.metadata
import platform

LIBRARIES = (
    "policyfit",
    "numpy",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "gymnasium",
    "mujoco",
    "minari",
)


def library_versions() -> dict[str, str]:
    """``{"python": ..., library: version or "not installed"}`` for :data:`LIBRARIES`."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
