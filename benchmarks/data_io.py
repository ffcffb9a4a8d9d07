"""Load and inspect a 1M-transition D4RL-style HDF5 file (obs 17, act 6).

Targets on the 2-core reference machine: load <= 3 s, inspect <= 5 s.

    python benchmarks/data_io.py [--transitions 1000000] [--repeats 3]

``load`` = ``load_dataset(path)`` (read + validate + episode boundaries);
``inspect`` = the ``policyfit data inspect --json`` command end to end in a fresh process
(interpreter start, imports, load, summary with fingerprint).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def make_file(path: Path, n: int, obs_dim: int = 17, act_dim: int = 6, seed: int = 0) -> None:
    import h5py

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["observations"] = obs[:-1]
        f["next_observations"] = obs[1:]
        f["actions"] = rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"] = rng.random(n) < 0.001
        f["timeouts"] = (np.arange(n) % 1000) == 999


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from policyfit.data.io import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.hdf5"
        make_file(path, args.transitions)
        size_mb = path.stat().st_size / 2**20
        load_s, summary_s, inspect_s = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ds = load_dataset(path)
            load_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ds.summary()
            summary_s.append(time.perf_counter() - t0)
            del ds
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "policyfit.cli", "data", "inspect", str(path), "--json"],
                check=True,
                capture_output=True,
            )
            inspect_s.append(time.perf_counter() - t0)
    result = {
        "transitions": args.transitions,
        "observation_dim": 17,
        "action_dim": 6,
        "file_mb": round(size_mb, 1),
        "repeats": args.repeats,
        "load_seconds": {"min": min(load_s), "median": float(np.median(load_s)), "all": load_s},
        "summary_seconds": {
            "min": min(summary_s),
            "median": float(np.median(summary_s)),
            "all": summary_s,
        },
        "inspect_cli_seconds": {
            "min": min(inspect_s),
            "median": float(np.median(inspect_s)),
            "all": inspect_s,
        },
        "targets": {"load_seconds": 3.0, "inspect_cli_seconds": 5.0},
    }
    result["meets_targets"] = bool(
        result["load_seconds"]["median"] <= 3.0 and result["inspect_cli_seconds"]["median"] <= 5.0
    )
    out = write_result("data_io", result)
    print(
        f"load {result['load_seconds']['median']:.2f}s  inspect (CLI, fresh process) "
        f"{result['inspect_cli_seconds']['median']:.2f}s  -> {out}"
    )


if __name__ == "__main__":
    main()
