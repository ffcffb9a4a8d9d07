"""Generate built-in suite datasets end to end and time them (issue 3: 1M transitions <= 10 min).

    python benchmarks/generate.py [--names hopper-medium,halfcheetah-random] [--size 1000000]

For each name: ``rollout_s`` = the policy rolled out in 32 vectorized environments with the jitted
batched policy (:func:`policyfit.envs.suite.generate_arrays`); ``total_s`` = ``make_dataset`` from
scratch into a temporary directory (rollout + Minari write + read-back). The machine's load
average is recorded: the reference box has 2 cores that are usually shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", default="hopper-medium")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--target-s", type=float, default=600.0)
    args = parser.parse_args()

    from policyfit.envs import suite

    runs = []
    for name in args.names.split(","):
        env_id, kind = suite.parse_name(name)
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            ds = suite.make_dataset(
                name, size=args.size, seed=0, out=Path(tmp) / name, progress=False
            )
            total = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
        t0 = time.perf_counter()
        suite.generate_arrays(name, size=min(args.size, 100_000), seed=1, progress=False)
        rollout_100k = time.perf_counter() - t0
        run = {
            "name": name,
            "env_id": env_id,
            "transitions": len(ds),
            "episodes": ds.num_episodes,
            "total_s": round(total, 1),
            "process_cpu_s": round(cpu, 1),
            "transitions_per_s": round(len(ds) / total),
            "rollout_100k_s": round(rollout_100k, 1),
            "fingerprint": ds.fingerprint(),
            "num_envs": suite.NUM_ENVS,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "meets_target": total <= args.target_s,
        }
        print(run, flush=True)
        runs.append(run)
    path = write_result("generate", {"size": args.size, "target_s": args.target_s, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
