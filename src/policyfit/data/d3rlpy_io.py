"""d3rlpy's dataset layout: what ``MDPDataset.dump`` / ``ReplayBuffer.dump`` write (d3rlpy 2.x).

d3rlpy 2.x writes one HDF5 file with one dataset per column and episode, plus three bookkeeping
keys (checked against d3rlpy 2.8.1's ``d3rlpy/dataset/io.py``)::

    columns          [4] bytes   b"observations", b"actions", b"rewards", b"terminated"
    num_episodes     ()  int64   E
    version          ()  bytes   b"2.1"
    observations_i   [T_i, obs_dim]   the states the actions were taken in (no final state)
    actions_i        [T_i, act_dim]   float; discrete actions as integers of shape [T_i, 1]
    rewards_i        [T_i, 1]
    terminated_i     ()  bool    the episode ended in a terminal state (else: it was cut)

Tuple observations are stored as ``observations_i_j``; policyfit reads flat vectors only.

Read into policyfit's flat arrays: episode ``i`` becomes ``T_i`` rows; its last row is a terminal
when ``terminated_i``, else a timeout (d3rlpy never learns from the last step of a cut episode,
whose next state it does not have). Next observations are ``s_{t+1}`` inside an episode; at an
episode's end d3rlpy has none, so the validator repeats ``s_T`` there (masked for terminals) and
records ``derived_next_observations``. Integer actions (any width, ``[T, 1]`` or ``[T]``) are
discrete actions, as d3rlpy detects them; float actions are continuous.

policyfit writes the same layout (d3rlpy's ``ReplayBuffer.load`` reads it) and adds what d3rlpy
has no place for, under names d3rlpy ignores: the true next observations per episode
(``policyfit_next_observations_i``), per-transition extra arrays (group
``policyfit_extra_arrays``) and the metadata (JSON attribute ``policyfit_metadata``).

This module knows only the layout; :mod:`policyfit.data.io` opens the file and builds the
:class:`~policyfit.data.dataset.Dataset`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.data.dataset import Dataset
from policyfit.errors import DatasetError

D3RLPY_VERSION = "2.1"  # the layout version d3rlpy 2.1 .. 2.8 writes
REQUIRED_COLUMNS = ("observations", "actions", "rewards", "terminated")
NEXT_OBS_PREFIX = "policyfit_next_observations_"
EXTRA_GROUP = "policyfit_extra_arrays"
_EPISODE_KEY = re.compile(r"^(?P<column>.+)_(?P<index>\d+)$")


def looks_like_d3rlpy(keys: set[str]) -> bool:
    """The root keys of an HDF5 file are d3rlpy's per-episode layout (not flat D4RL keys)."""
    if "observations" in keys:
        return False
    return "num_episodes" in keys or "columns" in keys or "observations_0" in keys


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    return value if isinstance(value, str) else None


