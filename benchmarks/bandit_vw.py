"""policyfit's jitted SquareCB against Vowpal Wabbit's ``--cb_explore_adf --squarecb``, one stream.

    python benchmarks/bandit_vw.py [--rounds 50000] [--seeds 0,1,2]

Both learners see the same stream: contexts and the rewards every action would have paid, drawn
from :class:`policyfit.bandit.simulate.PaymentEnv` (binary authorization reward, ~77% under
uniform play, per-round action masks). Both run SquareCB with Vowpal Wabbit's schedule
``gamma_t = 10 * t ** 0.5`` and a per-action linear model of the context: VW with ADF examples, a
shared namespace ``s`` (the context) crossed with an action namespace ``a`` (``-q sa``), cost
``1 - reward``; policyfit with per-action ridge regression (:mod:`policyfit.bandit.online`). Only
the available actions are offered to VW in each round.

Reported per seed and learner: the mean reward over the stream and over its last 10,000 rounds,
rounds per second (policyfit: the warm run, compile time reported apart), and their ratio; the
uniform policy and the best available action (known truth) bound them. Written to
``benchmarks/results/bandit_vw_<cpu kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402


def stream(rounds: int, seed: int):
    from policyfit.bandit.simulate import PaymentEnv

    env = PaymentEnv(seed=0, late_action=None, retired_action=None)
    rng = np.random.default_rng(seed)
    x = env.contexts(rounds, rng)
    q = env.auth_prob(x)
    table = (rng.random(q.shape) < q).astype(np.float32)
    mask = env.mask(x, 0)
    return env, x, q, table, mask


def run_vw(x, table, mask, seed: int) -> tuple[np.ndarray, float]:
    import vowpalwabbit

    vw = vowpalwabbit.Workspace(f"--cb_explore_adf --squarecb -q sa --quiet --random_seed {seed}")
    rng = np.random.default_rng(seed)
    rewards = np.zeros(len(x))
    t0 = time.perf_counter()
    for t in range(len(x)):
        shared = "shared |s " + " ".join(f"f{i}:{v:.5f}" for i, v in enumerate(x[t]))
        avail = np.flatnonzero(mask[t])
        lines = [shared, *(f"|a a{a}" for a in avail)]
        pmf = np.asarray(vw.predict(lines), dtype=np.float64)
        i = int(rng.choice(len(avail), p=pmf / pmf.sum()))
        r = float(table[t, avail[i]])
        rewards[t] = r
        lines[i + 1] = f"0:{1.0 - r}:{pmf[i]} |a a{avail[i]}"
        vw.learn(lines)
    elapsed = time.perf_counter() - t0
    vw.finish()
    return rewards, len(x) / elapsed


def run_policyfit(x, table, mask, seed: int) -> tuple[np.ndarray, float, float]:
    from policyfit.bandit.online import squarecb_stream

    t0 = time.perf_counter()
    squarecb_stream(x, table, mask, seed=seed + 1000)  # compile (and a throwaway run)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = squarecb_stream(x, table, mask, seed=seed)
    elapsed = time.perf_counter() - t0
    return out["reward"], len(x) / elapsed, cold


def run_falcon(x, table, mask, seed: int, c: float) -> tuple[np.ndarray, float]:
    from policyfit.bandit.online import falcon_stream

    t0 = time.perf_counter()
    out = falcon_stream(x, table, mask, seed=seed, c=c)
    return out["reward"], len(x) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50_000)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from importlib.metadata import version

    import vowpalwabbit  # noqa: F401  (fail early when the peer is missing)

    rows = []
    for seed in seeds:
        env, x, q, table, mask = stream(args.rounds, seed)
        ours, ours_rate, cold = run_policyfit(x, table, mask, seed)
        vw, vw_rate = run_vw(x, table, mask, seed)
        falcon_paper, falcon_paper_rate = run_falcon(x, table, mask, seed, 1 / 30)
        falcon10, falcon10_rate = run_falcon(x, table, mask, seed, 10.0)
        uniform = float((np.where(mask, q, 0).sum(1) / mask.sum(1)).mean())
        best = float(np.where(mask, q, -np.inf).max(1).mean())
        row = {
            "seed": seed,
            "policyfit_reward": float(ours.mean()),
            "vw_reward": float(vw.mean()),
            "policyfit_reward_last10k": float(ours[-10_000:].mean()),
            "vw_reward_last10k": float(vw[-10_000:].mean()),
            "uniform_expected": uniform,
            "best_expected": best,
            "policyfit_rounds_per_s": ours_rate,
            "policyfit_first_call_s": cold,
            "vw_rounds_per_s": vw_rate,
            "throughput_ratio": ours_rate / vw_rate,
            "falcon_c1/30_reward": float(falcon_paper.mean()),
            "falcon_c10_reward": float(falcon10.mean()),
            "falcon_c10_reward_last10k": float(falcon10[-10_000:].mean()),
            "falcon_rounds_per_s": falcon10_rate,
        }
        rows.append(row)
        print(
            f"seed {seed}: reward policyfit {row['policyfit_reward']:.4f} vw {row['vw_reward']:.4f}"
            f" (uniform {uniform:.4f}, best {best:.4f}); rounds/s policyfit {ours_rate:,.0f}"
            f" vw {vw_rate:,.0f} ({row['throughput_ratio']:.1f}x)",
            flush=True,
        )
    name = f"bandit_vw_{cpu_kind()}"
    config = {
        "rounds": args.rounds,
        "seeds": seeds,
        "env": env.describe(),
        "vw": version("vowpalwabbit"),
    }
    write_result(name, {"config": config, "rows": rows})

    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    lines = [
        f"# SquareCB: policyfit vs Vowpal Wabbit {config['vw']} ({cpu_kind()})",
        "",
        f"{args.rounds:,} rounds of PaymentEnv per seed, seeds {seeds}; both with gamma_t = 10 sqrt(t)"
        " and per-action linear models (VW: `--cb_explore_adf --squarecb -q sa`).",
        "",
        "| seed | reward policyfit | reward VW | last 10k policyfit | last 10k VW | uniform | best"
        " | rounds/s policyfit | rounds/s VW | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['policyfit_reward']:.4f} | {r['vw_reward']:.4f} | "
            f"{r['policyfit_reward_last10k']:.4f} | {r['vw_reward_last10k']:.4f} | "
            f"{r['uniform_expected']:.4f} | {r['best_expected']:.4f} | "
            f"{r['policyfit_rounds_per_s']:,.0f} | {r['vw_rounds_per_s']:,.0f} | "
            f"{r['throughput_ratio']:.1f}x |"
        )
    lines += [
        "",
        "FALCON (policyfit, epochs 2, 4, 8, ...; the oracle refit on the previous epoch only): "
        f"mean reward {mean('falcon_c1/30_reward'):.4f} with the paper's c = 1/30 (close to "
        f"uniform play for this horizon), {mean('falcon_c10_reward'):.4f} with c = 10 (last 10k "
        f"{mean('falcon_c10_reward_last10k'):.4f}); {mean('falcon_rounds_per_s'):,.0f} rounds/s.",
    ]
    lines += [
        "",
        f"Mean reward: policyfit {mean('policyfit_reward'):.4f}, VW {mean('vw_reward'):.4f}; "
        f"throughput ratio {mean('throughput_ratio'):.1f}x (policyfit's first call, compile "
        f"included: {mean('policyfit_first_call_s'):.1f} s).",
    ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
