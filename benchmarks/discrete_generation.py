"""Time the discrete suite's generation (issue 14: a 1M-transition dataset in <= 60 s).

    python benchmarks/discrete_generation.py [--names cartpole-random,breakout-expert,...]
                                             [--size 1000000] [--minari-size 100000]

For each name:

- ``generate_s``: :func:`policyfit.envs.discrete_suite.generate_arrays` from a cold start (jit
  compile included) and ``generate_steady_s`` a second time (compiled): the jitted, vectorized
  gymnax rollout of the recipe that the target is about;
- ``make_s`` (at ``--minari-size``): ``make_dataset`` into a temporary directory, i.e. generation
  plus the Minari write and read-back. Minari stores each episode as its own HDF5 group, so this
  part grows with the number of episodes (random MinAtar data has one per ~10 steps).

Written to ``benchmarks/results/discrete_generation_<cpu kind>.{json,md}`` with the machine's
load average (the reference box has 2 shared cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402

DEFAULT_NAMES = (
    "cartpole-random,cartpole-replay,cartpole-expert,acrobot-noisy,mountaincar-mixed,"
    "breakout-random,breakout-expert,spaceinvaders-replay"
)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, size: int, minari_size: int) -> dict:
    from policyfit.envs import discrete_suite

    load = os.getloadavg()
    cold = _time(lambda: discrete_suite.generate_arrays(name, size, seed=0, progress=False))
    steady = _time(lambda: discrete_suite.generate_arrays(name, size, seed=1, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ds = discrete_suite.make_dataset(
            name, size=minari_size, seed=2, out=Path(tmp) / name, progress=False
        )
        make_s = time.perf_counter() - t0
        episodes = ds.num_episodes
    row = {
        "name": name,
        "size": size,
        "generate_s": round(cold, 2),
        "generate_steady_s": round(steady, 2),
        "transitions_per_s": round(size / steady),
        "minari_size": minari_size,
        "make_s": round(make_s, 2),
        "minari_episodes": int(episodes),
        "loadavg_before": [round(x, 2) for x in load],
    }
    print(row, file=sys.stderr, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", default=DEFAULT_NAMES)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--minari-size", type=int, default=100_000)
    parser.add_argument("--target-s", type=float, default=60.0)
    args = parser.parse_args()

    rows = [measure(n, args.size, args.minari_size) for n in args.names.split(",")]
    worst = max(r["generate_s"] for r in rows)
    name = f"discrete_generation_{cpu_kind()}"
    write_result(
        name,
        {
            "target_s": args.target_s,
            "size": args.size,
            "worst_generate_s": worst,
            "meets_target": worst <= args.target_s,
            "runs": rows,
        },
    )
    lines = [
        f"# Discrete suite generation ({cpu_kind()})",
        "",
        f"`python benchmarks/discrete_generation.py --size {args.size}` — {len(rows)} datasets; "
        f"target: {args.size:,} transitions in <= {args.target_s:.0f} s. Worst cold generation "
        f"{worst:.1f} s: {'meets' if worst <= args.target_s else 'misses'} the target.",
        "",
        "| dataset | generate (cold, s) | generate (compiled, s) | transitions/s | "
        "make_dataset incl. Minari write+read (s) | at size | episodes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['generate_s']:.1f} | {r['generate_steady_s']:.1f} | "
            f"{r['transitions_per_s']:,} | {r['make_s']:.1f} | {r['minari_size']:,} | "
            f"{r['minari_episodes']:,} |"
        )
    lines += [
        "",
        "Cold includes the jit compile. Minari keeps one HDF5 group per episode, so writing and "
        "reading grow with the episode count, not only with the transitions.",
    ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
