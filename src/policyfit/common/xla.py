"""XLA compile options: fast compilation for tiny runs, full optimization for long loops.

Where compiling dominates (tiny networks, a few calls: tests, smoke runs), low optimization cuts
compile time several-fold; where a program runs thousands of steps (training chunks, FQE,
environment rollouts), XLA's full optimization pays for itself. ``jax.jit(f,
compiler_options=compiler_options(...))`` takes either.
"""

from __future__ import annotations

import os

__all__ = [
    "FAST_COMPILE_OPTIONS",
    "FULL_COMPILE_OPTIONS",
    "compiler_options",
    "resolve_fast_compile",
    "xla_flags",
]

# XLA options that cut compile time several-fold for slower steps: right for tiny runs and tests,
# where compiling dominates. Turned on by fast_compile=True or POLICYFIT_FAST_COMPILE=1.
FAST_COMPILE_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
# XLA's own defaults, spelled out: fast_compile=False asks for them even when $XLA_FLAGS lowers
# the optimization for the whole process (as the test suite does, where compiling dominates).
FULL_COMPILE_OPTIONS = {
    "xla_backend_optimization_level": 3,
    "xla_llvm_disable_expensive_passes": False,
}


def resolve_fast_compile(fast_compile: bool | None = None) -> bool | None:
    """``fast_compile`` as asked; when None, True if ``$POLICYFIT_FAST_COMPILE`` is set (not "0"),
    else None (the process's XLA defaults). What a run records, so that a resumed run compiles
    as the original did."""
    if fast_compile is None and os.environ.get("POLICYFIT_FAST_COMPILE", "") not in ("", "0"):
        return True
    return fast_compile


def xla_flags(options: dict) -> str:
    """``options`` as ``$XLA_FLAGS`` text, for a whole process.

    >>> xla_flags(FAST_COMPILE_OPTIONS)
    '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'
    """
    return " ".join(f"--{k}={str(v).lower()}" for k, v in options.items())


def compiler_options(fast_compile: bool | None = None) -> dict | None:
    """XLA options for ``jax.jit``.

    True: :data:`FAST_COMPILE_OPTIONS`; False: :data:`FULL_COMPILE_OPTIONS` (full optimization
    whatever ``$XLA_FLAGS`` says); None: ``$POLICYFIT_FAST_COMPILE=1`` means True, otherwise None
    (the process's XLA defaults).

    >>> compiler_options(True)["xla_backend_optimization_level"]
    0
    >>> compiler_options(False)["xla_backend_optimization_level"]
    3
    """
    fast_compile = resolve_fast_compile(fast_compile)
    if fast_compile is None:
        return None
    return dict(FAST_COMPILE_OPTIONS if fast_compile else FULL_COMPILE_OPTIONS)
