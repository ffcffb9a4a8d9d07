"""Reference scores and the normalized score: the one place they are looked up and computed.

The D4RL normalized score of a return ``R`` is ``100 * (R - R_random) / (R_expert - R_random)``.
Reference returns come from the environment registry (:data:`policyfit.envs.registry.ENVS`);
data whose environment is not registered may carry its own (``ref_min_score`` / ``ref_max_score``
in the dataset's metadata). The registry wins when both exist, so every policyfit score of an
environment is on the same scale.

Example:
    >>> reference_scores("Hopper-v5")
    (-20.272305, 3234.3)
    >>> reference_scores("MyEnv-v0", {"ref_min_score": 0.0, "ref_max_score": 200.0})
    (0.0, 200.0)
    >>> float(normalized_score(100.0, (0.0, 200.0)))
    50.0
"""

from __future__ import annotations

from typing import Any

import numpy as np


def reference_scores(
    env_id: str | None, metadata: dict[str, Any] | None = None
) -> tuple[float, float] | None:
    """``(random, expert)`` returns for ``env_id``: the registry, else the metadata, else None."""
    from policyfit.envs.registry import ENVS, SHORT_NAMES

    if env_id:
        spec = ENVS.get(env_id) or ENVS.get(SHORT_NAMES.get(env_id.lower(), ""))
        if spec is not None:
            return spec.ref_min_score, spec.ref_max_score
    md = metadata or {}
    if md.get("ref_min_score") is not None and md.get("ref_max_score") is not None:
        return float(md["ref_min_score"]), float(md["ref_max_score"])
    return None


def normalized_score(returns: Any, refs: tuple[float, float]) -> Any:
    """``100 * (R - random) / (expert - random)``, elementwise."""
    lo, hi = refs
    return 100.0 * (np.asarray(returns, dtype=np.float64) - lo) / (hi - lo)
