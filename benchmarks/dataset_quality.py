"""The paper check: TQ and SACo of the 15 suite datasets next to BC / offline-RL scores.

Schweighofer et al. 2022, "A Dataset Perspective on Offline Reinforcement Learning", find that
(1) behavior cloning is competitive with offline RL on datasets of high trajectory quality (TQ), and
(2) off-policy offline RL needs high state-action coverage (SACo) to beat the data. This script
measures TQ, SACo and lSACo of every built-in dataset (SACo relative to its environment's
``<env>-medium-replay``, the suite's stand-in for the paper's online replay buffer) and, when the
algorithms benchmark has written ``benchmarks/results/scores.json``, checks both findings against the
normalized scores of ``bc`` and ``iql`` / ``td3bc`` there (scores are reused, never retrained here).

    .venv/bin/python benchmarks/dataset_quality.py            # cached suite datasets only
    .venv/bin/python benchmarks/dataset_quality.py --build    # build missing datasets (slow)
    .venv/bin/python benchmarks/dataset_quality.py --scores path/to/scores.json
    # every dataset at 200k transitions, bc and iql trained here on each (1 seed, 20k updates):
    .venv/bin/python benchmarks/dataset_quality.py --size 200000 --train-steps 20000

Writes ``benchmarks/results/dataset_quality.json`` and ``.md`` (the table and the findings).
``scores.json`` is read in the shape ``benchmarks/scores.py`` writes (``{"runs": [run summaries
with "algorithm", "dataset", "final_normalized_score"], "table": {algorithm: {dataset: {"mean":
...}}}}``) and also as ``{"results": [rows]}``, a top-level list of rows, or a table keyed either
way round (dataset names have a dash, algorithm names do not); several runs of one (dataset,
algorithm) — seeds — are averaged.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, train_or_resume, write_result, write_text  # noqa: E402

OFFLINE_RL = ("iql", "td3bc")
WORK = Path(__file__).resolve().parent / "work" / "dataset_quality"
COARSE_BINS = 5
TQ_HIGH = 0.7  # policyfit.diagnostics.card.TQ_HIGH: where the verdict calls TQ high
BC_COMPETITIVE = 0.9  # BC within 10 % of the best offline-RL score counts as competitive


# ------------------------------------------------------------------------------- measuring
def suite_size(name: str, size: int | None) -> int | None:
    """``--size`` for every dataset, except that medium-replay keeps its natural size if smaller."""
    from policyfit.envs.suite import default_size

    if size is None:
        return None
    return min(size, default_size(name)) if name.endswith("medium-replay") else size


def measure(
    build: bool, full: bool, size: int | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    from policyfit.diagnostics.card import diagnose
    from policyfit.diagnostics.coverage import state_action_coverage, trajectory_quality
    from policyfit.envs.suite import list_datasets, make_dataset

    rows_available = {r["name"]: r for r in list_datasets()}
    references: dict[str, Any] = {}
    rows, skipped = [], []
    for name, info in rows_available.items():
        if not info["available"] or not (info["cached"] or build or size is not None):
            why = "no behavior policies shipped" if not info["available"] else "not built"
            skipped.append(f"{name}: {why}")
            continue
        env = name.split("-")[0]
        ref_name = f"{env}-medium-replay"
        if ref_name not in references:
            ref_info = rows_available.get(ref_name, {})
            references[ref_name] = (
                make_dataset(ref_name, size=suite_size(ref_name, size), progress=False)
                if ref_info.get("cached")
                or ((build or size is not None) and ref_info.get("available"))
                else None
            )
        ref = references[ref_name]
        t0 = time.perf_counter()
        ds = make_dataset(name, size=suite_size(name, size), progress=False)
        row: dict[str, Any] = {"dataset": name, "transitions": len(ds), "episodes": ds.num_episodes}
        if full:
            card = diagnose(ds, reference=ref)
            row["tq"] = card.tq.get("value")
            row["saco"] = card.coverage.get("saco")
            row["lsaco"] = card.coverage.get("lsaco")
            row["action_consistency"] = card.action_consistency.get("consistency")
            row["flagged_fraction"] = card.anomalies["fraction"]
        else:
            row["tq"] = trajectory_quality(ds.episode_returns(), *ds.reference_scores())
            if ref is not None:
                cov = state_action_coverage(
                    ds.observations, ds.actions, ref.observations, ref.actions
                )
                row["saco"], row["lsaco"] = cov["saco"], cov["lsaco"]
        if ref is not None:
            # With 100 bins per dimension almost every continuous (s, a) of an 11-17-dim state
            # space is its own cell, so SACo degenerates to the size ratio; a coarse 5-bin grid
            # still separates narrow from broad data. Both are reported with the unique fraction.
            fine = state_action_coverage(ds.observations, ds.actions, ref.observations, ref.actions)
            coarse = state_action_coverage(
                ds.observations, ds.actions, ref.observations, ref.actions, bins=COARSE_BINS
            )
            row["unique_fraction"] = fine["unique_fraction"]
            row["saco_coarse"] = coarse["saco"]
            row["unique_fraction_coarse"] = coarse["unique_fraction"]
        row["reference"] = (
            f"suite:{ref_name} ({len(ref):,} transitions)" if ref is not None else None
        )
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows, skipped


# ------------------------------------------------------------------------------- scores
def _score_value(v: Any) -> float | None:
    if isinstance(v, int | float) and math.isfinite(v):
        return float(v)
    if isinstance(v, dict):
        for key in ("mean", "normalized_score", "final_normalized_score", "score"):
            if key in v:
                return _score_value(v[key])
    if isinstance(v, list):
        vals = [x for x in (_score_value(u) for u in v) if x is not None]
        return float(np.mean(vals)) if vals else None
    return None


def load_scores(path: Path) -> dict[tuple[str, str], float]:
    """(dataset, algorithm) -> mean normalized score, from any of the documented shapes."""
    raw = json.loads(path.read_text())
    acc: dict[tuple[str, str], list[float]] = {}

    def add(dataset: Any, algo: Any, value: Any) -> None:
        v = _score_value(value)
        if isinstance(dataset, str) and isinstance(algo, str) and v is not None:
            acc.setdefault((dataset.lower(), algo.lower()), []).append(v)

    rows = raw
    if isinstance(raw, dict):
        rows = next(
            (raw[k] for k in ("runs", "results", "rows") if isinstance(raw.get(k), list)), None
        )
    if isinstance(rows, list):
        for r in rows:
            if isinstance(r, dict):
                value = next(
                    (
                        r[k]
                        for k in ("final_normalized_score", "normalized_score", "score", "mean")
                        if k in r
                    ),
                    None,
                )
                add(r.get("dataset"), r.get("algorithm") or r.get("algo"), value)
    if acc:  # per-run rows found: the table is their summary
        return {k: float(np.mean(v)) for k, v in acc.items()}
    table = raw.get("table", raw) if isinstance(raw, dict) else {}
    if isinstance(table, dict):
        for outer, inner in table.items():
            if isinstance(inner, dict):
                for key, value in inner.items():
                    # suite names have a dash (hopper-medium); algorithm names do not
                    dataset_first = "-" in str(outer)
                    add(outer if dataset_first else key, key if dataset_first else outer, value)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def train_scores(
    names: list[str], size: int | None, algos: list[str], steps: int, seed: int = 0
) -> dict[tuple[str, str], float]:
    """Train each of ``algos`` once on each dataset (resumable; finished runs are read back)."""
    from policyfit.envs.suite import make_dataset

    out: dict[tuple[str, str], float] = {}
    for name in names:
        for algo in algos:
            summary = train_or_resume(
                algo,
                lambda name=name: make_dataset(name, size=suite_size(name, size), progress=False),
                WORK / f"{algo}-{name}-n{size or 'full'}-s{seed}",
                steps,
                seed,
                eval_every=0,
                save_every=steps // 2,
            )
            out[(name, algo)] = summary["final_normalized_score"]
            print(f"{algo:6s} {name:28s} {out[(name, algo)]:.1f}", flush=True)
    return out


# ------------------------------------------------------------------------------- findings
def check_findings(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Test the paper's two findings on the rows that have scores."""
    from scipy.stats import spearmanr

    scored = [r for r in rows if r.get("bc") is not None and r.get("offline_rl_best") is not None]
    if len(scored) < 3:
        return {"status": "pending", "reason": f"scores for {len(scored)} datasets (need >= 3)"}
    out: dict[str, Any] = {"status": "checked", "datasets_with_scores": len(scored)}

    # (1) BC competitive on high-TQ data: BC / best offline RL, high-TQ vs the rest
    def ratio(r: dict[str, Any]) -> float:
        return r["bc"] / max(r["offline_rl_best"], 1e-9)

    high = [r for r in scored if r["tq"] is not None and r["tq"] >= TQ_HIGH]
    rest = [r for r in scored if r["tq"] is not None and r["tq"] < TQ_HIGH]
    f1: dict[str, Any] = {
        "high_tq_datasets": [r["dataset"] for r in high],
        "bc_over_offline_rl_high_tq": float(np.mean([ratio(r) for r in high])) if high else None,
        "bc_over_offline_rl_other": float(np.mean([ratio(r) for r in rest])) if rest else None,
    }
    tq = [r["tq"] for r in scored]
    f1["spearman_tq_vs_bc_score"] = _spearman(spearmanr, tq, [r["bc"] for r in scored])
    f1["holds"] = bool(
        f1["bc_over_offline_rl_high_tq"] is not None
        and f1["bc_over_offline_rl_high_tq"] >= BC_COMPETITIVE
        and (
            f1["bc_over_offline_rl_other"] is None
            or f1["bc_over_offline_rl_high_tq"] > f1["bc_over_offline_rl_other"]
        )
    )
    out["bc_competitive_on_high_tq"] = f1

    # (2) off-policy methods need coverage: offline RL's gain over BC rises with SACo
    with_saco = [r for r in scored if r.get("saco") is not None]
    f2: dict[str, Any] = {"datasets": len(with_saco)}
    if len(with_saco) >= 3:
        gain = [r["offline_rl_best"] - r["bc"] for r in with_saco]
        f2["spearman_saco_vs_gain_over_bc"] = _spearman(
            spearmanr, [r["saco"] for r in with_saco], gain
        )
        f2["spearman_lsaco_vs_gain_over_bc"] = _spearman(
            spearmanr, [r["lsaco"] for r in with_saco], gain
        )
        for algo in OFFLINE_RL:
            pts = [(r["saco"], r[algo]) for r in with_saco if r.get(algo) is not None]
            if len(pts) >= 3:
                f2[f"spearman_saco_vs_{algo}"] = _spearman(spearmanr, *zip(*pts, strict=True))
        coarse = [r for r in with_saco if r.get("saco_coarse") is not None]
        if len(coarse) >= 3:
            f2[f"spearman_saco{COARSE_BINS}_vs_gain_over_bc"] = _spearman(
                spearmanr,
                [r["saco_coarse"] for r in coarse],
                [r["offline_rl_best"] - r["bc"] for r in coarse],
            )
        rho = f2["spearman_saco_vs_gain_over_bc"]["rho"]
        f2["holds"] = bool(rho is not None and rho > 0)
    else:
        f2["holds"] = None
        f2["reason"] = "SACo needs the medium-replay reference datasets"
    out["offline_rl_needs_coverage"] = f2
    return out


