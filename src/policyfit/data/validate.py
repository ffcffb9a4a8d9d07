"""Validation at the boundary: every array is checked once, when a :class:`Dataset` is built.

Errors name the source, the field and what to do, e.g.
``data.hdf5: rewards: 3 NaN values (first at index 17); remove or repair those transitions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from policyfit.errors import DatasetError

if TYPE_CHECKING:
    from policyfit.data.dataset import Dataset


def _fail(ds: Dataset, fieldname: str, message: str) -> None:
    raise DatasetError(message, path=ds.source, field=fieldname)


def _as_numeric(ds: Dataset, name: str, value: object, kind: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        _fail(ds, name, f"cannot be read as an array ({exc})")
    if arr.dtype.kind not in "biuf":
        _fail(
            ds,
            name,
            f"has dtype {arr.dtype} but must be {kind}; convert it to numbers before loading",
        )
    return arr


def _check_finite(ds: Dataset, name: str, arr: np.ndarray) -> None:
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
            ds,
            name,
            f"contains {what} values (first at transition {first}); remove or repair those transitions",
        )


def validate_dataset(ds: Dataset) -> None:
    """Normalize dtypes/shapes in place and reject anything a learner could not use."""
    from policyfit.data.dataset import warn_truncated

    for name in ("observations", "actions", "rewards", "terminals"):
        if getattr(ds, name) is None:
            _fail(
                ds,
                name,
                "is missing; every dataset needs observations, actions, rewards, terminals",
            )

    obs = _as_numeric(ds, "observations", ds.observations, "a float array [N, obs_dim]")
    if obs.ndim == 1:
        obs = obs[:, None]
    if obs.ndim != 2:
        _fail(ds, "observations", f"has shape {obs.shape}; expected [N, obs_dim] (flat vectors)")
    n = obs.shape[0]
    if n == 0:
        _fail(ds, "observations", "the dataset is empty (0 transitions)")

    act = _as_numeric(ds, "actions", ds.actions, "numbers (float [N, act_dim] or int [N])")
    space = ds.metadata.get("action_space")
    discrete = act.dtype.kind in "biu" and act.ndim == 1
    if space is not None and space.get("type") == "discrete":
        discrete = True
        if act.ndim == 2 and act.shape[1] == 1:
            act = act[:, 0]
        if act.dtype.kind == "f":
            if not np.all(np.isfinite(act)) or np.any(act != np.round(act)):
                _fail(ds, "actions", "the action space is discrete but actions are not integers")
            act = act.astype(np.int64)
    if discrete:
        if act.ndim != 1:
            _fail(ds, "actions", f"discrete actions must have shape [N], got {act.shape}")
        act = act.astype(np.int64)
    else:
        act = act.astype(np.float32)
        if act.ndim == 1:
            act = act[:, None]
        if act.ndim != 2:
            _fail(ds, "actions", f"has shape {act.shape}; expected [N, act_dim] or [N] (discrete)")

    rew = _as_numeric(ds, "rewards", ds.rewards, "a float array [N]")
    if rew.ndim == 2 and rew.shape[1] == 1:
        rew = rew[:, 0]
    if rew.ndim != 1:
        _fail(ds, "rewards", f"has shape {rew.shape}; expected [N]")

    def flags(name: str, value: object) -> np.ndarray:
        arr = _as_numeric(ds, name, value, "booleans or 0/1 [N]")
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            _fail(ds, name, f"has shape {arr.shape}; expected [N]")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            _check_finite(ds, name, arr)
        if not np.all((arr == 0) | (arr == 1)):
            _fail(ds, name, "must hold only 0/1 (or booleans)")
        return arr.astype(bool)

    term = flags("terminals", ds.terminals)
    tout = np.zeros(n, dtype=bool) if ds.timeouts is None else flags("timeouts", ds.timeouts)

    lengths = {
        "observations": n,
        "actions": act.shape[0],
        "rewards": rew.shape[0],
        "terminals": term.shape[0],
        "timeouts": tout.shape[0],
    }
    if ds.next_observations is not None:
        nxt = _as_numeric(ds, "next_observations", ds.next_observations, "a float array")
        if nxt.ndim == 1:
            nxt = nxt[:, None]
        lengths["next_observations"] = nxt.shape[0]
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
        odd = [k for k, v in lengths.items() if v != n]
        _fail(ds, odd[0], f"arrays have different lengths ({detail}); all must have N rows")

    obs = obs.astype(np.float32)
    rew = rew.astype(np.float32)
    for name, arr in (("observations", obs), ("actions", act), ("rewards", rew)):
        _check_finite(ds, name, arr)

    if not (term[-1] or tout[-1]):
        tout = tout.copy()
        tout[-1] = True
        if ds._warn_truncated:
            warn_truncated(ds.source)

    if ds.next_observations is None:
        # Derive s' = s_{t+1} inside each episode; at an episode's end the true s' is unknown,
        # so it repeats s_T (harmless for terminals, which mask the bootstrap).
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        ends = term | tout
        nxt[ends] = obs[ends]
        nxt[-1] = obs[-1]
        ds.metadata.setdefault("derived_next_observations", True)
    else:
        nxt = nxt.astype(np.float32)
        if nxt.shape != obs.shape:
            _fail(
                ds,
                "next_observations",
                f"has shape {nxt.shape} but observations have {obs.shape}",
            )
        _check_finite(ds, "next_observations", nxt)

    if not discrete and space is not None and space.get("type") == "box":
        low = np.asarray(space["low"], dtype=np.float64)
        high = np.asarray(space["high"], dtype=np.float64)
        if low.shape != (act.shape[1],):
            _fail(
                ds,
                "actions",
                f"action_space has {low.shape[0]} dimensions but actions have {act.shape[1]}",
            )
        tol = 1e-5
        outside = (act < low - tol) | (act > high + tol)
        if outside.any():
            if ds.clip_actions:
                act = np.clip(act, low, high).astype(np.float32)
                ds.metadata["clipped_actions"] = int(outside.any(axis=1).sum())
            else:
                rows = np.flatnonzero(outside.any(axis=1))
                _fail(
                    ds,
                    "actions",
                    f"{rows.size} actions lie outside the action space [{low.min():g}, {high.max():g}] "
                    f"(first at transition {int(rows[0])}: {act[rows[0]].round(4).tolist()}); "
                    "fix the data or pass --clip-actions to clip them",
                )
    if discrete and space is not None and space.get("type") == "discrete":
        k = int(space["n"])
        if act.min() < 0 or act.max() >= k:
            _fail(
                ds,
                "actions",
                f"discrete actions must lie in [0, {k}), found {act.min()}..{act.max()}",
            )

    ds.observations, ds.actions, ds.rewards = obs, act, rew
    ds.terminals, ds.timeouts, ds.next_observations = term, tout, nxt
