"""Initialization ablation: is policyfit's gap to d3rlpy a matter of weight initialization? (issue 19)

``parity.py`` compares policyfit and d3rlpy at matched hyperparameters; the first difference it
lists that is left is the initialization: policyfit's networks start orthogonal (gain sqrt 2 in
hidden layers, 1e-2 on the policy head, zero biases), d3rlpy's (and the TD3+BC paper's code's,
and CORL's PyTorch files') from ``torch.nn.Linear``'s defaults (weights and biases uniform in
``+-1/sqrt(fan_in)``). This script trains policyfit once more with ``init_scheme=pytorch``
(:data:`policyfit.nn.INIT_SCHEMES`; everything else policyfit's defaults, the parity runs'
budget, data, evaluation and reset seeds, through :func:`parity.policyfit_run`) and sets the
scores beside the parity file's two columns of the same cells: policyfit (orthogonal) and d3rlpy.

Verdicts are those of ``parity.py``: whether two 95% bootstrap intervals over seeds overlap.

Usage::

    python benchmarks/init_ablation.py                       # td3bc, hopper-medium, seeds 0,1,2
    python benchmarks/init_ablation.py --datasets hopper-medium,walker2d-medium-replay
    python benchmarks/init_ablation.py --table-only          # rewrite md/png from the JSON

Runs are checkpointed run directories under ``benchmarks/work/<name>/`` (a killed run resumes);
each finished run is written to ``results/<name>.json`` at once. Costs one parity policyfit run
each (about 10-30 minutes of a 2-core machine at 100k updates).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import parity  # noqa: E402

COLUMNS = ("orthogonal", "variant", "d3rlpy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: python benchmarks/init_ablation.py --seeds 0,1,2 --datasets hopper-medium",
    )
    p.add_argument("--algos", default="td3bc", help="td3bc (the algorithms with an init_scheme)")
    p.add_argument("--datasets", default="hopper-medium")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--scheme", default="pytorch", help="the init_scheme of the variant")
    p.add_argument("--parity", default=None, help="parity results name (default parity_<cpu>)")
    p.add_argument("--name", default=None, help="results name (default init_ablation_<cpu>)")
    p.add_argument("--table-only", action="store_true", help="rewrite md/png from the JSON")
    return p.parse_args(argv)


def summarize(
    rows: list[dict[str, Any]], parity_rows: list[dict[str, Any]], steps: int, episodes: int
) -> dict[str, Any]:
    """Per algorithm x dataset: the three columns' cells (:func:`parity._cell`) and verdicts."""

    def ok(r: dict[str, Any]) -> bool:
        return r.get("score") is not None and r["steps"] == steps and r["episodes"] == episodes

    cells: dict[str, dict[str, Any]] = {}
    for r in filter(ok, rows):
        cells.setdefault(r["algo"], {}).setdefault(r["dataset"], {})
    for algo, by_ds in cells.items():
        for dataset in by_ds:
            pick = {
                "orthogonal": [
                    r
                    for r in parity_rows
                    if ok(r)
                    and r["library"] == "policyfit"
                    and (r["algo"], r["dataset"]) == (algo, dataset)
                ],
                "variant": [
                    r for r in rows if ok(r) and (r["algo"], r["dataset"]) == (algo, dataset)
                ],
                "d3rlpy": [
                    r
                    for r in parity_rows
                    if ok(r)
                    and r["library"] == "d3rlpy"
                    and (r["algo"], r["dataset"]) == (algo, dataset)
                ],
            }
            cell = {
                k: parity._cell(sorted(v, key=lambda r: r["seed"]), 2000) if v else None
                for k, v in pick.items()
            }
            cell["verdict_variant_vs_d3rlpy"] = _verdict(cell["variant"], cell["d3rlpy"])
            cell["verdict_orthogonal_vs_d3rlpy"] = _verdict(cell["orthogonal"], cell["d3rlpy"])
            cell["verdict_orthogonal_vs_variant"] = _verdict(cell["orthogonal"], cell["variant"])
            by_ds[dataset] = cell
    return {"cells": cells}