def read_columns(f: Any, path: Path) -> list[str]:
    """The ``columns`` dataset as a list of names, with the four d3rlpy needs."""
    if "columns" not in f:
        raise DatasetError(
            "d3rlpy layout without the 'columns' key (the list of per-episode arrays); "
            "re-save it with d3rlpy's dump()",
            path=str(path),
            field="columns",
        )
    raw = np.asarray(f["columns"][()])
    names = [_text(v) for v in raw.reshape(-1)] if raw.ndim <= 1 else [None]
    if not names or any(n is None for n in names):
        raise DatasetError(
            f"must be a list of column names (strings), found {raw.dtype} of shape {raw.shape}",
            path=str(path),
            field="columns",
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DatasetError(
            f"lacks {', '.join(missing)} (has {', '.join(map(str, names))}); a d3rlpy dataset "
            f"needs {', '.join(REQUIRED_COLUMNS)}",
            path=str(path),
            field="columns",
        )
    return [str(n) for n in names]


def read_num_episodes(f: Any, path: Path) -> int:
    """``num_episodes`` as an int >= 1, checked against the episodes the file holds."""
    if "num_episodes" not in f:
        raise DatasetError(
            "d3rlpy layout without the 'num_episodes' key; re-save it with d3rlpy's dump()",
            path=str(path),
            field="num_episodes",
        )
    raw = np.asarray(f["num_episodes"][()])
    if raw.shape != () or raw.dtype.kind not in "iu":
        raise DatasetError(
            f"must be one integer, found {raw.dtype} of shape {raw.shape}",
            path=str(path),
            field="num_episodes",
        )
    n = int(raw)
    if n < 1:
        raise DatasetError(
            f"is {n}: the dataset holds no episodes", path=str(path), field="num_episodes"
        )
    held = {
        int(m.group("index"))
        for key in f
        if (m := _EPISODE_KEY.match(key)) and m.group("column") == "observations"
    }
    beyond = sorted(i for i in held if i >= n)
    if beyond:
        raise DatasetError(
            f"is {n} but the file also holds observations_{beyond[0]}; the file is inconsistent "
            "(a partial or hand-edited dump?)",
            path=str(path),
            field="num_episodes",
        )
    return n


def read_version(f: Any, path: Path) -> str | None:
    """``version`` (None when absent); d3rlpy's obsolete 2.0 layout is refused, as d3rlpy does."""
    if "version" not in f:
        return None
    version = _text(f["version"][()])
    if version is None:
        raise DatasetError("must be a string such as '2.1'", path=str(path), field="version")
    if version == "2.0" or not version.startswith("2."):
        raise DatasetError(
            f"d3rlpy layout version {version!r} is not supported (d3rlpy 2.x writes "
            f"{D3RLPY_VERSION!r}; 2.0 is obsolete even for d3rlpy); re-save with d3rlpy >= 2.1",
            path=str(path),
            field="version",
        )
    return version


def _episode_array(f: Any, column: str, i: int, n: int, path: Path) -> np.ndarray:
    key = f"{column}_{i}"
    if key not in f:
        if f"{key}_0" in f:
            raise DatasetError(
                f"episode {i} stores tuple {column} ({key}_0, {key}_1, ...); policyfit reads "
                "flat vectors only: concatenate them into one array per step",
                path=str(path),
                field=key,
            )
        raise DatasetError(
            f"is missing (num_episodes is {n}); the file is truncated or inconsistent",
            path=str(path),
            field=key,
        )
    arr = np.asarray(f[key][()])
    if arr.dtype.kind not in "biuf":
        raise DatasetError(
            f"has dtype {arr.dtype}; d3rlpy datasets hold numbers", path=str(path), field=key
        )
    return arr


def _terminated(f: Any, i: int, n: int, path: Path) -> bool:
    value = _episode_array(f, "terminated", i, n, path)
    if value.size != 1 or not np.isfinite(value).all() or value.reshape(-1)[0] not in (0, 1):
        raise DatasetError(
            f"must be one flag (True/False or 0/1), found {value.reshape(-1)[:3].tolist()} "
            f"of shape {value.shape}",
            path=str(path),
            field=f"terminated_{i}",
        )
    return bool(value.reshape(-1)[0])


def _read_episode(
    f: Any, i: int, n: int, extra_columns: list[str], path: Path
) -> dict[str, np.ndarray]:
    """Episode ``i``: its arrays (``T`` rows each) and its end flag, checked for consistency."""
    ep = {c: _episode_array(f, c, i, n, path) for c in ("observations", "actions", "rewards")}
    for column, arr in ep.items():
        if arr.ndim == 0:
            raise DatasetError(
                "is a scalar; expected one row per step", path=str(path), field=f"{column}_{i}"
            )
    t = ep["observations"].shape[0]
    if t == 0:
        raise DatasetError(
            "episode with 0 steps; d3rlpy never writes one (remove it)",
            path=str(path),
            field=f"observations_{i}",
        )
    for column in ("actions", "rewards"):
        if ep[column].shape[0] != t:
            raise DatasetError(
                f"has {ep[column].shape[0]} rows but observations_{i} has {t}; every array of "
                "an episode has one row per step",
                path=str(path),
                field=f"{column}_{i}",
            )
    ep["terminated"] = np.array(_terminated(f, i, n, path))
    nxt_key = f"{NEXT_OBS_PREFIX}{i}"
    if nxt_key in f:
        ep["next_observations"] = np.asarray(f[nxt_key][()])
    for column in extra_columns:
        key = f"{column}_{i}"
        if key in f:
            arr = np.asarray(f[key][()])
            if arr.ndim >= 1 and arr.shape[0] == t and arr.dtype.kind in "biuf":
                ep[f"extra:{column}"] = arr
    return ep


def _concatenate(parts: list[np.ndarray], column: str, path: Path) -> np.ndarray:
    first = parts[0]
    for i, arr in enumerate(parts):
        if arr.shape[1:] != first.shape[1:]:
            raise DatasetError(
                f"has rows of shape {arr.shape[1:]} but episode 0 has {first.shape[1:]}; all "
                "episodes must have the same shapes",
                path=str(path),
                field=f"{column}_{i}",
            )
    return np.concatenate(parts)


def _discrete_actions(actions: np.ndarray) -> np.ndarray:
    """d3rlpy stores discrete actions as integers ``[T, 1]``: policyfit's are ``[N]``."""
    if actions.dtype.kind in "biu" and actions.ndim == 2 and actions.shape[1] == 1:
        return actions[:, 0]
    return actions


def read_arrays(f: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(arrays for Dataset, metadata)`` from an open d3rlpy HDF5 file; DatasetError if bad."""
    columns = read_columns(f, path)
    version = read_version(f, path)
    n = read_num_episodes(f, path)
    extra_columns = [c for c in columns if c not in REQUIRED_COLUMNS]
    episodes = [_read_episode(f, i, n, extra_columns, path) for i in range(n)]
    lengths = [ep["observations"].shape[0] for ep in episodes]
    ends = np.cumsum(lengths) - 1
    terminated = np.array([bool(ep["terminated"]) for ep in episodes])
    terminals = np.zeros(int(ends[-1]) + 1, dtype=bool)
    timeouts = np.zeros_like(terminals)
    terminals[ends[terminated]] = True
    timeouts[ends[~terminated]] = True
    arrays: dict[str, Any] = {
        column: _concatenate([ep[column] for ep in episodes], column, path)
        for column in ("observations", "actions", "rewards")
    }
    arrays["actions"] = _discrete_actions(arrays["actions"])
    arrays["terminals"] = terminals
    arrays["timeouts"] = timeouts
    if all("next_observations" in ep for ep in episodes):
        arrays["next_observations"] = _concatenate(
            [ep["next_observations"] for ep in episodes], NEXT_OBS_PREFIX.rstrip("_"), path
        )
    metadata: dict[str, Any] = {"d3rlpy_version": version}
    extras = {
        column: _concatenate([ep[f"extra:{column}"] for ep in episodes], column, path)
        for column in extra_columns
        if all(f"extra:{column}" in ep for ep in episodes)
    }
    ignored = [c for c in extra_columns if c not in extras]
    if ignored:
        metadata["d3rlpy_ignored_columns"] = ignored
    if extras:
        metadata["extra_arrays"] = extras
    return arrays, metadata


def read_extra_group(f: Any, n_rows: int) -> dict[str, np.ndarray]:
    """policyfit's per-transition extra arrays stored beside d3rlpy's keys (rows must match)."""
    if EXTRA_GROUP not in f or not hasattr(f[EXTRA_GROUP], "keys"):
        return {}
    out = {}
    for key in f[EXTRA_GROUP]:
        node = f[EXTRA_GROUP][key]
        if not hasattr(node, "shape"):
            continue
        arr = np.asarray(node[()])
        if arr.ndim >= 1 and arr.shape[0] == n_rows:
            out[str(key)] = arr
    return out


def write_file(
    f: Any, ds: Dataset, extra: dict[str, np.ndarray], metadata_key: str, metadata_json: str
) -> None:
    """Write ``ds`` into the open (empty) HDF5 file ``f`` in d3rlpy's layout."""
    episodes = list(ds.episodes())
    f.create_dataset("columns", data=[c.encode() for c in REQUIRED_COLUMNS])
    f.create_dataset("num_episodes", data=len(episodes))
    for i, ep in enumerate(episodes):
        actions = ep.actions[:, None] if ds.discrete else ep.actions
        f.create_dataset(f"observations_{i}", data=ep.observations)
        f.create_dataset(f"actions_{i}", data=actions)
        f.create_dataset(f"rewards_{i}", data=ep.rewards[:, None])
        f.create_dataset(f"terminated_{i}", data=bool(ep.terminals[-1]))
        f.create_dataset(f"{NEXT_OBS_PREFIX}{i}", data=ep.next_observations)
    f.create_dataset("version", data=D3RLPY_VERSION)
    if extra:
        group = f.create_group(EXTRA_GROUP)
        for key, value in extra.items():
            group.create_dataset(key, data=value)
    f.attrs[metadata_key] = metadata_json
