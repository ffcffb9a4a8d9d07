"""Run many independent trials side by side: a local process pool (default) or Ray tasks.

:func:`run_trials` calls ``fn(*args)`` once per entry of ``calls`` and returns one
:class:`Outcome` per call, in the order of ``calls``. Whatever a call raises is caught in the worker
and recorded (``status="failed"``, a one-line ``error`` and the ``traceback``); the other calls go
on. A call not started before ``stop_at`` (a :func:`time.time` deadline) is not started at all
(``status="pending"``).

Engines:

* ``local`` — a :class:`~concurrent.futures.ProcessPoolExecutor` of ``jobs`` worker processes
  started with ``spawn`` (JAX is not fork-safe). A worker that dies (out of memory, a crash) fails
  the calls it was running; the pool is rebuilt for the rest. Needs nothing beyond policyfit.
* ``ray`` — one Ray task per call (one CPU each) on a local Ray instance with ``jobs`` CPUs, or on
  the cluster at ``address``. Ray is imported only here: ``pip install 'policyfit[ray]'``.

``fn`` and ``args`` travel to the workers by pickling, so ``fn`` must be importable by name there
(a function of an installed module, not a lambda or a function of a script run as ``__main__``
loaded by path).

Example:
    >>> import math
    >>> outcomes = run_trials(math.sqrt, [(4.0,), (-1.0,)], jobs=2)  # doctest: +SKIP
    >>> [(o.status, o.value, o.error) for o in outcomes]             # doctest: +SKIP
    [('done', 2.0, None), ('failed', None, 'ValueError: math domain error')]
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from policyfit.common.progress import ProgressBar
from policyfit.errors import ConfigError, PolicyfitError

ENGINES = ("local", "ray")

# One XLA thread per worker when trials run side by side: JAX's default thread pool would make
# concurrent trials fight over every core. A value the user set in the environment wins.
WORKER_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}

WORKER_DIED = (
    "the worker process died while this trial ran (out of memory or a crash); rerun to retry it"
)


@dataclass
class Outcome:
    """What one call came to: ``done`` (``value``), ``failed`` (``error``) or ``pending``."""

    status: str
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0


def error_line(exc: BaseException) -> str:
    """A one-line message for a table: a PolicyfitError's own line, else ``Type: first line``."""
    if isinstance(exc, PolicyfitError):
        return exc.one_line()
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_jobs(calls: int | None = None) -> int:
    """One worker per CPU this process may use, and no more workers than calls."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, calls) if calls else cpus)


def resolve_engine(engine: str | None, address: str | None) -> str:
    """``engine`` as given, or ``ray`` when an ``address`` is named, else ``local``."""
    if engine is None:
        return "ray" if address else "local"
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}", field="engine")
    if address and engine != "ray":
        raise ConfigError(
            "--address names a Ray cluster; use it with --engine ray (or leave --engine out)",
            field="engine",
        )
    return engine


def call_captured(fn: Callable[..., Any], args: tuple, stop_at: float | None) -> Outcome:
    """Run ``fn(*args)`` in a worker; never raises for an exception of ``fn``."""
    if stop_at is not None and time.time() > stop_at:
        return Outcome("pending")
    t0 = time.perf_counter()
    try:
        value = fn(*args)
    except Exception as exc:  # recorded per trial; the others go on
        return Outcome(
            "failed",
            error=error_line(exc),
            traceback=traceback.format_exc(),
            seconds=time.perf_counter() - t0,
        )
    return Outcome("done", value=value, seconds=time.perf_counter() - t0)


def _set_worker_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        os.environ.setdefault(key, value)


def run_trials(
    fn: Callable[..., Any],
    calls: Sequence[tuple],
    *,
    engine: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    stop_at: float | None = None,
    on_result: Callable[[int, Outcome], None] | None = None,
    progress: bool = False,
    description: str = "trials",
) -> list[Outcome]:
    """``fn(*call)`` for every ``call`` on ``engine``; the outcomes in the order of ``calls``.

    ``on_result(index, outcome)`` is called in this process as each call ends (in the order they
    end). ``progress`` shows a progress bar over the calls (on a terminal).
    """
    engine = resolve_engine(engine, address)
    if jobs is not None and jobs < 1:
        raise ConfigError(f"must be >= 1, got {jobs}", field="jobs")
    outcomes: list[Outcome | None] = [None] * len(calls)
    if not calls:
        return []
    bar = ProgressBar(description, len(calls), elapsed=True, enabled=progress)

    def finish(index: int, outcome: Outcome) -> None:
        outcomes[index] = outcome
        bar.advance()
        if on_result is not None:
            on_result(index, outcome)

    try:
        if engine == "ray":
            _run_ray(fn, calls, jobs, address, stop_at, finish)
        else:
            _run_local(fn, calls, jobs or default_jobs(len(calls)), stop_at, finish)
    finally:
        bar.close()
    return [o if o is not None else Outcome("pending") for o in outcomes]


def _run_local(
    fn: Callable[..., Any],
    calls: Sequence[tuple],
    jobs: int,
    stop_at: float | None,
    finish: Callable[[int, Outcome], None],
) -> None:
    """At most ``jobs`` calls in flight, so a deadline and a dead worker affect only those."""
    context = multiprocessing.get_context("spawn")
    env = dict(WORKER_ENV) if jobs > 1 else {}

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_set_worker_env, initargs=(env,)
        )

    queue = deque(range(len(calls)))
    running: dict[Future, int] = {}
    pool = new_pool()
    try:
        while queue or running:
            while queue and len(running) < jobs:
                index = queue.popleft()
                if stop_at is not None and time.time() > stop_at:
                    finish(index, Outcome("pending"))
                    continue
                running[pool.submit(call_captured, fn, tuple(calls[index]), stop_at)] = index
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                index = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    outcome = Outcome("failed", error=WORKER_DIED)
                except Exception as exc:  # e.g. the call could not be pickled
                    outcome = Outcome(
                        "failed",
                        error=error_line(exc),
                        traceback="".join(traceback.format_exception(exc)),
                    )
                finish(index, outcome)
            if broken:  # every call still in the broken pool is lost with it
                for index in running.values():
                    finish(index, Outcome("failed", error=WORKER_DIED))
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
    finally:
        pool.shutdown(wait=not running, cancel_futures=True)


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address`` or start a local instance; True when we started it (and stop it)."""
    try:
        import ray
    except ImportError:
        raise PolicyfitError(
            "Ray is not installed; install the extra (pip install 'policyfit[ray]') "
            "or use the local engine (--engine local)",
            field="engine",
        ) from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or default_jobs()
        kwargs["runtime_env"] = {"env_vars": dict(WORKER_ENV)}
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise PolicyfitError(
            f"cannot start or reach Ray: {exc}", path=address, field="address"
        ) from None
    return True


def _run_ray(
    fn: Callable[..., Any],
    calls: Sequence[tuple],
    jobs: int | None,
    address: str | None,
    stop_at: float | None,
    finish: Callable[[int, Outcome], None],
) -> None:
    started = _start_ray(address, jobs)
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(call_captured)
        refs = {remote.remote(fn, tuple(c), stop_at): i for i, c in enumerate(calls)}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            try:
                outcome = ray.get(ready[0])
            except Exception as exc:  # the worker itself died, or the task could not run
                outcome = Outcome("failed", error=error_line(exc))
            finish(refs[ready[0]], outcome)
    finally:
        if started:
            ray.shutdown()
