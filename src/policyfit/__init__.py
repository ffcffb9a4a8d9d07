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
    "load_dataset": "policyfit.envs.datasets",
    "save_dataset": "policyfit.data.io",
    "make_dataset": "policyfit.envs.suite",
    "corrupt_dataset": "policyfit.corruption",
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

__all__ = sorted([*_PUBLIC, "diagnose"])


def diagnose(dataset: Any, reference: Any = "auto", ref_scores: Any = None, **options: Any) -> Any:
    """Measure a dataset's quality: :func:`policyfit.diagnostics.diagnose`, where
    ``reference="auto"`` is the built-in suite's ``<env>-medium-replay`` when it is cached
    (:func:`policyfit.envs.datasets.suite_reference`), as in ``policyfit data inspect --full``.

    The diagnostics never import the suite (they sit below it); this is where the two meet.
    """
    from policyfit.diagnostics.card import diagnose as diagnose_dataset
    from policyfit.envs.datasets import suite_reference

    options.setdefault("reference_resolver", suite_reference)
    return diagnose_dataset(dataset, reference, ref_scores, **options)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'policyfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
