"""The :class:`Dataset`: logged transitions as flat arrays plus episode boundaries and metadata.

Layout (struct of arrays, ``N`` transitions, episodes stored one after another):

=====================  ===================  =========================================
field                  shape / dtype        meaning
=====================  ===================  =========================================
``observations``       ``[N, obs_dim]`` f32 state the action was taken in
``actions``            ``[N, act_dim]`` f32 continuous actions, or ``[N]`` int64 (discrete)
``rewards``            ``[N]`` f32          reward received
``terminals``          ``[N]`` bool         the episode ended in a terminal state
``timeouts``           ``[N]`` bool         the episode was cut (time limit / truncation)
``next_observations``  ``[N, obs_dim]`` f32 state after the action
=====================  ===================  =========================================

An episode ends at every index where ``terminals | timeouts``; the last transition of the dataset
always ends an episode (a last episode with neither flag is accepted as truncated, with a warning).

An *action-free* episode (actions unknown, semi-supervised offline RL) has NaN in every action of
every step; only a dataset built with ``allow_action_free=True`` holds one, and
:meth:`Dataset.require_actions` (called by the samplers and the trainer) refuses it with the
error that says to run ``policyfit data relabel`` (:mod:`policyfit.data.action_free`).

Example:
    >>> import numpy as np
    >>> from policyfit.data import Dataset
    >>> ds = Dataset(
    ...     observations=np.zeros((4, 3)), actions=np.zeros((4, 1)), rewards=np.ones(4),
    ...     terminals=np.array([0, 1, 0, 0]), timeouts=np.array([0, 0, 0, 1]),
    ...     next_observations=np.zeros((4, 3)))
    >>> ds.num_episodes, ds.episode_returns().tolist()
    (2, [2.0, 2.0])
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from policyfit.common.scores import normalized_score, reference_scores
from policyfit.data.validate import action_free_error, validate_arrays
from policyfit.errors import DatasetError

ARRAY_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
)


@dataclass
class Episode:
    """One episode: views into the dataset's arrays (no copies)."""

    index: int
    start: int
    stop: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    next_observations: np.ndarray

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum(dtype=np.float64))


