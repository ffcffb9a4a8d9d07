"""MuJoCo's C-level warnings, routed into Python's ``warnings`` as :class:`LibraryWarning`.

Left alone, MuJoCo prints each warning to the terminal — e.g. gymnasium's MuJoCo models set
``settotalmass``, deprecated in MuJoCo 3.x, which printed six times in the middle of the quickstart
— and appends it to ``MUJOCO_LOG.TXT`` in the current directory. Routed through ``warnings``,
they are filtered like any library warning: the CLI shows them under ``--debug`` only, and a Python
user keeps them (``warnings.simplefilter``) or drops them as they choose.

Example:
    >>> route_mujoco_warnings()
    >>> route_mujoco_warnings()  # idempotent
"""

from __future__ import annotations

import functools
import warnings

from policyfit.errors import LibraryWarning


def _to_python_warning(message: str) -> None:
    warnings.warn(f"MuJoCo: {message.strip()}", LibraryWarning, stacklevel=2)


@functools.cache
def route_mujoco_warnings() -> None:
    """Install the handler once per process (a no-op when MuJoCo is not installed)."""
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(_to_python_warning)
