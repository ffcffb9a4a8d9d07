"""Validation at the boundary: every array is checked once, when a :class:`Dataset` is built.

:func:`validate_arrays` takes the raw arrays (anything ``np.asarray`` reads) and returns them
normalized (float32 observations/rewards, float32 or int64 actions, bool flags, derived
``next_observations``); it knows nothing of :class:`~policyfit.data.dataset.Dataset`, which calls
it (the dependency runs one way: ``dataset -> validate``).

Errors name the source, the field and what to do, e.g.
``data.hdf5: rewards: 3 NaN values (first at index 17); remove or repair those transitions``.

Example:
    >>> import numpy as np
    >>> out = validate_arrays({"observations": [[0.0], [1.0]], "actions": [0, 1],
    ...                        "rewards": [1, 1], "terminals": [0, 1]}, {}, source="demo")
    >>> out["actions"].dtype, out["terminals"].tolist(), out["next_observations"][:, 0].tolist()
    (dtype('int64'), [False, True], [1.0, 1.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from policyfit.errors import DatasetError, PolicyfitWarning

REQUIRED_FIELDS = ("observations", "actions", "rewards", "terminals")
ACTION_TOLERANCE = 1e-5  # actions this far outside the declared box still count as inside


class TruncatedEpisodeWarning(PolicyfitWarning):
    """The last episode has neither a terminal nor a timeout flag; it is kept as truncated."""


def warn_truncated(source: str, stacklevel: int = 4) -> None:
    warnings.warn(
        f"{source}: timeouts: the last episode has neither a terminal nor a timeout flag; "
        "it is kept as a truncated episode (timeout set on its last transition)",
        TruncatedEpisodeWarning,
        stacklevel=stacklevel,
    )


def _fail(source: str, fieldname: str, message: str) -> NoReturn:
    raise DatasetError(message, path=source, field=fieldname)


def _as_numeric(source: str, name: str, value: object, kind: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        _fail(source, name, f"cannot be read as an array ({exc})")
    if arr.dtype.kind not in "biuf":
        _fail(
            source,
            name,
            f"has dtype {arr.dtype} but must be {kind}; convert it to numbers before loading",
        )
    return arr


def _check_finite(source: str, name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind != "f":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        first = int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
        what = ", ".join(
            s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} inf" if n_inf else "") if s
        )
        _fail(
            source,
            name,
            f"contains {what} values (first at transition {first}); remove or repair those transitions",
        )


# ----------------------------------------------------------------------------- one field each
def _require_fields(arrays: Mapping[str, Any], source: str) -> None:
    for name in REQUIRED_FIELDS:
        if arrays.get(name) is None:
            _fail(
                source,
                name,
                "is missing; every dataset needs observations, actions, rewards, terminals",
            )


def _check_metadata(metadata: Mapping[str, Any], source: str) -> None:
    """The metadata fields policyfit reads have the types it reads them as."""
    env_id = metadata.get("env_id")
    if env_id is not None and not isinstance(env_id, str):
        _fail(source, "metadata.env_id", f"must be an environment id (text), got {env_id!r}")
    for key in ("card", "observation_space", "action_space"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, Mapping):
            _fail(source, f"metadata.{key}", f"must be a mapping (JSON object), got {value!r}")
    for key in ("action_space", "observation_space"):
        space = metadata.get(key)
        if space is not None and space.get("type") not in ("box", "discrete"):
            _fail(
                source,
                f"metadata.{key}.type",
                f"must be 'box' or 'discrete', got {space.get('type')!r}",
            )


def _observations(value: object, source: str) -> np.ndarray:
    obs = _as_numeric(source, "observations", value, "a float array [N, obs_dim]")
    if obs.ndim == 1:
        obs = obs[:, None]
    if obs.ndim != 2:
        _fail(
            source, "observations", f"has shape {obs.shape}; expected [N, obs_dim] (flat vectors)"
        )
    if obs.shape[0] == 0:
        _fail(source, "observations", "the dataset is empty (0 transitions)")
    if obs.shape[1] == 0:
        _fail(source, "observations", f"has shape {obs.shape}: observations with no dimensions")
    return obs


def _discrete_from_floats(act: np.ndarray, source: str) -> np.ndarray:
    """Float actions of a declared discrete space: a trailing ``[N, 1]`` dropped, integers only."""
    if act.ndim == 2 and act.shape[1] == 1:
        act = act[:, 0]
    if act.dtype.kind == "f":
        exact = np.isfinite(act) & (np.abs(act) <= 2.0**53)  # beyond, floats are no indices
        if not np.all(exact) or np.any(act != np.round(act)):
            _fail(source, "actions", "the action space is discrete but actions are not integers")
        act = act.astype(np.int64)
    return act


def _actions(
    value: object, space: Mapping[str, Any] | None, source: str
) -> tuple[np.ndarray, bool]:
    """``(actions, discrete)``: int64 ``[N]`` for discrete actions, float32 ``[N, act_dim]``."""
    act = _as_numeric(source, "actions", value, "numbers (float [N, act_dim] or int [N])")
    declared = space.get("type") if space is not None else None
    discrete = act.dtype.kind in "biu" and act.ndim == 1 and declared != "box"
    if declared == "discrete":
        discrete = True
        act = _discrete_from_floats(act, source)
    if discrete:
        if act.ndim != 1:
            _fail(source, "actions", f"discrete actions must have shape [N], got {act.shape}")
        if act.dtype == np.uint64 and act.size and act.max() > np.iinfo(np.int64).max:
            _fail(source, "actions", f"discrete action {act.max()} is too large to be an index")
        act = act.astype(np.int64)
        if act.size and act.min() < 0:
            first = int(np.flatnonzero(act < 0)[0])
            _fail(
                source,
                "actions",
                f"discrete actions are indices >= 0, found {act[first]} (first at transition "
                f"{first})",
            )
        return act, True
    act = act.astype(np.float32)
    if act.ndim == 1:
        act = act[:, None]
    if act.ndim != 2:
        _fail(source, "actions", f"has shape {act.shape}; expected [N, act_dim] or [N] (discrete)")
    if act.shape[1] == 0:
        _fail(source, "actions", f"has shape {act.shape}: actions with no dimensions")
    return act, False


def _rewards(value: object, source: str) -> np.ndarray:
    rew = _as_numeric(source, "rewards", value, "a float array [N]")
    if rew.ndim == 2 and rew.shape[1] == 1:
        rew = rew[:, 0]
    if rew.ndim != 1:
        _fail(source, "rewards", f"has shape {rew.shape}; expected [N]")
    return rew


def _flags(name: str, value: object, source: str) -> np.ndarray:
    arr = _as_numeric(source, name, value, "booleans or 0/1 [N]")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        _fail(source, name, f"has shape {arr.shape}; expected [N]")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        _check_finite(source, name, arr)
    if not np.all((arr == 0) | (arr == 1)):
        _fail(source, name, "must hold only 0/1 (or booleans)")
    return arr.astype(bool)


def _raw_next_observations(value: object, source: str) -> np.ndarray | None:
    if value is None:
        return None
    nxt = _as_numeric(source, "next_observations", value, "a float array")
    if nxt.ndim not in (1, 2):
        _fail(source, "next_observations", f"has shape {nxt.shape}; expected [N, obs_dim]")
    return nxt[:, None] if nxt.ndim == 1 else nxt


def _check_lengths(lengths: dict[str, int], n: int, source: str) -> None:
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
        odd = [k for k, v in lengths.items() if v != n]
        _fail(source, odd[0], f"arrays have different lengths ({detail}); all must have N rows")


def _next_observations(
    nxt: np.ndarray | None,
    obs: np.ndarray,
    ends: np.ndarray,
    metadata: dict[str, Any],
    source: str,
) -> np.ndarray:
    if nxt is None:
        # Derive s' = s_{t+1} inside each episode; at an episode's end the true s' is unknown,
        # so it repeats s_T (harmless for terminals, which mask the bootstrap).
        derived = np.empty_like(obs)
        derived[:-1] = obs[1:]
        derived[ends] = obs[ends]
        derived[-1] = obs[-1]
        metadata.setdefault("derived_next_observations", True)
        return derived
    nxt = nxt.astype(np.float32)
    if nxt.shape != obs.shape:
        _fail(
            source, "next_observations", f"has shape {nxt.shape} but observations have {obs.shape}"
        )
    _check_finite(source, "next_observations", nxt)
    return nxt


def _fit_box(
    act: np.ndarray,
    space: Mapping[str, Any],
    clip_actions: bool,
    metadata: dict[str, Any],
    source: str,
) -> np.ndarray:
    """Continuous actions inside the declared box (clipped when ``clip_actions``, else rejected)."""
    low, high = _box_bounds(space, act.shape[1], source)
    outside = (act < low - ACTION_TOLERANCE) | (act > high + ACTION_TOLERANCE)
    if not outside.any():
        return act
    if clip_actions:
        metadata["clipped_actions"] = int(outside.any(axis=1).sum())
        return np.clip(act, low, high).astype(np.float32)
    rows = np.flatnonzero(outside.any(axis=1))
    _fail(
        source,
        "actions",
        f"{rows.size} actions lie outside the action space [{low.min():g}, {high.max():g}] "
        f"(first at transition {int(rows[0])}: {act[rows[0]].round(4).tolist()}); "
        "fix the data or pass --clip-actions to clip them",
    )


def _box_bounds(space: Mapping[str, Any], dim: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` of a declared box as ``[dim]`` arrays (a scalar applies to every
    dimension); a clear error when either is missing, not numbers, or of another width."""
    bounds = []
    for key in ("low", "high"):
        if key not in space:
            _fail(source, f"action_space.{key}", "missing: a box space needs low and high")
        try:
            value = np.asarray(space[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            _fail(source, f"action_space.{key}", f"not numbers: {space[key]!r}")
        if value.size == 1:
            value = np.full(dim, value[0])
        if value.shape != (dim,):
            _fail(
                source,
                "actions",
                f"action_space has {value.size} dimensions but actions have {dim}",
            )
        bounds.append(value)
    return bounds[0], bounds[1]


def _check_discrete_range(act: np.ndarray, space: Mapping[str, Any], source: str) -> None:
    try:
        k = int(space["n"])
    except (KeyError, TypeError, ValueError):
        _fail(source, "action_space.n", "a discrete space needs n, the number of actions")
    if act.min() < 0 or act.max() >= k:
        _fail(
            source,
            "actions",
            f"discrete actions must lie in [0, {k}), found {act.min()}..{act.max()}",
        )


def action_free_rows(act: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """``[N]`` bool, True on the steps of action-free episodes (all of their actions NaN).

    None when the NaN values do not form whole episodes (a NaN in some dimensions of a step, or in
    some steps of an episode): those are damaged values, not missing actions.
    """
    nan = np.isnan(act)
    rows = nan.all(axis=1)
    if (nan.any(axis=1) != rows).any():
        return None
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1])
    per_episode = np.add.reduceat(rows.astype(np.int64), starts)
    lengths = np.diff(np.concatenate([starts, [len(rows)]]))
    if ((per_episode != 0) & (per_episode != lengths)).any():
        return None
    return rows


def action_free_error(source: str, rows: np.ndarray, ends: np.ndarray) -> DatasetError:
    """The one-line error for a dataset with action-free episodes where actions are needed."""
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1])
    free = int(rows[starts].sum())
    return DatasetError(
        f"{free} of {len(starts)} episodes are action-free (all actions NaN, first at transition "
        f"{int(np.flatnonzero(rows)[0])}); label them first with `policyfit data relabel "
        f"{source} --out LABELLED` (an inverse-dynamics model) and train on LABELLED",
        path=source,
        field="actions",
    )


