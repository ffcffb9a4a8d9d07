"""benchmarks/corruption.py, loaded as a module for the benchmark tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module ``bench_<name>``, registered in ``sys.modules`` (a
    dataclass looks its module up there); the caller removes it with :func:`unload_benchmark`."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def unload_benchmark(name: str) -> None:
    sys.modules.pop(f"bench_{name}", None)
    sys.path.remove(str(BENCH))


@pytest.fixture(scope="session")
def gemm_limit():
    try:
        yield load_benchmark("gemm_limit")
    finally:
        unload_benchmark("gemm_limit")


@pytest.fixture(scope="session")
def corruption():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_corruption", BENCH / "corruption.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