def _spearman(fn, x, y) -> dict[str, Any]:
    res = fn(list(x), list(y))
    rho, p = float(res.statistic), float(res.pvalue)
    return {
        "rho": rho if math.isfinite(rho) else None,
        "p": p if math.isfinite(p) else None,
        "n": len(list(x)),
    }


def markdown(rows: list[dict[str, Any]], findings: dict[str, Any], skipped: list[str]) -> str:
    def f(x: Any, d: int = 2) -> str:
        return "–" if x is None else f"{x:.{d}f}" if isinstance(x, float) else str(x)

    lines = [
        "# Dataset quality (Schweighofer et al. 2022) vs algorithm scores",
        "",
        f"SACo and lSACo: 100 bins per dimension (the paper's); unique: fraction of transitions "
        f"in a cell of their own at 100 bins; SACo{COARSE_BINS}: SACo on a {COARSE_BINS}-bin grid. "
        "bc / iql / td3bc: final normalized scores.",
        "",
        f"| dataset | transitions | TQ | SACo | lSACo | unique | SACo{COARSE_BINS} "
        "| bc | iql | td3bc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['transitions']:,} | {f(r.get('tq'))} | {f(r.get('saco'))} | "
            f"{f(r.get('lsaco'))} | {f(r.get('unique_fraction'))} | {f(r.get('saco_coarse'))} | "
            f"{f(r.get('bc'), 1)} | {f(r.get('iql'), 1)} | {f(r.get('td3bc'), 1)} |"
        )
    lines += ["", "## Findings", "", "```", json.dumps(findings, indent=1), "```"]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build", action="store_true", help="build suite datasets that are missing"
    )
    parser.add_argument("--full", action="store_true", help="run the whole diagnose (slower)")
    parser.add_argument("--scores", type=Path, default=RESULTS_DIR / "scores.json")
    parser.add_argument("--name", default="dataset_quality")
    parser.add_argument(
        "--size", type=int, default=None, help="transitions per dataset (builds what is missing)"
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="train --train-algos on every dataset here instead of reading --scores",
    )
    parser.add_argument("--train-algos", default="bc,iql")
    args = parser.parse_args()

    rows, skipped = measure(args.build, args.full, args.size)
    if args.train_steps:
        scores = train_scores(
            [r["dataset"] for r in rows],
            args.size,
            args.train_algos.split(","),
            args.train_steps,
        )
        args.scores = WORK
    else:
        scores = load_scores(args.scores) if args.scores.is_file() else {}
    for r in rows:
        for algo in ("bc", *OFFLINE_RL):
            r[algo] = scores.get((r["dataset"], algo))
        rl = [r[a] for a in OFFLINE_RL if r[a] is not None]
        r["offline_rl_best"] = max(rl) if rl else None
    findings = (
        check_findings(rows)
        if scores
        else {
            "status": "pending",
            "reason": f"{args.scores} not found (written by the algorithms benchmark)",
        }
    )
    path = write_result(
        args.name,
        {
            "rows": rows,
            "findings": findings,
            "skipped": skipped,
            "scores_file": str(args.scores),
            "size": args.size,
            "train_steps": args.train_steps or None,
            "train_algos": args.train_algos if args.train_steps else None,
            "train_seeds": [0] if args.train_steps else None,
        },
    )
    md = write_text(RESULTS_DIR / f"{args.name}.md", markdown(rows, findings, skipped))
    print(f"wrote {path} and {md}")
    print(json.dumps(findings, indent=1))


if __name__ == "__main__":
    main()
