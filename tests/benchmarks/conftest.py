"""Benchmark modules shared by the benchmark tests (``gemm_limit``, ``corruption``)."""

from __future__ import annotations

import pytest

from bench_modules import benchmark


@pytest.fixture(scope="session")
def gemm_limit():
    with benchmark("gemm_limit") as module:
        yield module


@pytest.fixture(scope="session")
def corruption():
    with benchmark("corruption") as module:
        yield module
