"""Sweeps: grids of algorithms x datasets x seeds x config overrides, one training per trial.

Trials run in a local process pool (the default, no Ray needed) or as Ray tasks
(``engine="ray"``); finished trials are skipped and interrupted ones resume on re-run.
:func:`run_trials` is the executor underneath, for grids of any trial function (the corruption
benchmark runs its grid on it).

Example:
    >>> from policyfit.sweep import read_spec, run_sweep              # doctest: +SKIP
    >>> run_sweep(read_spec("sweep.yaml"), "sweeps/demo", jobs=4)    # doctest: +SKIP
"""

from policyfit.sweep.executor import ENGINES, Outcome, default_jobs, run_trials
from policyfit.sweep.results import compare_runs, read_run, write_results
from policyfit.sweep.runner import run_state, run_sweep, run_trial
from policyfit.sweep.spec import SweepSpec, Trial, expand_trials, read_spec, spec_from_dict

__all__ = [
    "ENGINES",
    "Outcome",
    "SweepSpec",
    "Trial",
    "compare_runs",
    "default_jobs",
    "expand_trials",
    "read_run",
    "read_spec",
    "run_state",
    "run_sweep",
    "run_trial",
    "run_trials",
    "spec_from_dict",
    "write_results",
]
