"""`import policyfit` sets XLA CPU defaults that avoid a hang seen with jax 0.10 (see __init__)."""

import os
import subprocess
import sys

CODE = (
    "import os, policyfit; "
    "print(os.environ.get('XLA_FLAGS', ''), os.environ.get('JAX_CPU_ENABLE_ASYNC_DISPATCH'))"
)


def flags_after_import(**env: str) -> str:
    # a minimal environment: nothing inherited from this (possibly already configured) process
    base = {k: os.environ[k] for k in ("PATH", "HOME", "POLICYFIT_HOME") if k in os.environ}
    out = subprocess.run(
        [sys.executable, "-c", CODE],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_import_sets_the_defaults_and_keeps_other_flags():
    assert flags_after_import() == "--xla_cpu_multi_thread_eigen=false false"
    kept = flags_after_import(XLA_FLAGS="--xla_dump_to=/tmp/x")
    assert kept == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false false"


def test_the_users_choice_wins():
    assert flags_after_import(
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=true", JAX_CPU_ENABLE_ASYNC_DISPATCH="true"
    ) == ("--xla_cpu_multi_thread_eigen=true true")
    assert flags_after_import(POLICYFIT_XLA_DEFAULTS="0") == "None"
