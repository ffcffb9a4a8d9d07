"""Shared fixtures: an isolated POLICYFIT_HOME / Minari root per test session, small datasets."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from policyfit.common.xla import FAST_COMPILE_OPTIONS, xla_flags

# Most tests compile tiny programs and run them a few times, so compiling dominates: low XLA
# optimization cuts those by 30-50%. Tests that run thousands of updates ask for full optimization
# with fast_compile=False (policyfit.common.xla.FULL_COMPILE_OPTIONS overrides these flags).
# Set before jax starts its backend; POLICYFIT_TEST_FULL_XLA=1 keeps XLA's defaults.
if os.environ.get("POLICYFIT_TEST_FULL_XLA", "") in ("", "0"):
    flags = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags(FAST_COMPILE_OPTIONS)}"
    os.environ["XLA_FLAGS"] = flags.strip()

# One persistent XLA compilation cache for the whole run, shared by the xdist workers: many tests
# build the same small networks on the same shapes (a new Algorithm instance is a new jit, so only
# the persistent cache, keyed by the program, sees the repeat). Programs that compile in under
# 50 ms are not worth a file. Removed when the run ends (pytest_sessionfinish below); jax reads
# these variables when it is first imported. POLICYFIT_TEST_JAX_CACHE=0 turns it off.
_TEST_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
JAX_TEST_CACHE = Path(tempfile.gettempdir()) / f"policyfit-test-jax-cache-{_TEST_RUN}"
if os.environ.get("POLICYFIT_TEST_JAX_CACHE", "") != "0":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(JAX_TEST_CACHE))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.05")


def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        shutil.rmtree(JAX_TEST_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _isolated_homes(tmp_path_factory):
    home = tmp_path_factory.mktemp("policyfit_home")
    old = {k: os.environ.get(k) for k in ("POLICYFIT_HOME", "MINARI_DATASETS_PATH")}
    os.environ.setdefault("POLICYFIT_HOME", str(home))
    os.environ["MINARI_DATASETS_PATH"] = str(home / "minari")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def make_arrays(
    n: int = 250, obs_dim: int = 4, act_dim: int = 2, episode_len: int = 50, seed: int = 0
):
    """Random but well-formed D4RL-style arrays: episodes of ``episode_len`` cut by timeouts."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    timeouts = (np.arange(n) % episode_len) == episode_len - 1
    terminals = np.zeros(n, dtype=bool)
    terminals[episode_len // 2] = True  # one early terminal ends the first episode
    timeouts[episode_len // 2] = False
    return {
        "observations": obs[:-1],
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": obs[1:],
    }


@pytest.fixture
def small_dataset():
    from policyfit.data import Dataset

    return Dataset(
        **make_arrays(),
        metadata={
            "env_id": "Hopper-v5",
            "ref_min_score": -20.272305,
            "ref_max_score": 3234.3,
            "action_space": {"type": "box", "low": [-1.0, -1.0], "high": [1.0, 1.0]},
            "card": {"behavior": "random", "note": "test"},
        },
        source="small",
    )