@dataclass
class Dataset:
    """Logged transitions; validated once, when constructed.

    ``source`` is the file or name the data came from; it prefixes every error message.
    ``metadata`` holds ``env_id``, ``observation_space``/``action_space`` (see :mod:`policyfit.data.spaces`),
    ``ref_min_score``/``ref_max_score`` (for normalized scores), ``card`` (free-form dict) and
    anything else a reader found.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray | None = None
    next_observations: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    clip_actions: bool = field(default=False, repr=False)
    _warn_truncated: bool = field(default=True, repr=False)
    allow_action_free: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        checked = validate_arrays(
            {name: getattr(self, name) for name in ARRAY_FIELDS},
            self.metadata,
            source=self.source,
            clip_actions=self.clip_actions,
            warn_truncated_end=self._warn_truncated,
            allow_action_free=self.allow_action_free,
        )
        for name, value in checked.items():
            setattr(self, name, value)
        ends = np.flatnonzero(self.terminals | self.timeouts)
        self._episode_ends = ends
        self._episode_starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)

    # ------------------------------------------------------------------ basic properties
    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_transitions(self) -> int:
        return len(self)

    @property
    def num_episodes(self) -> int:
        return int(self._episode_ends.shape[0])

    @property
    def observation_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == 1

    @property
    def action_dim(self) -> int:
        """Number of action dimensions; for discrete actions, the number of actions."""
        if self.discrete:
            space = self.metadata.get("action_space") or {}
            return int(space.get("n", int(self.actions.max()) + 1))
        return int(self.actions.shape[1])

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def episode_starts(self) -> np.ndarray:
        return self._episode_starts

    @property
    def episode_ends(self) -> np.ndarray:
        """Inclusive index of each episode's last transition."""
        return self._episode_ends

    @property
    def episode_lengths(self) -> np.ndarray:
        return self._episode_ends - self._episode_starts + 1

    def episode_ids(self) -> np.ndarray:
        """``[N]`` int: the episode each transition belongs to."""
        return np.repeat(np.arange(self.num_episodes), self.episode_lengths)

    # ------------------------------------------------------------------ action-free episodes
    @property
    def action_available(self) -> np.ndarray:
        """``[N]`` bool: False on the steps of action-free episodes (NaN actions; only a dataset
        built with ``allow_action_free=True`` has them, see :mod:`policyfit.data.action_free`)."""
        if self.discrete:
            return np.ones(len(self), dtype=bool)
        return ~np.isnan(self.actions).any(axis=1)

    def action_free_episodes(self) -> np.ndarray:
        """Indices of the episodes whose actions are unknown (all NaN)."""
        return np.flatnonzero(~self.action_available[self._episode_starts])

    def require_actions(self) -> None:
        """DatasetError (say to run ``policyfit data relabel``) if any episode is action-free."""
        available = self.action_available
        if not available.all():
            ends = np.zeros(len(self), dtype=bool)
            ends[self._episode_ends] = True
            raise action_free_error(self.source, ~available, ends)

    # ------------------------------------------------------------------ episodes and returns
    def episode(self, i: int) -> Episode:
        """Episode ``i`` (negative counts from the end, as for a list)."""
        i = self._episode_index(i)
        start, stop = int(self._episode_starts[i]), int(self._episode_ends[i]) + 1
        s = slice(start, stop)
        return Episode(
            i,
            start,
            stop,
            self.observations[s],
            self.actions[s],
            self.rewards[s],
            self.terminals[s],
            self.timeouts[s],
            self.next_observations[s],
        )

    def episodes(self) -> Iterator[Episode]:
        """Iterate over episodes in storage order."""
        for i in range(self.num_episodes):
            yield self.episode(i)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, ``[num_episodes]`` float64."""
        sums = np.add.reduceat(self.rewards.astype(np.float64), self._episode_starts)
        return sums

    def returns_to_go(self, discount: float = 1.0) -> np.ndarray:
        """``[N]`` return from each transition to the end of its episode (per episode, never across)."""
        rtg = np.zeros(len(self), dtype=np.float64)
        rewards = self.rewards.astype(np.float64)
        if discount == 1.0:
            for start, end in zip(self._episode_starts, self._episode_ends, strict=True):
                seg = rewards[start : end + 1]
                rtg[start : end + 1] = np.cumsum(seg[::-1])[::-1]
            return rtg
        for start, end in zip(self._episode_starts, self._episode_ends, strict=True):
            acc = 0.0
            for t in range(end, start - 1, -1):
                acc = rewards[t] + discount * acc
                rtg[t] = acc
        return rtg

    def reference_scores(self) -> tuple[float, float] | None:
        """``(random, expert)`` returns for normalized scores (:mod:`policyfit.common.scores`).

        D4RL's reference returns when :attr:`env_id` is a registered environment, else the
        metadata's ``ref_min_score``/``ref_max_score``, else None; a :class:`DatasetError` when
        the metadata's are not two finite, different numbers.
        """
        return reference_scores(self.env_id, self.metadata, source=self.source)

    def normalized_score(self, returns: np.ndarray | float) -> np.ndarray | float | None:
        """D4RL normalized score ``100 (R - random) / (expert - random)``; None without references."""
        refs = self.reference_scores()
        return None if refs is None else normalized_score(returns, refs)

    # ------------------------------------------------------------------ slicing / combining
    def select_episodes(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """A new dataset holding the given episodes, in the given order."""
        idx = np.asarray(indices)
        if idx.size == 0:
            raise DatasetError("no episodes selected", path=self.source, field="episodes")
        idx = np.array([self._episode_index(i) for i in idx.reshape(-1)], dtype=np.int64)
        rows = np.concatenate(
            [np.arange(self._episode_starts[i], self._episode_ends[i] + 1) for i in idx]
        )
        return self._take(rows)

    def _episode_index(self, i: object) -> int:
        """``i`` as an episode index in ``[0, num_episodes)``, or a DatasetError naming it."""
        n = self.num_episodes
        integral = isinstance(i, int | np.integer) and not isinstance(i, bool | np.bool_)
        if not integral or not -n <= int(i) < n:
            shown = i.item() if isinstance(i, np.generic) else i
            raise DatasetError(
                f"episode index {shown!r} is not an integer in [{-n}, {n}) ({n} episodes)",
                path=self.source,
                field="episodes",
            )
        return int(i) % n

    def _take(self, rows: np.ndarray, metadata: dict[str, Any] | None = None) -> Dataset:
        arrays = {name: getattr(self, name)[rows] for name in ARRAY_FIELDS}
        md = copy.deepcopy(self.metadata if metadata is None else metadata)
        extra = md.get("extra_arrays")
        if isinstance(extra, dict):
            md["extra_arrays"] = {k: np.asarray(v)[rows] for k, v in extra.items()}
        return Dataset(
            **arrays,
            metadata=md,
            source=self.source,
            _warn_truncated=False,
            allow_action_free=self.allow_action_free,
        )

    def __getitem__(self, item: slice) -> Dataset:
        """Transition slice ``ds[a:b]``; a cut episode at the end is marked as timed out."""
        if not isinstance(item, slice):
            raise DatasetError(
                f"cannot index a dataset with {type(item).__name__} {item!r}; slice transitions "
                "(ds[a:b]) or pick episodes with select_episodes()",
                path=self.source,
                field="index",
            )
        rows = np.arange(len(self))[item]
        sub = {name: getattr(self, name)[rows].copy() for name in ARRAY_FIELDS}
        if rows.size and not (sub["terminals"][-1] or sub["timeouts"][-1]):
            sub["timeouts"][-1] = True
        md = copy.deepcopy(self.metadata)
        extra = md.get("extra_arrays")
        if isinstance(extra, dict):
            md["extra_arrays"] = {k: np.asarray(v)[rows] for k, v in extra.items()}
        return Dataset(
            **sub, metadata=md, source=self.source, allow_action_free=self.allow_action_free
        )

    @staticmethod
    def concatenate(datasets: Sequence[Dataset], metadata: dict[str, Any] | None = None) -> Dataset:
        """Episodes of all datasets, one after another; metadata from the first unless given.

        Per-transition arrays in ``metadata["extra_arrays"]`` (the corruption mask ``corrupted``,
        ``corrupted_<target>``, ...) are concatenated key by key, whatever ``metadata`` says. When
        only some datasets carry a key: a boolean array (a mask) is filled with False for the
        others — a dataset without a mask has no row marked — and any other array raises a
        :class:`DatasetError` naming the key, since there is no value to fill in.

        Example:
            >>> import numpy as np
            >>> a = Dataset(observations=np.zeros((2, 1)), actions=np.zeros((2, 1)),
            ...             rewards=np.zeros(2), terminals=np.array([0, 1]),
            ...             metadata={"extra_arrays": {"corrupted": np.array([True, False])}})
            >>> b = Dataset(observations=np.zeros((1, 1)), actions=np.zeros((1, 1)),
            ...             rewards=np.zeros(1), terminals=np.array([1]))
            >>> Dataset.concatenate([a, b]).metadata["extra_arrays"]["corrupted"].tolist()
            [True, False, False]
        """
        if not datasets:
            raise DatasetError("nothing to concatenate", field="datasets")
        for i, d in enumerate(datasets):
            if not isinstance(d, Dataset):
                raise DatasetError(
                    f"item {i} is a {type(d).__name__}, not a Dataset; load it first "
                    "(policyfit.load_dataset)",
                    field="datasets",
                )
        first = datasets[0]
        for other in datasets[1:]:
            if other.observations.shape[1:] != first.observations.shape[1:] or (
                other.actions.shape[1:] != first.actions.shape[1:]
            ):
                raise DatasetError(
                    f"shapes differ from {first.source}: observations {other.observations.shape[1:]} "
                    f"vs {first.observations.shape[1:]}, actions {other.actions.shape[1:]} vs "
                    f"{first.actions.shape[1:]}",
                    path=other.source,
                    field="observations",
                )
        arrays = {
            name: np.concatenate([getattr(d, name) for d in datasets]) for name in ARRAY_FIELDS
        }
        md = copy.deepcopy(first.metadata if metadata is None else metadata)
        md.pop("extra_arrays", None)
        extra = _concatenate_extra_arrays(datasets)
        if extra:
            md["extra_arrays"] = extra
        return Dataset(
            **arrays,
            metadata=md,
            source=first.source,
            allow_action_free=any(d.allow_action_free for d in datasets),
        )

    # ------------------------------------------------------------------ identity and summary
    def fingerprint(self) -> str:
        """Content hash (sha256, 16 hex digits) of the six arrays — independent of format and metadata."""
        h = hashlib.sha256()
        for name in ARRAY_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name))
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(memoryview(arr).cast("B"))
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """Summary statistics (what ``policyfit data inspect --json`` prints)."""
        rets = self.episode_returns()
        lengths = self.episode_lengths
        out: dict[str, Any] = {
            "source": self.source,
            "env_id": self.env_id,
            "transitions": len(self),
            "episodes": self.num_episodes,
            "observation_dim": self.observation_dim,
            "action_dim": self.action_dim,
            "discrete": self.discrete,
            "return_mean": float(rets.mean()),
            "return_std": float(rets.std()),
            "return_min": float(rets.min()),
            "return_max": float(rets.max()),
            "episode_length_mean": float(lengths.mean()),
            "episode_length_min": int(lengths.min()),
            "episode_length_max": int(lengths.max()),
            "reward_mean": float(self.rewards.mean(dtype=np.float64)),
            "terminals": int(self.terminals.sum()),
            "timeouts": int(self.timeouts.sum()),
            "fingerprint": self.fingerprint(),
        }
        norm = self.normalized_score(rets)
        if norm is not None:
            out["normalized_return_mean"] = float(np.mean(norm))
            out["normalized_return_std"] = float(np.std(norm))
            out["ref_min_score"], out["ref_max_score"] = self.reference_scores()
        if not self.discrete:
            known = self.actions[self.action_available]
            if known.size:
                out["action_min"] = float(known.min())
                out["action_max"] = float(known.max())
            free = self.action_free_episodes()
            if free.size:
                out["action_free_episodes"] = int(free.size)
        return out

    def __repr__(self) -> str:
        return (
            f"Dataset(source={self.source!r}, transitions={len(self)}, episodes={self.num_episodes}, "
            f"observation_dim={self.observation_dim}, action_dim={self.action_dim}, "
            f"discrete={self.discrete})"
        )


def _extra_arrays(ds: Dataset) -> dict[str, np.ndarray]:
    """``metadata["extra_arrays"]`` of ``ds`` as arrays of one row per transition."""
    extra = ds.metadata.get("extra_arrays")
    if not isinstance(extra, dict):
        return {}
    out = {}
    for key, value in extra.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != len(ds):
            raise DatasetError(
                f"extra array {key!r} has shape {arr.shape}, not one row per transition "
                f"({len(ds)}); repair or drop it",
                path=ds.source,
                field=f"extra_arrays.{key}",
            )
        out[str(key)] = arr
    return out


def _concatenate_extra_arrays(datasets: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """The extra arrays of ``datasets``, concatenated per key (see :meth:`Dataset.concatenate`)."""
    per_dataset = [_extra_arrays(d) for d in datasets]
    keys = list(dict.fromkeys(k for extra in per_dataset for k in extra))
    out = {}
    for key in keys:
        present = [
            (d, extra[key]) for d, extra in zip(datasets, per_dataset, strict=True) if key in extra
        ]
        shape, dtype = present[0][1].shape[1:], present[0][1].dtype
        for d, arr in present:
            if arr.shape[1:] != shape:
                raise DatasetError(
                    f"extra array {key!r} has rows of shape {arr.shape[1:]} here and {shape} in "
                    f"{present[0][0].source}; they cannot be concatenated",
                    path=d.source,
                    field=f"extra_arrays.{key}",
                )
        parts = []
        for d, extra in zip(datasets, per_dataset, strict=True):
            if key in extra:
                parts.append(extra[key])
            elif dtype == np.bool_:
                parts.append(np.zeros((len(d), *shape), dtype=bool))
            else:
                raise DatasetError(
                    f"extra array {key!r} ({dtype}) is missing here but present in "
                    f"{present[0][0].source}, and only boolean masks can be filled (with False); "
                    "add it to every dataset or drop it",
                    path=d.source,
                    field=f"extra_arrays.{key}",
                )
        out[key] = np.concatenate(parts)
    return out
