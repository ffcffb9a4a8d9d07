"""A policy smoothing certificate on a suite policy: bound versus budget for several sigma, and the
return under a simple attack at the largest budget (the bound must sit below it).

The policy is the shipped Hopper ``expert`` behavior snapshot (mean action). Hopper's per-step
reward has no finite lower bound (it includes the forward velocity), so the floor is the smallest
clean return and the certified quantity is ``E[max(R, floor)]`` (see
:mod:`policyfit.evaluation.certify`).

Run: ``.venv/bin/python benchmarks/certify_demo.py [--episodes 100] [--budget 1.0]``; writes
``benchmarks/results/certify_demo.json`` and ``certify_demo.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, write_result  # noqa: E402
from policyfit.common.files import atomic_write_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--kind", default="expert")
    parser.add_argument("--sigma", type=float, action="append", default=None)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sigmas = args.sigma or [0.02, 0.05, 0.1]

    from policyfit.envs.shipped import load_behavior_policy
    from policyfit.evaluation.certify import (
        certify_policy,
        format_certificate_table,
        plot_certificate,
    )
    from policyfit.evaluation.stats import figure_png_bytes

    t0 = time.perf_counter()
    policy = load_behavior_policy(args.env, args.kind)
    report = certify_policy(
        policy,
        args.env,
        sigmas,
        args.budget,
        episodes=args.episodes,
        alpha=args.alpha,
        seed=args.seed,
    )
    table = format_certificate_table(report)
    print(table)
    png = RESULTS_DIR / "certify_demo.png"
    atomic_write_bytes(png, figure_png_bytes(plot_certificate(report)))
    path = write_result(
        "certify_demo",
        {
            "policy": f"{args.env} {args.kind} (shipped behavior snapshot, mean action)",
            **report.to_dict(),
            "table_markdown": table,
            "plot": str(png.relative_to(RESULTS_DIR.parent.parent)),
            "seconds": time.perf_counter() - t0,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
