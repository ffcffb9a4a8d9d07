"""policyfit: learn decision policies from logged data.

The public API (everything the CLI uses):

>>> import policyfit
>>> ds = policyfit.load_dataset("path/to/data.hdf5")            # doctest: +SKIP
>>> result = policyfit.train("iql", ds, steps=10_000, seed=0)    # doctest: +SKIP
>>> policy = policyfit.load_policy(result.run_dir)               # doctest: +SKIP
>>> action = policy(ds.observations[0])                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


# Public name -> module that defines it. Imported lazily so `import policyfit` stays fast.
_PUBLIC = {
    "Dataset": "policyfit.data.dataset",
    "load_dataset": "policyfit.data.io",
    "save_dataset": "policyfit.data.io",
    "make_dataset": "policyfit.envs.suite",
    "corrupt_dataset": "policyfit.corruption",
    "diagnose": "policyfit.diagnostics.card",
    "train": "policyfit.training.trainer",
    "evaluate": "policyfit.evaluation.rollout",
    "write_report": "policyfit.report",
    "return_summary": "policyfit.evaluation.stats",
    "aggregate_scores": "policyfit.evaluation.stats",
    "fitted_q_evaluation": "policyfit.evaluation.ope",
    "certify_policy": "policyfit.evaluation.certify",
    "smoothing_certificate": "policyfit.evaluation.certify",
    "run_sweep": "policyfit.sweep",
    "compare_runs": "policyfit.sweep",
    "load_policy": "policyfit.training.rundir",
    "Policy": "policyfit.algos.policy",
    "RunDir": "policyfit.training.rundir",
    "ALGORITHMS": "policyfit.algos.registry",
    "get_algorithm": "policyfit.algos.registry",
    "PolicyfitError": "policyfit.errors",
    "DatasetError": "policyfit.errors",
    "ConfigError": "policyfit.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'policyfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
