"""Where IQL's advantage weights go under data corruption: corrupted rows or clean ones?

IQL extracts its policy by weighted regression onto the data's actions, with weights
``min(exp(beta * (Q(s, a) - V(s))), 100)``. The RIQL paper credits this supervised step for IQL's
robustness. This script reads the corruption benchmark's finished IQL/RIQL trials (their last
checkpoint and their corrupted dataset with its mask, under ``benchmarks/work/corruption``),
recomputes the weights the actor was trained with, and reports per condition the share of the
total weight that falls on corrupted rows (30% of the rows at c = 0.3: above 0.3, the actor leans
on corrupted data), the mean weight, and the share of rows at the clip.

    python benchmarks/awr_weights.py                        # every trial with a checkpoint
    python benchmarks/awr_weights.py --datasets walker2d-medium-replay --algos iql

Results: ``benchmarks/results/awr_weights.json`` and ``.md``. Trials trained elsewhere without
checkpoints coming back (the GPU half of the grid) are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import RESULTS_DIR, write_result, write_text  # noqa: E402


def _corruption_benchmark():
    """benchmarks/corruption.py, by path: a plain ``import corruption`` can find another module."""
    spec = importlib.util.spec_from_file_location("bench_corruption", HERE / "corruption.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights_of(run_dir: Path, data_path: Path) -> dict[str, Any] | None:
    """The trial's AWR weights on its own training data, split by the corruption mask."""
    import jax
    import jax.numpy as jnp

    from policyfit.algos.losses import awr_weights, ensemble_quantile
    from policyfit.algos.policy import spec_from_dict
    from policyfit.algos.registry import get_algorithm
    from policyfit.nn.normalization import normalize_observations, to_unit_actions
    from policyfit.training.checkpoint import list_checkpoints, restore_checkpoint
    from policyfit.training.trainer import resolve_config

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints or not data_path.exists():
        return None
    run = json.loads((run_dir / "config.json").read_text())
    cls = get_algorithm(run["algorithm"])
    algo = cls(resolve_config(cls, run["config"], run["steps"], cls.name))
    state, _ = restore_checkpoint(
        checkpoints[-1][1], algo.init(spec_from_dict(run["spec"]), jax.random.PRNGKey(0))
    )
    with np.load(data_path, allow_pickle=False) as z:
        mask = z["corrupted"].astype(bool)
        obs = normalize_observations(jnp.asarray(z["observations"]), state["obs_norm"])
        act = to_unit_actions(jnp.asarray(z["actions"]), state["action_scale"])
    cfg = algo.config
    q = ensemble_quantile(algo.critic.apply(state["critic_target"], obs, act), cfg.value_quantile)
    adv = q - algo.value.apply(state["value"], obs)
    w = np.asarray(awr_weights(adv, cfg.temperature, cfg.max_weight))
    adv = np.asarray(adv)
    at_clip = w >= cfg.max_weight * (1 - 1e-6)
    return {
        "step": checkpoints[-1][0],
        "corrupted_rows": float(mask.mean()),
        "weight_share_corrupted": float(w[mask].sum() / w.sum()),
        "mean_weight_corrupted": float(w[mask].mean()),
        "mean_weight_clean": float(w[~mask].mean()),
        "at_clip_corrupted": float(at_clip[mask].mean()),
        "at_clip_clean": float(at_clip[~mask].mean()),
        "median_advantage_corrupted": float(np.median(adv[mask])),
        "median_advantage_clean": float(np.median(adv[~mask])),
    }


def main() -> None:
    bench = _corruption_benchmark()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(bench.DATASETS))
    p.add_argument("--algos", nargs="+", default=["iql", "riql"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    p.add_argument("--workdir", type=Path, default=bench.WORKDIR)
    p.add_argument("--rate", type=float, default=0.3, help="c of the corruption benchmark's runs")
    p.add_argument("--scale", type=float, default=1.0, help="ε of its runs")
    p.add_argument("--name", default="awr_weights")
    args = p.parse_args()

    rows: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for target in bench.TARGETS:
            cond = bench.condition_name("random", target)
            for algo in args.algos:
                for seed in args.seeds:
                    run_dir = bench.trial_dir(args.workdir, dataset, cond, algo, seed)
                    data = bench.corrupted_path(args.workdir, dataset, "random", target, args, seed)
                    if not (run_dir / "config.json").is_file():
                        continue
                    found = weights_of(run_dir, data)
                    if found is None:
                        continue
                    rows.append(
                        {"dataset": dataset, "condition": cond, "algo": algo, "seed": seed, **found}
                    )
                    print(
                        f"{dataset:>26} {cond:<20} {algo:<5} s{seed}: corrupted rows get "
                        f"{found['weight_share_corrupted']:.2f} of the weight "
                        f"({found['corrupted_rows']:.2f} of the rows)",
                        flush=True,
                    )

    table: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        cell = table.setdefault(f"{r['dataset']} {r['condition']}", {}).setdefault(
            r["algo"], {"shares": []}
        )
        cell["shares"].append(r["weight_share_corrupted"])
    for by_algo in table.values():
        for cell in by_algo.values():
            shares = cell.pop("shares")
            cell.update(mean_share=float(np.mean(shares)), n=len(shares))
    out = write_result(args.name, {"rows": rows, "table": table, "seeds": args.seeds})
    lines = [
        "# Share of IQL's advantage weight on corrupted rows",
        "",
        "Random corruption, c = 0.3 (about 0.30 of the rows); the trials of `corruption.py` whose "
        "checkpoints are on this machine. Above 0.30 the actor's regression leans on corrupted rows, "
        "below it the advantage weighting filters them out.",
        "",
        "| dataset and condition | " + " | ".join(args.algos) + " |",
        "|---|" + "---|" * len(args.algos),
    ]
    for key, by_algo in table.items():
        vals = [
            f"{by_algo[a]['mean_share']:.2f} (n={by_algo[a]['n']})" if a in by_algo else "—"
            for a in args.algos
        ]
        lines.append(f"| {key} | " + " | ".join(vals) + " |")
    write_text(RESULTS_DIR / f"{args.name}.md", "\n".join(lines) + "\n")
    print(f"{len(rows)} trials -> {out}")


if __name__ == "__main__":
    main()
