"""Where policyfit keeps generated data and caches: ``$POLICYFIT_HOME`` (default ``~/.cache/policyfit``)."""

from __future__ import annotations

import os
from pathlib import Path

from policyfit.errors import PolicyfitError


def home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("POLICYFIT_HOME", Path.home() / ".cache" / "policyfit")).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # paths sits beside common (no import of common.files here)
        raise PolicyfitError(
            f"cannot create the cache directory: {exc.strerror or exc}; set POLICYFIT_HOME to a "
            "writable directory",
            path=str(root),
            field="POLICYFIT_HOME",
        ) from None
    return root


def datasets_dir() -> Path:
    """Built-in suite datasets (Minari layout) live here."""
    path = home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path
