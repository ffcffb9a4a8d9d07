"""Action-free episodes: how they are stored, SS-ORL's split, and making them from a dataset.

Semi-supervised offline RL (Zheng, Henaff, Amos, Grover, ICML 2023, "Semi-supervised offline RL
with action-free trajectories") learns from a dataset where only some trajectories carry their
actions. This module is the data side; :mod:`policyfit.training.relabel` trains the
inverse-dynamics model that labels the rest.

Representation (every format: HDF5, ``.npz``, Minari, d3rlpy):

* an action-free episode has NaN in every action of every step (``[T, act_dim]`` all NaN);
  :func:`policyfit.data.validate.action_free_rows` accepts NaN only in that shape;
* the per-transition extra array ``action_available`` (bool; False on action-free steps) says so
  explicitly: in a Minari folder it is ``infos/policyfit_extra/action_available`` of each episode,
  so ``minari.load_dataset`` users see it next to the NaN actions;
* the card field ``action_free`` records how the data was made (:func:`strip_actions`).

Loading such a file needs ``load_dataset(path, allow_action_free=True)``; every other reader —
every trainer, ``policyfit train`` — gets the one-line error that says to run
``policyfit data relabel`` (:func:`policyfit.data.validate.action_free_error`).

The split (:func:`ssorl_split`) follows ``data.setup_action_label`` of the official code
(``facebookresearch/ssorl``, ``data.py``, commit cfefabed915e76aefb453f29344055014906d4ed): sort
the trajectories by return, ascending; the labelled ones are ``min(int(n * labelled),
int(n * threshold))`` trajectories drawn at random without replacement from the lowest
``int(n * threshold)``; the other low-return ones are "unlabelled, in distribution", the rest
"unlabelled, out of distribution". Defaults (``config/config.yaml``): ``labelled`` 0.1
(``action_available_perc``), ``threshold`` 0.5 (``action_available_threshold``). Differences: a
stable sort (ties keep storage order; the official ``np.argsort`` is not stable) and numpy's
``default_rng(seed)`` instead of the global ``np.random`` state.

Example:
    >>> import numpy as np
    >>> split = ssorl_split(np.array([5.0, 1.0, 4.0, 2.0, 3.0, 0.0]), labelled=0.34, threshold=0.5)
    >>> len(split.labelled), set(split.labelled.tolist()) <= {5, 1, 3}, split.out_of_distribution
    (2, True, array([0, 2, 4]))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.data.dataset import ARRAY_FIELDS, Dataset
from policyfit.errors import ConfigError, DatasetError

PAPER = "Zheng et al., ICML 2023 (SS-ORL)"
AVAILABLE_KEY = "action_available"  # extra array: False on the steps of action-free episodes
PROXY_KEY = "proxy_action"  # extra array of a relabelled dataset: True where the IDM labelled
DEFAULT_LABELLED = 0.1
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Split:
    """Episode indices (storage order) of SS-ORL's three groups."""

    labelled: np.ndarray
    in_distribution: np.ndarray  # low-return episodes left unlabelled
    out_of_distribution: np.ndarray  # the episodes above the return threshold
    labelled_fraction: float
    threshold: float
    seed: int

    @property
    def unlabelled(self) -> np.ndarray:
        return np.sort(np.concatenate([self.in_distribution, self.out_of_distribution]))

    def record(self, ds: Dataset) -> dict[str, Any]:
        """The split as a JSON-able dict (for the card)."""
        lengths = ds.episode_lengths
        return {
            "protocol": (
                f"{PAPER}: trajectories sorted by return; the labelled ones drawn at random from "
                f"the lowest {self.threshold:g} fraction, min(int(n * {self.labelled_fraction:g}), "
                f"int(n * {self.threshold:g})) of n"
            ),
            "labelled_fraction_requested": self.labelled_fraction,
            "threshold": self.threshold,
            "seed": self.seed,
            "episodes": int(ds.num_episodes),
            "labelled_episodes": int(self.labelled.size),
            "labelled_fraction": float(self.labelled.size / ds.num_episodes),
            "labelled_transitions": int(lengths[self.labelled].sum()),
            "unlabelled_in_distribution_episodes": int(self.in_distribution.size),
            "unlabelled_out_of_distribution_episodes": int(self.out_of_distribution.size),
        }


