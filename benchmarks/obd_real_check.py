"""The OBP paper's real-data check: estimate Bernoulli TS's click rate from the uniform-random logs.

    python benchmarks/obd_real_check.py [--campaigns all,men,women] [--bootstrap 1000]

The Open Bandit Dataset holds two logs of the same ZOZOTOWN campaign: one collected by a uniform
random recommender, one by Bernoulli Thompson sampling (BTS). The check of Saito et al. (OBP,
NeurIPS 2021 Datasets) evaluates BTS off-policy on the random logs and compares each estimator
with BTS's on-policy click rate (the mean click of its own logs): relative estimation error
``|V_hat - V| / V``. BTS's slate distribution is computed from ZOZOTOWN's production Beta prior as
OBP's ``BernoulliTS(is_zozotown_prior=True).compute_batch_action_dist`` does (100,000 posterior
draws); the reward model is policyfit's cross-fitted logistic regression (``l2`` 100: the default
overfits a 0.4% click rate). The samples that ship in the ``obp`` sdist hold 10,000 rounds per log
(the paper used the full 26M-row data), so expect wide intervals. Downloads the sdist once
(:func:`policyfit.bandit.obd.fetch_sample`, 1.3 MB from PyPI). Writes
``benchmarks/results/obd_real_check_<cpu kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402


def main() -> None:
    from policyfit.bandit import evaluate, fit_reward_model
    from policyfit.bandit.obd import (
        bts_action_dist,
        bts_prior,
        fetch_sample,
        on_policy_value,
        read_obd,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", default="all,men,women")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--l2", type=float, default=100.0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    root = fetch_sample()
    rows = []
    for campaign in args.campaigns.split(","):
        fb = read_obd(root, "random", campaign)
        alpha, beta = bts_prior(root, campaign)
        pi = bts_action_dist(alpha, beta, fb.n_rounds, len_list=3)
        q_hat = fit_reward_model(
            fb, model="logistic", n_folds=2, random_state=0, len_list=3, l2=args.l2
        )
        truth = on_policy_value(root, "bts", campaign)
        result = evaluate(fb, pi, None, q_hat, n_bootstrap_samples=args.bootstrap, random_state=0)
        for name, r in result.items():
            lo, hi = r["95.0% CI (lower)"], r["95.0% CI (upper)"]
            rows.append(
                {
                    "campaign": campaign,
                    "estimator": name,
                    "estimate": r["estimate"],
                    "ci_lower": lo,
                    "ci_upper": hi,
                    "on_policy_bts": truth,
                    "random_logs_ctr": float(fb.reward.mean()),
                    "relative_error": abs(r["estimate"] - truth) / truth,
                    "covers_truth": bool(lo <= truth <= hi),
                    "rounds": fb.n_rounds,
                }
            )
        print(
            f"{campaign}: BTS on-policy {truth:.5f}; random logs {fb.reward.mean():.5f}", flush=True
        )
    name = f"obd_real_check_{cpu_kind()}"
    config = {"campaigns": args.campaigns.split(","), "bootstrap": args.bootstrap, "l2": args.l2}
    write_result(name, {"config": config, "seconds": time.perf_counter() - t0, "rows": rows})
    lines = [
        f"# OBP's real-data check on the Open Bandit Dataset samples ({cpu_kind()})",
        "",
        "BTS's click rate estimated off-policy from the uniform-random logs (10,000 rounds each) "
        "vs its on-policy click rate; 95% percentile-bootstrap intervals "
        f"({args.bootstrap} resamples); OBP's default hyperparameters (dr-os and sg-* at lambda 0 "
        "equal dm and ipw/dr).",
        "",
        "| campaign | estimator | estimate | 95% interval | BTS on-policy | relative error | covers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['campaign']} | {r['estimator']} | {r['estimate']:.5f} | "
            f"[{r['ci_lower']:.5f}, {r['ci_upper']:.5f}] | {r['on_policy_bts']:.5f} | "
            f"{r['relative_error']:.3f} | {'yes' if r['covers_truth'] else 'no'} |"
        )
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
