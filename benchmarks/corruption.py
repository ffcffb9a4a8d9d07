"""Offline RL under data corruption (Yang et al., ICLR 2024): which algorithms keep their score?

For every dataset, every condition — ``clean``, random corruption of each target
(``observations``, ``actions``, ``rewards``, ``dynamics``) at ``c = 0.3, ε = 1.0``, and adversarial
``dynamics`` corruption on the ``--adversarial`` datasets — every algorithm is trained with
``policyfit.train`` for ``--steps`` updates and scored by its final normalized score. As in the
paper's code, a trial's seed is also its corruption seed, so each seed sees its own draw.

    python benchmarks/corruption.py                       # the issue's grid (hours of CPU per trial)
    python benchmarks/corruption.py --steps 200 --seeds 0 --datasets hopper-medium-replay \\
        --dataset-size 2000 --algos bc iql --targets dynamics --name corruption-smoke

The grid runs on ``policyfit.sweep`` (``run_trials`` with its local engine: ``--jobs`` worker
processes; each trial is ``policyfit.sweep.run_trial``). Resumable: a finished trial is recognized
by its ``summary.json`` (same algorithm, seed and steps) and skipped; an interrupted trial resumes
from its last checkpoint, and so does a finished one when ``--steps`` grows (the budget can be
raised across sessions); a failed trial is recorded (its message in the results, the traceback in
its ``error.txt``) and the grid goes on. Corrupted datasets are written once (``.npz``, with their
mask), before any worker starts, and reused. Results: ``benchmarks/results/<name>.json``
(machine, versions, commit, budget, every trial, the table, the paper's findings checked) and
``benchmarks/results/<name>.md``.

The paper's qualitative findings checked here (averages over datasets and corrupted conditions):
IQL is the most robust of the offline RL baselines td3bc/cql/iql (and, separately, whether it also
beats BC); RIQL >= IQL on average; RIQL's largest gain over IQL is under dynamics corruption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from policyfit.common.files import atomic_write
from policyfit.errors import PolicyfitError
from policyfit.sweep.executor import error_line as one_line
from policyfit.sweep.runner import run_state
from policyfit.training.rundir import RunDir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, parse_overrides, write_result, write_text  # noqa: E402

DATASETS = ("halfcheetah-medium-replay", "walker2d-medium-replay", "hopper-medium-replay")
ALGOS = ("bc", "td3bc", "cql", "iql", "riql")
TARGETS = ("observations", "actions", "rewards", "dynamics")
BASELINES = ("bc", "td3bc", "cql", "iql")
OFFLINE_RL_BASELINES = ("td3bc", "cql", "iql")
WORKDIR = Path(__file__).resolve().parent / "work" / "corruption"

# RIQL's per-attack settings in the paper's code (RIQL_config.py of github.com/YangRui2015/RIQL):
# (mode, target) -> environment -> (Huber sigma, value quantile α, ensemble size K); the code's
# Huber threshold is 1 / sigma^2 (riql_overrides converts).
# Clean data uses the registry's riql defaults.
RIQL_PAPER_SETTINGS: dict[tuple[str, str], dict[str, tuple[float, float, int]]] = {
    ("random", "observations"): {
        "halfcheetah": (0.1, 0.1, 5), "walker2d": (0.1, 0.25, 5), "hopper": (0.1, 0.25, 3)
    },
    ("random", "actions"): {
        "halfcheetah": (0.5, 0.25, 3), "walker2d": (0.5, 0.1, 5), "hopper": (0.1, 0.25, 5)
    },
    ("random", "rewards"): {
        "halfcheetah": (3.0, 0.25, 5), "walker2d": (3.0, 0.1, 5), "hopper": (1.0, 0.25, 3)
    },
    ("random", "dynamics"): {
        "halfcheetah": (3.0, 0.25, 5), "walker2d": (1.0, 0.25, 3), "hopper": (1.0, 0.5, 5)
    },
    ("adversarial", "observations"): {
        "halfcheetah": (0.1, 0.1, 5), "walker2d": (1.0, 0.25, 5), "hopper": (1.0, 0.25, 5)
    },
    ("adversarial", "actions"): {
        "halfcheetah": (1.0, 0.1, 5), "walker2d": (1.0, 0.1, 5), "hopper": (1.0, 0.25, 5)
    },
    ("adversarial", "rewards"): {
        "halfcheetah": (1.0, 0.1, 5), "walker2d": (3.0, 0.1, 5), "hopper": (0.1, 0.25, 5)
    },
    ("adversarial", "dynamics"): {
        "halfcheetah": (1.0, 0.1, 5), "walker2d": (1.0, 0.25, 5), "hopper": (1.0, 0.5, 5)
    },
}  # fmt: skip


def riql_overrides(ds, mode: str, target: str) -> dict[str, Any] | None:
    """The paper's RIQL settings for this attack and environment, as ``iql`` config overrides."""
    env = (ds.env_id or "").split("-v")[0].lower()
    settings = RIQL_PAPER_SETTINGS.get((mode, target), {}).get(env)
    if settings is None:
        return None
    sigma, alpha, k = settings
    # the code's huber_loss(diff, sigma) switches from quadratic to linear at 1 / sigma^2
    return {"huber_delta": 1.0 / sigma**2, "value_quantile": alpha, "n_critics": k}