def _verdict(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    if a is None or b is None:
        return None
    if min(a["n"], b["n"]) < 3:
        return "n<3"
    return parity.verdict(a, b)


def markdown(record: dict[str, Any], name: str) -> str:
    setup, cells = record["setup"], record["summary"]["cells"]
    m = record["machine"]
    scheme = setup["scheme"]
    lines = [
        "# Initialization ablation: policyfit orthogonal vs policyfit "
        f"`init_scheme={scheme}` vs d3rlpy (issue 19)",
        "",
        f"{setup['steps']:,} updates per run; {setup['episodes']} evaluation episodes per run "
        f"(reset seeds {setup['eval_seeds']}, as `parity.py`). The orthogonal and d3rlpy columns "
        f"are read from `results/{setup['parity']}.json` (same budget, data and evaluation); the "
        f"middle column is produced here: policyfit's defaults except `init_scheme={scheme}`. "
        f"Machine: {m.get('cpu')} ({m.get('cpu_count', '?')} cores); commit {record['commit']}; "
        f"jax {record['versions'].get('jax')}.",
        "",
        "Cells: final normalized score, mean [95% bootstrap interval over seeds] (n seeds). "
        "Verdict: whether the two intervals overlap (n<3: fewer than 3 seeds on a side).",
        "",
        f"| algorithm | dataset | policyfit orthogonal | policyfit {scheme} init | d3rlpy "
        f"| {scheme} vs d3rlpy | orthogonal vs d3rlpy | orthogonal vs {scheme} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, by_ds in cells.items():
        for dataset, c in by_ds.items():
            lines.append(
                f"| {algo} | {dataset} | "
                + " | ".join(parity._ci(c[k]) for k in COLUMNS)
                + f" | {c['verdict_variant_vs_d3rlpy'] or '-'} | "
                f"{c['verdict_orthogonal_vs_d3rlpy'] or '-'} | "
                f"{c['verdict_orthogonal_vs_variant'] or '-'} |"
            )
    lines += ["", "Per seed (normalized score):", "", "| algorithm | dataset | column | scores |"]
    lines.append("|---|---|---|---|")
    for algo, by_ds in cells.items():
        for dataset, c in by_ds.items():
            for k in COLUMNS:
                if c[k] is None:
                    continue
                label = f"{scheme} init" if k == "variant" else k
                seeds = ", ".join(
                    f"s{s}: {v:.1f}" for s, v in zip(c[k]["seeds"], c[k]["scores"], strict=True)
                )
                lines.append(f"| {algo} | {dataset} | {label} | {seeds} |")
    lines += [
        "",
        "Time per run of the middle column (a shared machine: the load average tells what else ran):",
        "",
    ]
    for r in record["runs"]:
        if r.get("score") is None:
            continue
        lines.append(
            f"* {r['algo']} {r['dataset']} s{r['seed']}: {r['train_wall_seconds'] / 60:.1f} min, "
            f"{r['updates_per_second']:.0f} upd/s; load average at the end "
            + ", ".join(f"{x:.2f}" for x in r["load_average"])
        )
    if cells:
        lines += ["", f"![init ablation]({name}.png)"]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path, scheme: str) -> Path:
    """One row per algorithm x dataset: the three columns' means, 95% intervals and seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policyfit.common.files import atomic_write_bytes
    from policyfit.evaluation.stats import figure_png_bytes

    items = [(a, d, c) for a, by_ds in summary["cells"].items() for d, c in by_ds.items()]
    fig, ax = plt.subplots(figsize=(6.5, 0.9 * len(items) + 1.6))
    labels = {
        "orthogonal": "policyfit orthogonal",
        "variant": f"policyfit {scheme} init",
        "d3rlpy": "d3rlpy",
    }
    for i, (_, _, c) in enumerate(items):
        for j, k in enumerate(COLUMNS):
            v = c[k]
            if v is None:
                continue
            y = i + (j - 1) * 0.25
            ax.errorbar(
                v["mean"],
                y,
                xerr=[[v["mean"] - v["ci_low"]], [v["ci_high"] - v["mean"]]],
                fmt="o",
                capsize=3,
                color=f"C{j}",
                label=labels[k] if i == 0 else None,
            )
            ax.plot(v["scores"], [y] * len(v["scores"]), "x", color="grey", ms=4)
    ax.set_yticks(range(len(items)), [f"{a}\n{d}" for a, d, _ in items])
    ax.set_ylim(len(items) - 0.5, -0.5)
    ax.set_xlabel("normalized score (95% CI; x: seeds)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write_bytes(path, figure_png_bytes(fig))
    plt.close(fig)
    return path


def write_all(name: str, rows: list[dict[str, Any]], setup: dict[str, Any]) -> Path:
    import json

    from common import RESULTS_DIR, write_result, write_text

    parity_rows = parity.read_rows(setup["parity"])
    summary = summarize(rows, parity_rows, setup["steps"], setup["episodes"])
    path = write_result(name, {"setup": setup, "summary": summary, "runs": rows})
    record = json.loads(path.read_text())
    write_text(RESULTS_DIR / f"{name}.md", markdown(record, name))
    if summary["cells"]:
        plot(summary, RESULTS_DIR / f"{name}.png", setup["scheme"])
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from common import cpu_kind, git_commit
    from policyfit.nn import INIT_SCHEMES

    if args.scheme not in INIT_SCHEMES:
        raise SystemExit(f"--scheme {args.scheme}: must be one of {', '.join(INIT_SCHEMES)}")
    name = args.name or f"init_ablation_{cpu_kind()}"
    setup = {
        "algos": args.algos.split(","),
        "datasets": args.datasets.split(","),
        "seeds": [int(s) for s in args.seeds.split(",")],
        "steps": args.steps,
        "episodes": args.episodes,
        "eval_seeds": "10000 + 100 * seed + episode",
        "scheme": args.scheme,
        "config": {"init_scheme": args.scheme},
        "parity": args.parity or f"parity_{cpu_kind()}",
    }
    rows = parity.read_rows(name)
    if args.table_only:
        print(f"wrote {write_all(name, rows, setup)} ({len(rows)} rows)")
        return
    work = HERE / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    for seed in setup["seeds"]:
        for dataset in setup["datasets"]:
            data = parity.Data(dataset)
            for algo in setup["algos"]:
                key = ("policyfit", algo, dataset, seed, args.steps, args.episodes)
                if any(parity.run_key(r) == key and r.get("score") is not None for r in rows):
                    print(f"{algo} {dataset} s{seed}: done, skipped", flush=True)
                    continue
                t0 = time.perf_counter()
                out = parity.policyfit_run(
                    algo,
                    data,
                    seed,
                    args.steps,
                    args.episodes,
                    work,
                    config=setup["config"],
                    suffix=f"-{args.scheme}-init",
                )
                row = {
                    "library": "policyfit",
                    "algo": algo,
                    "dataset": dataset,
                    "seed": seed,
                    "steps": args.steps,
                    "episodes": args.episodes,
                    "env_id": data.ds.env_id,
                    **out,
                    "session_seconds": time.perf_counter() - t0,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "commit": commit,
                    "load_average": list(os.getloadavg()),
                }
                rows = [r for r in rows if parity.run_key(r) != key] + [row]
                write_all(name, rows, setup)
                print(parity.progress_line(row), flush=True)
    path = write_all(name, rows, setup)
    print(Path(path).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
