"""Reference scores and the D4RL normalized score: the one table and the one rule.

The D4RL normalized score of a return ``R`` is ``100 * (R - R_random) / (R_expert - R_random)``
(Fu et al. 2020), with D4RL's reference returns, so policyfit's numbers sit on the scale every
paper reports. D4RL used the ``-v2`` MuJoCo environments (mujoco-py); policyfit uses gymnasium's
``-v5`` (the ``mujoco`` bindings): the same tasks, not bit-identical, so scores are comparable in
scale, not to the decimal.

Where ``(random, expert)`` come from, everywhere (rollouts, the trainer, OPE, statistics, dataset
summaries, data cards):

1. a pair the caller passes explicitly (``ref_scores=...``), checked by :func:`check_ref_scores`;
2. else the table below, for a registered environment (gymnasium id or short name);
3. else the dataset's ``ref_min_score`` / ``ref_max_score`` metadata (two finite numbers that
   differ, or a :class:`~policyfit.errors.DatasetError`);
4. else none: the normalized fields are None.

:func:`reference_scores` applies rules 2-4; the explicit pair of rule 1 is each function's argument.

Example:
    >>> reference_scores("Hopper-v5")
    (-20.272305, 3234.3)
    >>> reference_scores("hopper", {"ref_min_score": 0.0, "ref_max_score": 1.0})  # the table wins
    (-20.272305, 3234.3)
    >>> reference_scores("MyEnv-v0", {"ref_min_score": 0.0, "ref_max_score": 200.0})
    (0.0, 200.0)
    >>> float(normalized_score(100.0, (0.0, 200.0)))
    50.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class Reference:
    """D4RL's reference returns of one environment."""

    env_id: str  # gymnasium id
    short_name: str  # dataset prefix in the built-in suite: hopper, halfcheetah, walker2d
    ref_min_score: float  # D4RL's random-policy return
    ref_max_score: float  # D4RL's expert return


REFERENCES: dict[str, Reference] = {
    ref.env_id: ref
    for ref in (
        Reference("Hopper-v5", "hopper", -20.272305, 3234.3),
        Reference("HalfCheetah-v5", "halfcheetah", -280.178953, 12135.0),
        Reference("Walker2d-v5", "walker2d", 1.629008, 4592.3),
    )
}
SHORT_NAMES: dict[str, str] = {ref.short_name: env_id for env_id, ref in REFERENCES.items()}

_PAIR_HELP = "must be (random_return, expert_return) or a dict with ref_min_score and ref_max_score"


def registered_reference(env_id: str | None) -> Reference | None:
    """The table's entry for a gymnasium id (``Hopper-v5``) or short name (``hopper``), or None."""
    if not env_id:
        return None
    return REFERENCES.get(env_id) or REFERENCES.get(SHORT_NAMES.get(env_id.lower(), ""))


def metadata_reference_scores(
    metadata: Mapping[str, Any] | None, source: str | None = None
) -> tuple[float, float] | None:
    """``(ref_min_score, ref_max_score)`` of dataset metadata; None when either is missing.

    A :class:`DatasetError` (naming ``source``) when they are not two finite, different numbers.
    """
    md = metadata or {}
    lo, hi = md.get("ref_min_score"), md.get("ref_max_score")
    if lo is None or hi is None:
        return None
    try:
        pair = float(lo), float(hi)
    except (TypeError, ValueError):
        pair = (math.nan, math.nan)
    if not (math.isfinite(pair[0]) and math.isfinite(pair[1])) or pair[0] == pair[1]:
        raise DatasetError(
            f"ref_min_score and ref_max_score must be finite numbers that differ, got {lo!r} "
            f"and {hi!r}; fix the metadata or pass ref_scores=(random, expert)",
            path=source,
            field="metadata.ref_max_score",
        )
    return pair


def reference_scores(
    env_id: str | None,
    metadata: Mapping[str, Any] | None = None,
    *,
    source: str | None = None,
) -> tuple[float, float] | None:
    """``(random, expert)`` returns: the table for a registered ``env_id``, else the metadata's
    ``ref_min_score``/``ref_max_score`` (checked, errors name ``source``), else None."""
    ref = registered_reference(env_id)
    if ref is not None:
        return ref.ref_min_score, ref.ref_max_score
    return metadata_reference_scores(metadata, source)


def reference_origin(env_id: str | None, metadata: Mapping[str, Any] | None = None) -> str | None:
    """Where :func:`reference_scores` takes its pair from: ``"registry"``, ``"dataset metadata"``
    or None."""
    if registered_reference(env_id) is not None:
        return "registry"
    md = metadata or {}
    if md.get("ref_min_score") is not None and md.get("ref_max_score") is not None:
        return "dataset metadata"
    return None


def check_ref_scores(ref_scores: Any, field: str = "ref_scores") -> tuple[float, float]:
    """A caller's ``(random, expert)`` pair (or ``{"ref_min_score", "ref_max_score"}`` dict) as two
    finite, different floats, or a :class:`ConfigError` naming ``field``."""
    try:
        if isinstance(ref_scores, Mapping):
            pair = ref_scores["ref_min_score"], ref_scores["ref_max_score"]
        else:
            pair = tuple(ref_scores)
        lo, hi = (float(x) for x in pair)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{_PAIR_HELP}, got {ref_scores!r}", field=field) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        raise ConfigError(
            f"the random and expert returns must be finite and differ, got ({lo:g}, {hi:g})",
            field=field,
        )
    return lo, hi


def normalized_score(returns: Any, refs: tuple[float, float]) -> np.ndarray:
    """``100 * (R - random) / (expert - random)``, elementwise, as float64."""
    lo, hi = refs
    return 100.0 * (np.asarray(returns, dtype=np.float64) - lo) / (hi - lo)
