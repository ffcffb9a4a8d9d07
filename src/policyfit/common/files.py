"""The one atomic writer and the one JSON encoder of policyfit.

Every file policyfit writes (datasets, run directories, results) goes through
:func:`atomic_write_bytes`: the bytes go to a temporary file in the same directory, are flushed to
disk, and the temporary file is renamed over the target, so a crash never leaves a half-written
file. An output the OS refuses (a read-only folder, ``/proc/...``, a full disk) is a
:class:`~policyfit.errors.PolicyfitError` naming the path (:func:`output_error`);
:func:`ensure_dir` checks a directory before long work. The file gets the mode a plain ``open(path, "w")`` would give it (``0o666`` minus the umask),
not the ``0o600`` of :func:`tempfile.mkstemp`, so a colleague can read what you saved.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.json"
    >>> _ = write_json(path, {"x": 1})
    >>> path.read_text()
    '{\\n  "x": 1\\n}'
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.errors import PolicyfitError


def output_error(
    path: str | Path, exc: OSError, field: str = "out", where: str | Path | None = None
) -> PolicyfitError:
    """The one-line error for an output ``path`` the OS refused (``exc``), naming ``field``;
    ``where``: the folder that refused, when not the one in ``exc``."""
    reason = exc.strerror or type(exc).__name__
    place = str(where or exc.filename or "")
    where = f" ({place})" if place and place != str(path) else ""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        advice = "a file stands where a directory is needed; remove it or choose another location"
    elif isinstance(exc, PermissionError):
        advice = "choose a writable location or fix its permissions"
    else:
        advice = "choose a writable location"
    return PolicyfitError(
        f"cannot write here: {reason}{where}; {advice}", path=str(path), field=field
    )


def ensure_dir(path: str | Path, field: str = "out") -> Path:
    """Create directory ``path`` (and its parents) if needed and check that a file can be
    created in it; a :class:`~policyfit.errors.PolicyfitError` naming ``path`` and ``field``
    (the CLI's ``error: <path>: out: ...``, exit 2) when the OS refuses.

    Commands call it where an output is first created, before any long work, so an unwritable
    ``--out`` fails in a second, not after hours of training.

    Example:
        >>> ensure_dir("/proc/policyfit-forbidden/x")
        Traceback (most recent call last):
        ...
        policyfit.errors.PolicyfitError: /proc/policyfit-forbidden/x: out: cannot write here: ...
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc, field) from None
    _probe(path, path, field)
    return path


def _probe(directory: Path, path: Path, field: str) -> None:
    """Create and remove a file in ``directory``; an OS refusal is the error for ``path``."""
    try:
        with tempfile.TemporaryFile(prefix=".policyfit-probe-", dir=directory):
            pass
    except OSError as exc:
        raise output_error(path, exc, field, where=directory) from None


def check_writable(path: str | Path, field: str = "out") -> Path:
    """Check, before long work, that the output ``path`` (a file, or a directory to create or
    write into) could be written, creating nothing: a file is created and removed in ``path``
    when it is a directory, else in its nearest existing ancestor. A
    :class:`~policyfit.errors.PolicyfitError` naming ``path`` and ``field`` otherwise.

    Example:
        >>> check_writable("/proc/policyfit-forbidden/run")
        Traceback (most recent call last):
        ...
        policyfit.errors.PolicyfitError: /proc/policyfit-forbidden/run: out: cannot write here: ...
    """
    path = Path(path)
    probe = path.absolute()
    if not probe.is_dir():
        probe = probe.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        error = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(probe))
        raise output_error(path, error, field)
    _probe(probe, path, field)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary path next to ``path``, then rename it to ``path``.

    For writers that need a file name (h5py, numpy, Minari): the file is only visible under its
    final name once complete. The parent directory is created if needed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npz(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` to ``path`` atomically (no ``.npz`` is added
    to the name, unlike ``np.savez`` given a path)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for what policyfit stores: numpy scalars/arrays, sets (as lists),
    paths; anything else as its ``str``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, set | frozenset):
        return list(obj)
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    return str(obj)


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data (dicts with str keys, lists, str, int, float, bool, None).

    Containers are converted recursively, everything else as by :func:`json_default`; NaN and
    infinite floats become None, so the result is strict JSON.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return json_default(obj)


def dumps(data: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON text with :func:`json_default` (``indent=None``: one line, as in ``.jsonl`` files)."""
    return json.dumps(data, indent=indent, default=json_default, sort_keys=sort_keys)


def write_json(
    path: str | Path, data: Any, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """Write ``data`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, dumps(data, indent=indent, sort_keys=sort_keys))


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a :class:`~policyfit.errors.PolicyfitError` names the file if it is bad."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise PolicyfitError(f"not valid JSON: {exc}", path=str(path)) from None
