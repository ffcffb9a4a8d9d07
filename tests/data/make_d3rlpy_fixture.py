"""Write the d3rlpy fixtures of ``tests/data/fixtures/`` with d3rlpy itself (``MDPDataset.dump``).

Run with the benchmark environment's Python, which has d3rlpy 2.x (``make bench-venv``)::

    benchmarks/.venv-d3rlpy/bin/python tests/data/make_d3rlpy_fixture.py [OUT_DIR]

Both files hold small hand-made values that the tests check one by one (exact in float32):

* ``d3rlpy_continuous.h5``: 12 steps in 3 episodes of 4, 5 and 3 steps; the first ends in a
  terminal state, the other two are cut (timeouts). ``observations[t] = [t, t + 0.5, -t]``,
  ``actions[t] = [0.25 (t mod 5) - 0.5, 0.125 t - 1]``, ``rewards[t] = t / 2``.
* ``d3rlpy_discrete.h5``: 7 steps in 2 episodes of 4 (terminal) and 3 (cut) steps; int32 actions
  ``[0, 1, 2, 0, 2, 1, 1]`` (d3rlpy stores them as ``[T, 1]`` integers),
  ``observations[t] = [t, 2t]``, ``rewards[t] = 1`` except ``rewards[3] = -1``.

The tests that compare against d3rlpy in a subprocess import :func:`write` from this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def continuous_arrays() -> dict[str, np.ndarray]:
    t = np.arange(12, dtype=np.float32)
    terminals = np.zeros(12, dtype=np.float32)
    timeouts = np.zeros(12, dtype=np.float32)
    terminals[3] = 1.0
    timeouts[[8, 11]] = 1.0
    return {
        "observations": np.stack([t, t + 0.5, -t], axis=1),
        "actions": np.stack([0.25 * (t % 5) - 0.5, 0.125 * t - 1.0], axis=1),
        "rewards": t / 2,
        "terminals": terminals,
        "timeouts": timeouts,
    }


def discrete_arrays() -> dict[str, np.ndarray]:
    t = np.arange(7, dtype=np.float32)
    rewards = np.ones(7, dtype=np.float32)
    rewards[3] = -1.0
    terminals = np.zeros(7, dtype=np.float32)
    timeouts = np.zeros(7, dtype=np.float32)
    terminals[3] = 1.0
    timeouts[6] = 1.0
    return {
        "observations": np.stack([t, 2 * t], axis=1),
        "actions": np.array([0, 1, 2, 0, 2, 1, 1], dtype=np.int32),
        "rewards": rewards,
        "terminals": terminals,
        "timeouts": timeouts,
    }


def write(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """``d3rlpy.dataset.MDPDataset(**arrays).dump`` to ``path``."""
    import d3rlpy

    dataset = d3rlpy.dataset.MDPDataset(**arrays)
    with open(path, "w+b") as f:
        dataset.dump(f)


def main(out_dir: Path) -> None:
    import d3rlpy

    out_dir.mkdir(parents=True, exist_ok=True)
    write(out_dir / "d3rlpy_continuous.h5", continuous_arrays())
    write(out_dir / "d3rlpy_discrete.h5", discrete_arrays())
    print(f"wrote d3rlpy {d3rlpy.__version__} fixtures to {out_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURES)
