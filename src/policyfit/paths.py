"""Where policyfit keeps generated data and caches: ``$POLICYFIT_HOME`` (default ``~/.cache/policyfit``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("POLICYFIT_HOME", Path.home() / ".cache" / "policyfit")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def datasets_dir() -> Path:
    """Built-in suite datasets (Minari layout) live here."""
    path = home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path
