"""Sweeps: grids of algorithms x datasets x seeds x config overrides, each trial a Ray task.

Example:
    >>> from policyfit.sweep import read_spec, run_sweep     # doctest: +SKIP
    >>> run_sweep(read_spec("sweep.yaml"), "sweeps/demo")    # doctest: +SKIP
"""

from policyfit.sweep.results import compare_runs, read_run, write_results
from policyfit.sweep.runner import run_sweep, run_trial
from policyfit.sweep.spec import SweepSpec, Trial, expand_trials, read_spec, spec_from_dict

__all__ = [
    "SweepSpec",
    "Trial",
    "compare_runs",
    "expand_trials",
    "read_run",
    "read_spec",
    "run_sweep",
    "run_trial",
    "spec_from_dict",
    "write_results",
]