def check_fraction(value: float, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float in (0, 1] ([0, 1] with ``allow_zero``), else a one-line ConfigError."""
    ok = isinstance(value, int | float) and np.isfinite(value) and value <= 1.0
    ok = ok and (value >= 0.0 if allow_zero else value > 0.0)
    if not ok:
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(f"must be a fraction in {bound}, got {value!r}", field=name)
    return float(value)


def ssorl_split(
    returns: np.ndarray,
    labelled: float = DEFAULT_LABELLED,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    *,
    allow_empty: bool = False,
) -> Split:
    """SS-ORL's split of episodes with these ``returns`` (see the module docstring)."""
    labelled = check_fraction(labelled, "labelled", allow_zero=allow_empty)
    threshold = check_fraction(threshold, "threshold")
    returns = np.asarray(returns, dtype=np.float64)
    n = returns.shape[0]
    order = np.argsort(returns, kind="stable")  # lowest to highest
    upper = int(n * threshold)
    size = min(upper, int(n * labelled))
    if size == 0 and not allow_empty:
        raise ConfigError(
            f"labels no episode: min(int({n} * {labelled:g}), int({n} * {threshold:g})) = 0 of "
            f"{n} episodes; raise the labelled fraction or the threshold",
            field="labelled",
        )
    rng = np.random.default_rng(seed)
    chosen = np.zeros(upper, dtype=bool)
    chosen[rng.choice(upper, size=size, replace=False)] = True
    return Split(
        labelled=np.sort(order[:upper][chosen]),
        in_distribution=np.sort(order[:upper][~chosen]),
        out_of_distribution=np.sort(order[upper:]),
        labelled_fraction=labelled,
        threshold=threshold,
        seed=int(seed),
    )


def require_continuous(ds: Dataset) -> None:
    """Action-free data is for continuous actions (the inverse model is a tanh-Gaussian)."""
    if ds.discrete:
        raise DatasetError(
            "actions are discrete; action-free episodes and relabelling support continuous "
            "(Box) actions only",
            path=ds.source,
            field="actions",
        )


def episode_rows(ds: Dataset, episodes: np.ndarray) -> np.ndarray:
    """``[N]`` bool: True on the steps of ``episodes``."""
    mask = np.zeros(ds.num_episodes, dtype=bool)
    mask[np.asarray(episodes, dtype=np.int64)] = True
    return np.repeat(mask, ds.episode_lengths)


def with_actions(
    ds: Dataset,
    actions: np.ndarray,
    metadata: dict[str, Any],
    extra: dict[str, np.ndarray],
    *,
    allow_action_free: bool,
) -> Dataset:
    """A copy of ``ds`` with other actions, metadata and extra arrays (the arrays are copies)."""
    arrays = {name: getattr(ds, name).copy() for name in ARRAY_FIELDS}
    arrays["actions"] = np.asarray(actions, dtype=np.float32)
    md = copy.deepcopy({k: v for k, v in metadata.items() if k != "extra_arrays"})
    if extra:
        md["extra_arrays"] = extra
    return Dataset(
        **arrays,
        metadata=md,
        source=ds.source,
        _warn_truncated=False,
        allow_action_free=allow_action_free,
    )


def strip_actions(
    ds: Dataset,
    keep_fraction: float = DEFAULT_LABELLED,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
) -> Dataset:
    """``ds`` with the actions of all but SS-ORL's labelled share removed (set to NaN).

    The kept episodes are :func:`ssorl_split`'s ``labelled`` ones (``keep_fraction`` 0 strips
    every episode). The result carries the extra array ``action_available`` and the card field
    ``action_free`` (the split, counts, the source's fingerprint).

    Example:
        >>> import numpy as np
        >>> ds = Dataset(observations=np.zeros((8, 1)), actions=np.ones((8, 1)),
        ...              rewards=np.arange(8.0), terminals=np.array([0, 1] * 4))
        >>> free = strip_actions(ds, keep_fraction=0.25, threshold=0.25)
        >>> free.action_free_episodes().tolist(), free.actions[:2, 0].tolist()
        ([1, 2, 3], [1.0, 1.0])
    """
    require_continuous(ds)
    if not ds.action_available.all():
        raise DatasetError(
            f"already has {ds.action_free_episodes().size} action-free episodes; strip actions "
            "from a fully labelled dataset",
            path=ds.source,
            field="actions",
        )
    split = ssorl_split(ds.episode_returns(), keep_fraction, threshold, seed, allow_empty=True)
    keep = episode_rows(ds, split.labelled)
    actions = ds.actions.copy()
    actions[~keep] = np.nan
    record = {
        **split.record(ds),
        "keep_fraction": split.labelled_fraction,
        "action_free_episodes": int(split.unlabelled.size),
        "action_free_transitions": int((~keep).sum()),
        "source": ds.source,
        "source_fingerprint": ds.fingerprint(),
        "representation": (
            "NaN actions on every step of an action-free episode; extra array "
            f"'{AVAILABLE_KEY}' (Minari: infos/policyfit_extra/{AVAILABLE_KEY}) is False there"
        ),
    }
    md = copy.deepcopy({k: v for k, v in ds.metadata.items() if k != "extra_arrays"})
    md["action_free"] = record
    card = dict(md.get("card") or {})
    card["action_free"] = (
        f"{record['action_free_episodes']:,} of {ds.num_episodes:,} episodes action-free (NaN "
        f"actions); {split.labelled.size:,} keep their actions, drawn from the lowest "
        f"{split.threshold:g} of returns ({PAPER}); seed {split.seed}; label them with "
        "`policyfit data relabel`"
    )
    md["card"] = card
    extra = {k: np.asarray(v).copy() for k, v in (ds.metadata.get("extra_arrays") or {}).items()}
    extra[AVAILABLE_KEY] = keep
    return with_actions(ds, actions, md, extra, allow_action_free=True)