def _check_actions_finite(
    act: np.ndarray, ends: np.ndarray, source: str, allow_action_free: bool
) -> None:
    """Finite actions, or whole action-free episodes of NaN (see :func:`validate_arrays`)."""
    if act.dtype.kind != "f" or np.isfinite(act).all():
        return
    if np.isinf(act).any():
        _check_finite(source, "actions", act)
    rows = action_free_rows(act, ends)
    if rows is None:
        _check_finite(source, "actions", act)
    if not allow_action_free:
        raise action_free_error(source, rows, ends)


# ----------------------------------------------------------------------------- entry point
def validate_arrays(
    arrays: Mapping[str, Any],
    metadata: dict[str, Any],
    *,
    source: str,
    clip_actions: bool = False,
    warn_truncated_end: bool = True,
    allow_action_free: bool = False,
) -> dict[str, np.ndarray]:
    """Normalize dtypes/shapes and reject anything a learner could not use.

    Returns the six arrays (``observations``, ``actions``, ``rewards``, ``terminals``,
    ``timeouts``, ``next_observations``). Records in ``metadata`` what it changed:
    ``derived_next_observations`` and ``clipped_actions`` (the number of clipped rows).

    Continuous actions may be NaN only as *action-free episodes* (every action of every step of
    the episode NaN, see :func:`action_free_rows`), and only with ``allow_action_free``: without
    it they are the one-line error that says to run ``policyfit data relabel``
    (:func:`action_free_error`), which is what every trainer loading such a file sees.

    Raises:
        DatasetError: the first problem found, naming ``source`` and the field.
    """
    _require_fields(arrays, source)
    _check_metadata(metadata, source)
    obs = _observations(arrays["observations"], source)
    n = obs.shape[0]
    space = metadata.get("action_space")
    act, discrete = _actions(arrays["actions"], space, source)
    rew = _rewards(arrays["rewards"], source)
    term = _flags("terminals", arrays["terminals"], source)
    timeouts = arrays.get("timeouts")
    tout = np.zeros(n, dtype=bool) if timeouts is None else _flags("timeouts", timeouts, source)
    nxt = _raw_next_observations(arrays.get("next_observations"), source)
    lengths = {
        "observations": n,
        "actions": act.shape[0],
        "rewards": rew.shape[0],
        "terminals": term.shape[0],
        "timeouts": tout.shape[0],
    }
    if nxt is not None:
        lengths["next_observations"] = nxt.shape[0]
    _check_lengths(lengths, n, source)

    obs = obs.astype(np.float32)
    rew = rew.astype(np.float32)
    for name, arr in (("observations", obs), ("rewards", rew)):
        _check_finite(source, name, arr)

    if not (term[-1] or tout[-1]):
        tout = tout.copy()
        tout[-1] = True
        if warn_truncated_end:
            warn_truncated(source)
    _check_actions_finite(act, term | tout, source, allow_action_free)
    nxt = _next_observations(nxt, obs, term | tout, metadata, source)

    if not discrete and space is not None and space.get("type") == "box":
        act = _fit_box(act, space, clip_actions, metadata, source)
    if discrete and space is not None and space.get("type") == "discrete":
        _check_discrete_range(act, space, source)
    return {
        "observations": obs,
        "actions": act,
        "rewards": rew,
        "terminals": term,
        "timeouts": tout,
        "next_observations": nxt,
    }
