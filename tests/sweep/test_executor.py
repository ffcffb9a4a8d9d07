"""The sweep executor (local process pool, errors per trial, deadline, dead workers) and the
finished / interrupted / foreign states of a trial directory. No training here."""

from __future__ import annotations

import json
import math
import os
import sys
import time

import pytest

from policyfit.errors import ConfigError, PolicyfitError
from policyfit.sweep.executor import WORKER_DIED, resolve_engine, run_trials
from policyfit.sweep.runner import run_state


def test_local_pool_returns_values_in_order_and_captures_each_error():
    seen = []
    outcomes = run_trials(
        math.sqrt,
        [(4.0,), (-1.0,), (2.25,)],
        jobs=2,
        on_result=lambda i, o: seen.append((i, o.status)),
    )
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert [o.value for o in outcomes] == [2.0, None, 1.5]
    assert outcomes[1].error == "ValueError: math domain error"
    assert "math domain error" in outcomes[1].traceback
    assert sorted(seen) == [(0, "done"), (1, "failed"), (2, "done")]


def test_no_call_starts_after_the_deadline(tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("x")
    outcomes = run_trials(os.remove, [(str(victim),)] * 2, jobs=1, stop_at=time.time() - 1)
    assert [o.status for o in outcomes] == ["pending", "pending"]
    assert victim.is_file()  # os.remove never ran


def test_a_dead_worker_fails_its_call_and_a_new_pool_runs_the_rest():
    # os._exit kills the worker process itself: no exception to catch, the pool breaks
    outcomes = run_trials(os._exit, [(3,), (4,)], jobs=1)
    assert [(o.status, o.error) for o in outcomes] == [("failed", WORKER_DIED)] * 2


def test_engine_choice():
    assert resolve_engine(None, None) == "local"
    assert resolve_engine(None, "auto") == "ray"
    assert resolve_engine("ray", None) == "ray"
    with pytest.raises(ConfigError, match="engine: --address names a Ray cluster"):
        resolve_engine("local", "10.0.0.1:6379")
    with pytest.raises(ConfigError, match="unknown engine 'dask'"):
        resolve_engine("dask", None)


def test_ray_engine_without_ray_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(PolicyfitError, match=r"Ray is not installed.*policyfit\[ray\]"):
        run_trials(math.sqrt, [(4.0,)], engine="ray")


def _run_dir(path, *, summary=None, **config):
    path.mkdir(parents=True)
    stored = {"format": "policyfit-run/1", "algorithm": "td3bc", "seed": 1, "steps": 100}
    stored["config"] = {"alpha": 2.5, "hidden_dims": [256, 256]}
    (path / "config.json").write_text(json.dumps({**stored, **config}))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps({"algorithm": "td3bc", "seed": 1, **summary}))
    return path


def test_run_state_new_finished_and_resumed(tmp_path):
    kw = {"algorithm": "td3bc", "seed": 1, "steps": 100}
    assert run_state(tmp_path / "none", **kw) == "new"
    interrupted = _run_dir(tmp_path / "interrupted")
    assert run_state(interrupted, **kw) == "resume"
    done = _run_dir(tmp_path / "done", summary={"steps": 100})
    assert run_state(done, **kw) == "finished"
    # the same config after the algorithm's conversion ("2.5" from --set, a list for a tuple)
    assert run_state(done, **kw, config={"alpha": "2.5", "hidden_dims": [256, 256]}) == "finished"
    assert run_state(done, **{**kw, "algorithm": "TD3+BC"}) == "finished"  # registry spelling
    assert run_state(done, **{**kw, "steps": 300}) == "resume"  # the budget grew: continue


def test_run_state_refuses_a_directory_of_another_run(tmp_path):
    kw = {"algorithm": "td3bc", "seed": 1, "steps": 100}
    done = _run_dir(tmp_path / "done", summary={"steps": 100})
    with pytest.raises(PolicyfitError, match="steps: finished with 100 steps, more than the 50"):
        run_state(done, **{**kw, "steps": 50})
    with pytest.raises(PolicyfitError, match="seed: holds the run of seed 1, not 2"):
        run_state(done, **{**kw, "seed": 2})
    with pytest.raises(PolicyfitError, match="algorithm: holds a td3bc run, not iql"):
        run_state(done, **{**kw, "algorithm": "iql"})
    with pytest.raises(PolicyfitError, match=r"config.alpha: holds a run with alpha=2.5, .*=1.0"):
        run_state(done, **kw, config={"alpha": 1.0})
