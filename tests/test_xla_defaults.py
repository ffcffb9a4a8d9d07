"""`import policyfit` turns off XLA CPU's multi-threaded Eigen pool (a deadlock seen in jax 0.10)."""

import os
import subprocess
import sys

CODE = "import os, policyfit; print(os.environ.get('XLA_FLAGS', ''))"


def flags_after_import(**env: str) -> str:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", "POLICYFIT_XLA_MULTI_THREAD_EIGEN")
    }
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_import_sets_the_flag_and_keeps_other_flags():
    assert flags_after_import() == "--xla_cpu_multi_thread_eigen=false"
    kept = flags_after_import(XLA_FLAGS="--xla_dump_to=/tmp/x")
    assert kept == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"


def test_the_users_choice_wins():
    assert flags_after_import(XLA_FLAGS="--xla_cpu_multi_thread_eigen=true") == (
        "--xla_cpu_multi_thread_eigen=true"
    )
    assert flags_after_import(POLICYFIT_XLA_MULTI_THREAD_EIGEN="1") == ""
