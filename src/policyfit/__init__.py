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
import os
from typing import Any

__version__ = "0.1.0"


def _xla_cpu_defaults() -> None:
    """XLA CPU settings that avoid a hang seen with jax 0.10 here, unless the user chose otherwise.

    On this 2-core machine, training processes running side by side hung for good: every XLA
    thread idle, the main thread in ``device_get`` waiting for a ``lax.scan`` chunk whose work was
    never run (gdb: all Eigen workers in ``WaitForWork``; 3 processes hung in 4 starts). Two
    settings: synchronous dispatch (``JAX_CPU_ENABLE_ASYNC_DISPATCH=false``: the calling thread
    runs the computation instead of queueing it) and no multi-threaded Eigen
    (``--xla_cpu_multi_thread_eigen=false``, the cure reported in PyAutoFit#1528/#1530 for a
    similar hang; alone it did not stop ours). Measured side by side, neither changed updates/s
    (IQL 411/509 async vs 483/460 sync; TD3+BC 485/646 vs 574/644). Must run before jax creates
    its CPU client, so it runs when ``policyfit`` is imported. ``POLICYFIT_XLA_DEFAULTS=0``, or
    setting either variable yourself, keeps jax's own behavior.
    """
    if os.environ.get("POLICYFIT_XLA_DEFAULTS") == "0":
        return
    os.environ.setdefault("JAX_CPU_ENABLE_ASYNC_DISPATCH", "false")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_xla_cpu_defaults()

# Public name -> module that defines it. Imported lazily so `import policyfit` stays fast.
_PUBLIC = {
    "Dataset": "policyfit.data.dataset",
    "load_dataset": "policyfit.data.io",
    "save_dataset": "policyfit.data.io",
    "make_dataset": "policyfit.envs.suite",
    "corrupt_dataset": "policyfit.corruption",
    "diagnose": "policyfit.diagnose.card",
    "train": "policyfit.train.trainer",
    "evaluate": "policyfit.evaluate.rollout",
    "write_report": "policyfit.report",
    "return_summary": "policyfit.evaluate.stats",
    "aggregate_scores": "policyfit.evaluate.stats",
    "fitted_q_evaluation": "policyfit.evaluate.ope",
    "certify_policy": "policyfit.evaluate.certify",
    "smoothing_certificate": "policyfit.evaluate.certify",
    "run_sweep": "policyfit.sweep",
    "compare_runs": "policyfit.sweep",
    "load_policy": "policyfit.algos.policy",
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
