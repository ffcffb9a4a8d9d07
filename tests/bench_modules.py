"""Benchmark scripts (``benchmarks/<name>.py``) loaded as modules for their tests.

@pytest.fixture(scope="module")
def peer():
    with benchmark("dt_peer") as module:
        yield module
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module ``bench_<name>``, registered in ``sys.modules`` (a
    dataclass looks its module up there), with ``benchmarks/`` on ``sys.path`` (the scripts
    import ``common`` and each other); :func:`unload_benchmark` undoes both."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        unload_benchmark(name)
        raise
    return module


def unload_benchmark(name: str) -> None:
    sys.modules.pop(f"bench_{name}", None)
    if str(BENCH) in sys.path:
        sys.path.remove(str(BENCH))


@contextlib.contextmanager
def benchmark(name: str) -> Iterator[ModuleType]:
    """:func:`load_benchmark` for the ``with`` block, then :func:`unload_benchmark`."""
    module = load_benchmark(name)
    try:
        yield module
    finally:
        unload_benchmark(name)