# ----------------------------------------------------------------------------- the grid
def conditions(dataset: str, targets: list[str], adversarial: list[str]) -> list[tuple[str, str]]:
    """``(mode, target)`` pairs; ``("clean", "")`` first."""
    out = [("clean", "")] + [("random", t) for t in targets]
    if dataset in adversarial:
        out.append(("adversarial", "dynamics"))
    return out


def condition_name(mode: str, target: str) -> str:
    return "clean" if mode == "clean" else f"{mode}-{target}"


def dataset_key(dataset: str) -> str:
    """A file-system name for a dataset given by name or path."""
    p = Path(dataset)
    return p.stem if p.suffix in (".hdf5", ".h5", ".npz") else p.name


# ----------------------------------------------------------------------------- data
def load_clean(dataset: str, size: int | None):
    import policyfit

    kwargs = {"size": size} if size is not None and not Path(dataset).exists() else {}
    return policyfit.load_dataset(dataset, **kwargs)


def corrupted_path(workdir: Path, dataset: str, mode: str, target: str, args, seed: int) -> Path:
    name = f"{condition_name(mode, target)}-c{args.rate:g}-e{args.scale:g}-s{seed}.npz"
    return workdir / "data" / dataset_key(dataset) / name


def corrupted_dataset(clean, dataset: str, mode: str, target: str, args, seed: int, workdir: Path):
    """The corrupted dataset of one trial, computed once and cached as ``.npz`` (mask included)."""
    from policyfit.corruption import corrupt_dataset
    from policyfit.data.io import load_dataset, save_dataset

    path = corrupted_path(workdir, dataset, mode, target, args, seed)
    if path.exists():
        return load_dataset(path)
    options: dict[str, Any] = {}
    if mode == "adversarial":
        from policyfit.corruption.critic import CriticConfig

        options["critic_config"] = CriticConfig(steps=args.critic_steps)
    t0 = time.perf_counter()
    bad = corrupt_dataset(
        clean, target, mode=mode, rate=args.rate, scale=args.scale, seed=seed, **options
    )
    info = bad.metadata["corruption"]
    attack = info.get("attack", {})
    note = (
        f"; critic Q {attack['q_clean_mean']:.4g} -> {attack['q_attacked_mean']:.4g}"
        if "q_clean_mean" in attack
        else ""
    )
    print(
        f"  corrupted {dataset_key(dataset)} ({mode} {target}, seed {seed}): "
        f"{info['n_corrupted']:,}/{info['n_transitions']:,} rows in "
        f"{time.perf_counter() - t0:.1f}s{note}",
        flush=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(bad, path)
    return load_dataset(path)


# ----------------------------------------------------------------------------- trials
def trial_dir(workdir: Path, dataset: str, cond: str, algo: str, seed: int) -> Path:
    return workdir / "runs" / dataset_key(dataset) / cond / f"{algo}-s{seed}"


def score_of(summary: dict[str, Any]) -> tuple[float | None, str]:
    """The trial's score: final normalized score, else final return (no reference scores)."""
    if summary.get("final_normalized_score") is not None:
        return float(summary["final_normalized_score"]), "normalized"
    if summary.get("final_return_mean") is not None:
        return float(summary["final_return_mean"]), "return"
    return None, "none"


# ----------------------------------------------------------------------------- aggregation
def aggregate(trials: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``cells[dataset][condition][algo] = {mean, std, min, max, n, scores}`` over seeds."""
    cells: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for t in trials:
        if t.get("score") is None:
            continue
        cell = cells.setdefault(t["dataset"], {}).setdefault(t["condition"], {})
        cell.setdefault(t["algo"], {"scores": []})["scores"].append(t["score"])
    for by_cond in cells.values():
        for by_algo in by_cond.values():
            for cell in by_algo.values():
                s = np.asarray(cell["scores"], dtype=np.float64)
                cell.update(
                    mean=float(s.mean()),
                    std=float(s.std(ddof=1)) if s.size > 1 else 0.0,
                    min=float(s.min()),
                    max=float(s.max()),
                    n=int(s.size),
                )
    return cells


def condition_averages(cells, algos: list[str]) -> dict[str, dict[str, float]]:
    """``avg[condition][algo]``: mean over datasets of the per-dataset mean score."""
    out: dict[str, dict[str, float]] = {}
    conds = sorted({c for by_cond in cells.values() for c in by_cond}, key=_condition_order)
    for cond in conds:
        for algo in algos:
            vals = [
                by_cond[cond][algo]["mean"]
                for by_cond in cells.values()
                if cond in by_cond and algo in by_cond[cond]
            ]
            if vals:
                out.setdefault(cond, {})[algo] = float(np.mean(vals))
    return out


def _condition_order(cond: str) -> tuple[int, str]:
    if cond == "clean":
        return (0, cond)
    return (1 if cond.startswith("random") else 2, cond)


def corrupted_average(
    cells, algo: str, prefix: str = "random-", among: tuple[str, ...] = ()
) -> float | None:
    """Mean over datasets and corrupted conditions (``prefix``) of the algorithm's mean score.

    With ``among``, only the (dataset, condition) cells where every algorithm in ``among`` has a
    result count, so that algorithms with different coverage are compared on the same cells.
    """
    vals = [
        by_algo[algo]["mean"]
        for by_cond in cells.values()
        for cond, by_algo in by_cond.items()
        if cond.startswith(prefix) and algo in by_algo and all(a in by_algo for a in among)
    ]
    return float(np.mean(vals)) if vals else None


def intervals(cells, algos: tuple[str, ...], reps: int = 2000) -> dict[str, dict[str, Any]]:
    """95% stratified-bootstrap intervals (Agarwal et al. 2021) of each algorithm's mean and IQM
    over the random-corruption cells that all of ``algos`` finished; a cell is a task, its seeds
    the runs."""
    from policyfit.evaluation.stats import aggregate_scores

    tasks = {
        a: [
            np.asarray(by_algo[a].get("scores", [by_algo[a]["mean"]]), dtype=np.float64)
            for by_cond in cells.values()
            for cond, by_algo in by_cond.items()
            if cond.startswith("random-") and all(x in by_algo for x in algos)
        ]
        for a in algos
    }
    tasks = {a: t for a, t in tasks.items() if t}
    return aggregate_scores(tasks, metrics=("mean", "iqm"), reps=reps) if tasks else {}


def _separated(ci: dict[str, dict[str, Any]], winner: str) -> bool | None:
    """Whether ``winner``'s interval of the mean lies above every other algorithm's."""
    if winner not in ci or len(ci) < 2:
        return None
    low = ci[winner]["mean"]["ci_low"]
    return all(low > v["mean"]["ci_high"] for a, v in ci.items() if a != winner)


def _most_robust(cells, algos: tuple[str, ...], claim: str) -> dict[str, Any]:
    present = tuple(a for a in algos if corrupted_average(cells, a) is not None)
    numbers = {a: corrupted_average(cells, a, among=present) for a in present}
    numbers = {a: v for a, v in numbers.items() if v is not None}
    holds, separated, ci = None, None, {}
    if "iql" in numbers and len(numbers) > 1:
        winner = max(numbers, key=numbers.get)
        holds = winner == "iql"
        ci = intervals(cells, tuple(numbers))
        separated = _separated(ci, winner)
    return {
        "claim": claim,
        "holds": holds,
        "numbers": numbers,
        "intervals": ci,
        "separated": separated,
    }


def check_findings(cells, avgs: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The paper's qualitative findings, each: claim, holds (True/False/None), numbers.

    "IQL is the most robust" is the paper's statement about offline RL algorithms, so it is
    checked among td3bc/cql/iql; a second line adds BC, which never reads rewards or next states
    and so cannot be hurt by reward or dynamics corruption (its score there equals clean).
    Averages use only the cells every compared algorithm finished.
    """
    findings = [
        _most_robust(
            cells,
            OFFLINE_RL_BASELINES,
            "IQL is the most robust offline RL baseline (highest mean score under random "
            "corruption among td3bc, cql, iql)",
        ),
        _most_robust(
            cells,
            BASELINES,
            "IQL is also more robust than BC (same average, BC included; BC is immune to reward "
            "and dynamics corruption by construction)",
        ),
    ]
    both = ("iql", "riql")
    iql = corrupted_average(cells, "iql", among=both)
    riql = corrupted_average(cells, "riql", among=both)
    holds = None if iql is None or riql is None else riql >= iql
    ci = intervals(cells, both) if holds is not None else {}
    findings.append(
        {
            "claim": "RIQL >= IQL on average under random corruption",
            "holds": holds,
            "numbers": {"iql": iql, "riql": riql},
            "intervals": ci,
            "separated": None if holds is None else _separated(ci, "riql" if holds else "iql"),
        }
    )
    gains = {
        cond: row["riql"] - row["iql"]
        for cond, row in avgs.items()
        if cond.startswith("random-") and "riql" in row and "iql" in row
    }
    holds = None
    if len(gains) > 1 and "random-dynamics" in gains:
        holds = max(gains, key=gains.get) == "random-dynamics"
    findings.append(
        {
            "claim": "RIQL's largest gain over IQL is under dynamics corruption",
            "holds": holds,
            "numbers": gains,
        }
    )
    return findings


def device_check(trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Where an algorithm has cells with trials on two devices: per algorithm, the mean over those
    cells of (mean on one device - mean on the other), its mean absolute value, and for scale the
    mean absolute difference between two seeds on the same device."""
    by_cell: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for t in trials:
        if t.get("score") is not None:
            key = (t["algo"], t["dataset"], t["condition"])
            by_cell.setdefault(key, {}).setdefault(t.get("device") or "cpu", []).append(t["score"])
    out: dict[str, dict[str, Any]] = {}
    for (algo, _, _), by_dev in by_cell.items():
        if len(by_dev) != 2:
            continue
        (dev_a, a), (dev_b, b) = sorted(by_dev.items())
        row = out.setdefault(algo, {"devices": [dev_a, dev_b], "diffs": [], "seed_gaps": []})
        row["diffs"].append(float(np.mean(a) - np.mean(b)))
        row["seed_gaps"] += [abs(x[0] - x[1]) for x in (a, b) if len(x) >= 2]
    for row in out.values():
        diffs, gaps = row.pop("diffs"), row.pop("seed_gaps")
        row.update(
            cells=len(diffs),
            mean_diff=float(np.mean(diffs)),
            mean_abs_diff=float(np.mean(np.abs(diffs))),
            same_device_seed_gap=float(np.mean(gaps)) if gaps else None,
        )
    return out


# ----------------------------------------------------------------------------- output
def fmt_cell(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "—"
    if cell["n"] == 1:  # one seed: no spread to show
        return f"{cell['mean']:.1f} (n=1)"
    return f"{cell['mean']:.1f} ± {cell['std']:.1f} (n={cell['n']})"


def markdown(payload: dict[str, Any]) -> str:
    budget, algos = payload["budget"], payload["budget"]["algos"]
    cells, avgs = payload["table"], payload["condition_averages"]
    lines = [
        f"# Offline RL under data corruption — {payload['benchmark']}",
        "",
        f"Protocol of Yang et al. (ICLR 2024): each transition corrupted with probability c = "
        f"{budget['rate']:g}, ε = {budget['scale']:g}; random corruption of each target, adversarial "
        f"dynamics on {', '.join(budget['adversarial']) or 'none'}.",
        "",
        f"**Budget:** {budget['steps']:,} gradient steps per trial, seeds {budget['seeds']}, "
        f"{budget['eval_episodes']} evaluation episodes at the end"
        + (
            f", datasets of {budget['dataset_size']:,} transitions"
            if budget["dataset_size"]
            else ""
        )
        + f"; adversarial critic {budget['critic_steps']:,} steps; riql with "
        + (
            "the paper's per-attack δ/α/K"
            if budget.get("riql_settings") == "paper"
            else "its defaults"
        )
        + ". The paper trained far longer: "
        "absolute scores at this budget are not comparable to its numbers, only the orderings.",
        "",
        f"Score: {payload['score_kind']}; cells are mean ± std over seeds (n = seeds finished).",
        "",
    ]
    overrides = budget.get("overrides") or {}
    if overrides:
        lines += [
            "Config overrides: "
            + ", ".join(f"{a}.{k}={v}" for a, kv in overrides.items() for k, v in kv.items())
            + ".",
            "",
        ]
    devices: dict[str, dict[str, int]] = {}
    for t in payload["trials"]:
        if t.get("score") is not None:
            by_algo = devices.setdefault(t.get("device") or "cpu", {})
            by_algo[t["algo"]] = by_algo.get(t["algo"], 0) + 1
    if len(devices) > 1:
        lines += [
            "Trained on: "
            + "; ".join(
                f"{dev} ({', '.join(f'{a} {n}' for a, n in by_algo.items())} trials)"
                for dev, by_algo in devices.items()
            )
            + ". Same code, data and budget; random corruptions are bit-identical on both "
            "(same dataset fingerprints). The GPU ran JAX's default float32 matmuls (TF32 "
            "tensor cores), the CPU full float32, so a trial's numbers depend a little on where "
            "it ran, as they do on the seed.",
            "",
        ]
    lines += [f"![scores by dataset and condition]({payload['benchmark']}.png)", ""]
    header = "| dataset | condition | " + " | ".join(algos) + " |"
    lines += [header, "|" + "---|" * (len(algos) + 2)]
    for dataset, by_cond in cells.items():
        for cond in sorted(by_cond, key=_condition_order):
            row = [fmt_cell(by_cond[cond].get(a)) for a in algos]
            lines.append(f"| {dataset} | {cond} | " + " | ".join(row) + " |")
    lines += ["", "Average over datasets:", "", header, "|" + "---|" * (len(algos) + 2)]
    for cond, row in avgs.items():
        vals = [f"{row[a]:.1f}" if a in row else "—" for a in algos]
        lines.append(f"| all | {cond} | " + " | ".join(vals) + " |")
    check = payload.get("device_check") or {}
    if check:
        lines += [
            "",
            "Same cells on two devices (mean of one device's seeds minus the other's; for scale, "
            "the gap between two seeds on one device):",
            "",
            "| algorithm | devices | cells | mean difference | mean absolute difference | "
            "seed gap, same device |",
            "|---|---|---|---|---|---|",
        ]
        for algo, row in check.items():
            gap = row["same_device_seed_gap"]
            lines.append(
                f"| {algo} | {' − '.join(row['devices'])} | {row['cells']} | "
                f"{row['mean_diff']:+.1f} | {row['mean_abs_diff']:.1f} | "
                + ("—" if gap is None else f"{gap:.1f}")
                + " |"
            )
    lines += ["", "## The paper's findings, checked", ""]
    for f in payload["findings"]:
        verdict = {True: "reproduces", False: "does not reproduce", None: "not measured"}[
            f["holds"]
        ]
        numbers = ", ".join(
            f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in f["numbers"].items()
        )
        line = f"- {f['claim']}: **{verdict}** ({numbers or 'no data'})"
        if f.get("intervals"):
            cis = ", ".join(
                f"{a} {v['mean']['ci_low']:.1f}–{v['mean']['ci_high']:.1f}"
                for a, v in f["intervals"].items()
            )
            sep = {True: "separated", False: "overlapping", None: "—"}[f.get("separated")]
            line += f"; 95% bootstrap intervals of the mean: {cis} ({sep})"
        lines.append(line)
    failed = [t for t in payload["trials"] if t.get("error")]
    if failed:
        lines += ["", f"{len(failed)} trial(s) failed:", ""]
        lines += [
            f"- {t['dataset']} {t['condition']} {t['algo']} s{t['seed']}: {t['error']}"
            for t in failed
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- execution
def trial_config(ds, algo: str, mode: str, target: str, args) -> dict[str, Any] | None:
    """The trial's config overrides: RIQL's per-attack settings, then ``--set`` on top."""
    config: dict[str, Any] = {}
    if algo == "riql" and args.riql_settings == "paper":
        config.update(riql_overrides(ds, mode, target) or {})
    config.update(args.overrides.get(algo, {}))
    return config or None


def trial_label(dataset: str, cond: str, algo: str, seed: int) -> str:
    return f"{dataset_key(dataset)} {cond} {algo} s{seed}"


def sweep_trial(spec: tuple[str, str, str, str, int], args, data: str, clean_ds) -> dict[str, Any]:
    """The :func:`policyfit.sweep.run_trial` description of one grid trial: ``data`` is the
    dataset it trains on (the suite name or path, or the cached corrupted file), ``clean_ds`` the
    loaded clean dataset (for RIQL's per-environment settings)."""
    dataset, mode, target, algo, seed = spec
    cond = condition_name(mode, target)
    size = args.dataset_size if mode == "clean" and not Path(dataset).exists() else None
    return {
        "trial_id": f"{dataset_key(dataset)}/{cond}/{algo}-s{seed}",
        "variant": algo,
        "algorithm": algo,
        "dataset": data,
        # loaded in the worker and handed to policyfit.train as a Dataset
        "dataset_options": {"size": size} if size is not None else {},
        "seed": seed,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "save_every": args.save_every,
        "config": trial_config(clean_ds, algo, mode, target, args) or {},
        "overrides": {},
    }


def prepare(todo: list[dict[str, Any]], args, stop_at: float | None) -> None:
    """Each pending trial's data and config, here, before any worker starts: every clean dataset
    is loaded once and every corrupted dataset computed once (and cached), instead of once per
    worker that needs it (an adversarial attack costs a critic and a PGD pass). Sets
    ``item["trial"]``, or ``record["error"]`` when the data cannot be made. Past ``stop_at`` it
    prepares nothing more (those trials stay pending)."""
    clean: dict[str, Any] = {}
    for item in todo:
        if stop_at is not None and time.time() > stop_at:
            return
        dataset, mode, target, algo, seed = item["spec"]
        try:
            if dataset not in clean:
                try:
                    clean[dataset] = load_clean(dataset, args.dataset_size)
                except Exception as exc:
                    clean[dataset] = exc  # every trial of the dataset fails with it
            if isinstance(clean[dataset], Exception):
                raise clean[dataset]
            data = dataset
            if mode != "clean":
                path = corrupted_path(args.workdir, dataset, mode, target, args, seed)
                if not path.exists():
                    corrupted_dataset(
                        clean[dataset], dataset, mode, target, args, seed, args.workdir
                    )
                data = str(path)
            item["trial"] = sweep_trial(item["spec"], args, data, clean[dataset])
        except Exception as exc:
            item["record"]["error"] = error_line(exc)
            label = trial_label(dataset, condition_name(mode, target), algo, seed)
            print(f"{label}: FAILED {item['record']['error']}", flush=True)


def error_line(exc: BaseException) -> str:
    """A failed trial's one line in the results (at most 300 characters)."""
    return one_line(exc)[:300]


def execute(todo: list[dict[str, Any]], args, stop_at: float | None) -> None:
    """Run the pending trials on :func:`policyfit.sweep.run_trials` (``--jobs`` worker
    processes): each one trains or resumes with :func:`policyfit.sweep.run_trial`, a failure is
    recorded in its record (``error``) and the grid goes on. Updates the records in place."""
    from policyfit.sweep import run_trial, run_trials

    prepare(todo, args, stop_at)
    ready = [item for item in todo if "trial" in item]

    def on_result(index: int, outcome) -> None:
        item = ready[index]
        record, trial = item["record"], item["trial"]
        label = trial_label(item["spec"][0], record["condition"], record["algo"], record["seed"])
        if outcome.status == "pending":
            return
        row = outcome.value if outcome.status == "done" else {"status": "failed"}
        if row.get("status") == "failed":
            record["error"] = (row.get("error") or outcome.error or "failed")[:300]
            print(f"{label}: FAILED {record['error']}", flush=True)
            if args.debug:
                error_file = Path(record["run_dir"]) / "error.txt"
                print(outcome.traceback or (error_file.read_text() if error_file.is_file() else ""))
            return
        record["config"] = trial["config"] or None
        record["seconds"] = round(outcome.seconds, 1)
        record["summary"] = RunDir(record["run_dir"]).read_summary()
        print(
            f"{dataset_key(item['spec'][0]):>28} {record['condition']:<22} {record['algo']:<6} "
            f"s{record['seed']}: score {score_of(record['summary'])[0]}  "
            f"({record['seconds']:.0f}s)",
            flush=True,
        )

    run_trials(
        run_trial,
        [(item["trial"], item["record"]["run_dir"]) for item in ready],
        engine="local",
        jobs=args.jobs,
        stop_at=stop_at,
        on_result=on_result,
        description="corruption grid",
    )


_CORRUPTION_INFO: dict[Path, tuple[str, dict[str, Any]]] = {}  # path -> (fingerprint, metadata)


def _add_results(record: dict[str, Any], summary: dict[str, Any], args) -> None:
    """Copy a finished trial's score, budget and corruption statistics into its record.

    The statistics come from the cached corrupted dataset, and only when the trial trained on
    that very file (same fingerprint): a trial run elsewhere (e.g. an adversarial attack computed
    on a GPU) may have trained on another draw.
    """
    record["score"], record["score_kind"] = score_of(summary)
    record["steps"] = summary.get("steps")
    record["wall_seconds"] = summary.get("wall_seconds")
    record["device"] = summary.get("device", "cpu")
    record["data_normalized_return_mean"] = summary.get("data_normalized_return_mean")
    mode, _, target = record["condition"].partition("-")
    path = corrupted_path(args.workdir, record["dataset"], mode, target, args, record["seed"])
    if mode == "clean" or not path.exists():
        return
    if path not in _CORRUPTION_INFO:
        from policyfit.data.io import load_dataset

        ds = load_dataset(path)
        _CORRUPTION_INFO[path] = (ds.fingerprint(), ds.metadata.get("corruption", {}))
    fingerprint, info = _CORRUPTION_INFO[path]
    if summary.get("dataset_fingerprint") != fingerprint:
        record["corruption"] = {"note": "trained on another draw than the cached file"}
        return
    record["corruption"] = {k: info.get(k) for k in ("n_corrupted", "n_transitions", "measured")}
    if "attack" in info:
        record["corruption"]["attack"] = {
            k: info["attack"].get(k) for k in ("q_clean_mean", "q_attacked_mean", "rows_lowered")
        }


def plot(payload: dict[str, Any], path: Path) -> Path:
    """One panel per dataset: grouped bars (mean over seeds, whiskers: min..max) per condition."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cells, algos = payload["table"], payload["budget"]["algos"]
    fig = Figure(figsize=(4.2 * max(len(cells), 1), 3.6), dpi=110, layout="constrained")
    axes = fig.subplots(1, max(len(cells), 1), squeeze=False)[0]
    width = 0.8 / max(len(algos), 1)
    for ax, (dataset, by_cond) in zip(axes, cells.items(), strict=False):
        conds = sorted(by_cond, key=_condition_order)
        for i, algo in enumerate(algos):
            xs, means, lo, hi = [], [], [], []
            for j, cond in enumerate(conds):
                cell = by_cond[cond].get(algo)
                if cell:
                    xs.append(j + (i - (len(algos) - 1) / 2) * width)
                    means.append(cell["mean"])
                    lo.append(cell["mean"] - cell["min"])
                    hi.append(cell["max"] - cell["mean"])
            ax.bar(xs, means, width, yerr=[lo, hi], capsize=1.5, label=algo, error_kw={"lw": 0.7})
        labels = [c.replace("random-", "rand.\n").replace("adversarial-", "adv.\n") for c in conds]
        ax.set_xticks(range(len(conds)), labels, fontsize=7)
        ax.set_title(dataset, fontsize=9)
        ax.axhline(0, color="gray", lw=0.5)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("final normalized score")
    axes[-1].legend(fontsize=7, ncols=len(algos), loc="upper right")
    fig.suptitle(
        f"{payload['budget']['steps']:,} updates; c = {payload['budget']['rate']:g}, "
        f"ε = {payload['budget']['scale']:g}; bars: mean over seeds, whiskers: min..max",
        fontsize=9,
    )
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), help="suite names or paths")
    p.add_argument("--algos", nargs="+", default=list(ALGOS))
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    p.add_argument(
        "--adversarial", nargs="*", default=[DATASETS[2]],
        help="datasets that also get adversarial dynamics corruption (default: hopper-medium-replay)",
    )  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=100_000, help="gradient steps per trial")
    p.add_argument("--rate", type=float, default=0.3, help="c")
    p.add_argument("--scale", type=float, default=1.0, help="ε")
    p.add_argument("--dataset-size", type=int, default=None, help="transitions of suite datasets")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=0, help="0: evaluate at the end only")
    p.add_argument("--save-every", type=int, default=25_000, help="checkpoint cadence (resume)")
    p.add_argument("--critic-steps", type=int, default=5_000, help="adversarial critic updates")
    p.add_argument("--workdir", type=Path, default=WORKDIR)
    p.add_argument("--name", default="corruption", help="results/<name>.json and .md")
    p.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where <name>.json and .md go"
    )
    p.add_argument("--dry-run", action="store_true", help="list the trials and their state only")
    p.add_argument(
        "--table-only", action="store_true", help="rebuild the table from finished trials"
    )
    p.add_argument(
        "--riql-settings", choices=("paper", "defaults"), default="paper",
        help="riql: the paper's per-attack δ/α/K (RIQL_config.py) or the registry defaults; "
        "use another --workdir when switching",
    )  # fmt: skip
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="ALGO.KEY=VALUE",
        help="config override, e.g. cql.bc_steps=3000 (repeatable; riql's go on top of the "
        "paper's settings)",
    )  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=1,
        help="trials run side by side in worker processes (one core each on CPU; on a GPU "
        "set XLA_PYTHON_CLIENT_PREALLOCATE=false)",
    )  # fmt: skip
    p.add_argument(
        "--stop-after", type=float, default=None, metavar="MINUTES",
        help="start no trial after this many minutes (for a bounded session; rerun to go on)",
    )  # fmt: skip
    p.add_argument("--debug", action="store_true", help="print the traceback of a failed trial")
    args = p.parse_args(argv)
    args.overrides = parse_overrides(args.overrides)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    adversarial = [d for d in args.adversarial if d in args.datasets]
    grid = [
        (dataset, mode, target, algo, seed)
        # seeds outermost: a budget cut short still leaves every cell with its first seed
        for seed in args.seeds
        for dataset in args.datasets
        for mode, target in conditions(dataset, args.targets, adversarial)
        for algo in args.algos
    ]
    print(
        f"{len(grid)} trials x {args.steps:,} steps; workdir {args.workdir}; finished trials "
        "(summary.json) are skipped",
        flush=True,
    )
    trials: list[dict[str, Any]] = []
    todo: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for dataset, mode, target, algo, seed in grid:
        cond = condition_name(mode, target)
        run_dir = trial_dir(args.workdir, dataset, cond, algo, seed)
        record: dict[str, Any] = {
            "dataset": dataset_key(dataset),
            "condition": cond,
            "algo": algo,
            "seed": seed,
            "run_dir": str(run_dir),
        }
        try:
            state = run_state(run_dir, algorithm=algo, seed=seed, steps=args.steps)
        except PolicyfitError as exc:
            state, record["error"] = "refused", error_line(exc)
        trials.append(record)
        if state == "finished":
            record["summary"] = RunDir(run_dir).read_summary()
        elif state != "refused" and not (args.dry_run or args.table_only):
            todo.append({"record": record, "spec": (dataset, mode, target, algo, seed)})

    if todo:
        stop_at = time.time() + 60 * args.stop_after if args.stop_after is not None else None
        execute(todo, args, stop_at)

    for record in trials:
        summary = record.pop("summary", None)
        if summary is not None:
            _add_results(record, summary, args)
        elif "error" not in record:
            record["state"] = "pending"

    if args.dry_run:
        done = sum("score" in t for t in trials)
        print(f"{done}/{len(trials)} trials finished")
        return {"trials": trials}
    cells = aggregate(trials)
    avgs = condition_averages(cells, args.algos)
    kinds = {t.get("score_kind") for t in trials if t.get("score") is not None}
    payload = {
        "benchmark": args.name,
        "budget": {
            "steps": args.steps,
            "seeds": args.seeds,
            "rate": args.rate,
            "scale": args.scale,
            "datasets": [dataset_key(d) for d in args.datasets],
            "algos": args.algos,
            "targets": args.targets,
            "adversarial": [dataset_key(d) for d in adversarial],
            "dataset_size": args.dataset_size,
            "eval_episodes": args.eval_episodes,
            "critic_steps": args.critic_steps,
            "riql_settings": args.riql_settings,
            "overrides": args.overrides,
        },
        "score_kind": "final normalized score (D4RL-style, 0 = random, 100 = expert)"
        if kinds <= {"normalized"}
        else f"mixed ({sorted(k for k in kinds if k)}): normalized where reference scores exist, else return",
        "trials_finished": sum(t.get("score") is not None for t in trials),
        "trials_total": len(trials),
        "this_invocation_seconds": round(time.perf_counter() - t_start, 1),
        "table": cells,
        "condition_averages": avgs,
        "findings": check_findings(cells, avgs),
        "device_check": device_check(trials),
        "trials": trials,
    }
    out = write_result(args.name, payload, args.results_dir)
    payload = json.loads(out.read_text())
    if payload["table"]:
        plot(payload, out.with_suffix(".png"))
    md = write_text(out.with_suffix(".md"), markdown(payload))
    print(f"{payload['trials_finished']}/{payload['trials_total']} trials finished -> {out}, {md}")
    return payload


if __name__ == "__main__":
    main()
