"""Every preference objective on every preference task, 3 seeds, and the papers' claims checked.

    python benchmarks/preference.py [--seeds 3] [--scale 1.0] [--only OBJ,OBJ] [--fresh]

Each cell (objective x task x seed) is :func:`policyfit.pref.train.train` with the budgets below
(sized so the whole run fits in about 20 minutes on a loaded 2-core CPU) and writes its result
to ``$POLICYFIT_HOME/bench/preference_<cpu kind>/`` as soon as it finishes: a killed run resumes
at the next cell. Measured per cell: expected reward and ``KL(pi || pi_ref)`` (exact on
``enumerable`` and ``unseen-response``, Monte Carlo with standard errors on the token bandits),
the distances to ``pi* ∝ pi_ref exp(R / beta)`` where exact, and the mass on the unseen response.
The claims of the papers are then checked one by one as differences with 95% t-intervals over
seeds (3 seeds: the intervals are wide, t = 4.30), and a speed row times our trainer base's DPO
against TRL's ``DPOTrainer`` on the same tiny model and batch (one run, steps/s and their ratio).
Writes ``benchmarks/results/preference_<cpu kind>.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, cpu_kind, write_result, write_text  # noqa: E402
from policyfit.cli.pref import OBJECTIVE_NAMES  # noqa: E402  (the CLI's list; no torch import)

# every objective but dpo-ours (our trainer base's DPO, timed only in the speed row)
OBJECTIVES = tuple(name for name in OBJECTIVE_NAMES if name != "dpo-ours")
TASKS = ("token-bandit-aligned", "token-bandit-unaligned", "enumerable", "unseen-response")
#: Optimizer steps per task (the budgets; ``--scale`` multiplies them).
STEPS = {
    "token-bandit-aligned": 20,
    "token-bandit-unaligned": 20,
    "enumerable": 120,
    "unseen-response": 30,
}
#: beta per task (the enumerable task's 0.5 keeps pi* away from a point mass).
BETA = {"enumerable": 0.5}
#: Learning rate per task where it differs from ``train``'s default (enumerable: 3e-3 was
#: unstable across seeds over 40 steps for DPO and CoPG; 1e-3 over 120 steps is not).
LR = {"enumerable": 1e-3}
#: Held-out prompts of the bandit's Monte Carlo evaluation here (x 8 samples; the task's
#: default is 100): half, to fit the time budget; the standard errors say what it costs.
BANDIT_EVAL_PROMPTS = 50
T95 = {1: 12.71, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}

KEYS = (
    "expected_reward",
    "kl_policy_ref",
    "kl_ref_policy",
    "regularized_reward",
    "tv_to_optimum",
    "kl_policy_optimum",
    "mass_on_unseen",
    "mass_other",
    "train_seconds",
)


def cell_path(work: Path, objective: str, task: str, seed: int, steps: int) -> Path:
    lr = LR.get(task)
    tag = f"s{steps}" + (f"-lr{lr:g}" if lr else "")
    return work / f"{task}__{objective}__seed{seed}__{tag}.json"


_BEFORE: dict = {}


def run_cell(work: Path, objective: str, task: str, seed: int, scale: float) -> dict:
    from policyfit.common.files import read_json, write_json
    from policyfit.pref.train import train

    steps = max(2, round(STEPS[task] * scale))
    path = cell_path(work, objective, task, seed, steps)
    if path.is_file():
        return read_json(path)
    result = train(
        objective,
        task,
        steps=steps,
        seed=seed,
        beta=BETA.get(task),
        learning_rate=LR.get(task),
        before=_BEFORE.get((task, seed)),
    )
    _BEFORE[(task, seed)] = result["before"]
    cell = {k: result.get(k) for k in KEYS}
    cell.update(
        objective=objective,
        task=task,
        seed=seed,
        steps=steps,
        beta=result["beta"],
        learning_rate=result["learning_rate"],
        batch_size=result["batch_size"],
        trainer=result["trainer"],
        before={k: result["before"].get(k) for k in KEYS if k != "train_seconds"},
        log=result["trl_log"],
    )
    write_json(path, cell)
    return cell


def interval(values: list[float]) -> dict:
    """Mean and the 95% t-interval half-width over seeds."""
    a = np.asarray([v for v in values if v is not None], dtype=float)
    if a.size == 0:
        return {"mean": None, "ci95": None, "n": 0}
    half = T95.get(a.size - 1, 1.96) * a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else None
    return {"mean": float(a.mean()), "ci95": None if half is None else float(half), "n": a.size}


def per_seed(cells: dict, objective: str, task: str, key: str) -> list[float]:
    return [c.get(key) for (o, t, _), c in sorted(cells.items()) if o == objective and t == task]


def gain(cells, objective, task, key="expected_reward") -> list[float]:
    """Per seed: the trained value minus the reference's."""
    return [
        c[key] - c["before"][key]
        for (o, t, _), c in sorted(cells.items())
        if o == objective and t == task
    ]


def diff(a: list[float], b: list[float]) -> dict:
    return interval([x - y for x, y in zip(a, b, strict=True)])


def verdict(iv: dict, sign: int) -> str:
    """``holds`` if the interval excludes 0 on the claimed side, ``opposite`` if it excludes 0
    on the other, ``inconclusive`` otherwise."""
    if iv["mean"] is None or iv["ci95"] is None:
        return "n/a"
    lo, hi = iv["mean"] - iv["ci95"], iv["mean"] + iv["ci95"]
    if (sign > 0 and lo > 0) or (sign < 0 and hi < 0):
        return "holds"
    if (sign > 0 and hi < 0) or (sign < 0 and lo > 0):
        return "opposite"
    return "inconclusive"


def claims(cells: dict) -> list[dict]:
    out = []

    def add(name, paper, what, iv, sign):
        out.append(
            {"claim": name, "paper": paper, "measure": what, **iv, "verdict": verdict(iv, sign)}
        )

    # Tajwar et al.: on-policy + negative gradient (online DPO) beats offline MLE (C-RLFT's
    # expert-class SFT on the chosen responses) by more when the reward peaks where the
    # reference has little mass (c = 70) than near its mode (c = 20).
    adv = {
        t: [
            x - y
            for x, y in zip(gain(cells, "online-dpo", t), gain(cells, "c-rlft", t), strict=True)
        ]
        for t in ("token-bandit-aligned", "token-bandit-unaligned")
    }
    add(
        "Tajwar: online DPO - offline MLE, c = 20",
        "Tajwar et al. 2024",
        "reward gain of online-dpo minus that of c-rlft (expert-class SFT), c = 20",
        interval(adv["token-bandit-aligned"]),
        +1,
    )
    add(
        "Tajwar: online DPO - offline MLE, c = 70",
        "Tajwar et al. 2024",
        "the same at c = 70",
        interval(adv["token-bandit-unaligned"]),
        +1,
    )
    add(
        "Tajwar: the advantage is larger at c = 70",
        "Tajwar et al. 2024",
        "(gain gap at c = 70) - (gain gap at c = 20)",
        diff(adv["token-bandit-unaligned"], adv["token-bandit-aligned"]),
        +1,
    )
    for t in ("token-bandit-unaligned", "enumerable"):
        add(
            f"Tajwar: negative gradient (offline DPO) > MLE, {t}",
            "Tajwar et al. 2024",
            "reward gain of dpo minus that of c-rlft",
            diff(gain(cells, "dpo", t), gain(cells, "c-rlft", t)),
            +1,
        )
    # Song et al.: HyPO's online KL term keeps KL(pi || pi_ref) below DPO's.
    for t in ("enumerable", "token-bandit-unaligned"):
        add(
            f"HyPO: lower reverse KL than DPO, {t}",
            "Song et al. 2024",
            "KL(pi || pi_ref) of hypo minus that of dpo",
            diff(
                per_seed(cells, "hypo", t, "kl_policy_ref"),
                per_seed(cells, "dpo", t, "kl_policy_ref"),
            ),
            -1,
        )
    add(
        "HyPO: regularized reward at least DPO's, enumerable",
        "Song et al. 2024",
        "E R - beta KL of hypo minus that of dpo",
        diff(
            per_seed(cells, "hypo", "enumerable", "regularized_reward"),
            per_seed(cells, "dpo", "enumerable", "regularized_reward"),
        ),
        +1,
    )
    # Xu et al.: DPO moves mass onto the unseen response; an online method does not.
    t = "unseen-response"
    add(
        "Xu: DPO raises the mass on the unseen y3",
        "Xu et al. 2024",
        "pi(y3) after dpo minus pi_ref(y3)",
        interval(gain(cells, "dpo", t, "mass_on_unseen")),
        +1,
    )
    for online in ("online-dpo", "hypo"):
        add(
            f"Xu: {online} puts less mass on y3 than DPO",
            "Xu et al. 2024",
            f"pi(y3) of {online} minus that of dpo",
            diff(
                per_seed(cells, online, t, "mass_on_unseen"),
                per_seed(cells, "dpo", t, "mass_on_unseen"),
            ),
            -1,
        )
    # The same on the enumerable task: OTHER (an invalid sequence) never appears in the data.
    t = "enumerable"
    add(
        "Xu: DPO raises the mass on never-seen outcomes (OTHER), enumerable",
        "Xu et al. 2024",
        "pi(OTHER) after dpo minus pi_ref(OTHER)",
        interval(gain(cells, "dpo", t, "mass_other")),
        +1,
    )
    for online in ("online-dpo", "hypo"):
        add(
            f"Xu: {online} puts less mass on OTHER than DPO, enumerable",
            "Xu et al. 2024",
            f"pi(OTHER) of {online} minus that of dpo",
            diff(per_seed(cells, online, t, "mass_other"), per_seed(cells, "dpo", t, "mass_other")),
            -1,
        )
    # Flet-Berliac et al.: CoPG's fixed point is pi* from off-policy data.
    t = "enumerable"
    add(
        "CoPG: moves toward pi* (KL(pi || pi*) falls)",
        "Flet-Berliac et al. 2024",
        "KL(pi || pi*) after copg minus before",
        interval(gain(cells, "copg", t, "kl_policy_optimum")),
        -1,
    )
    add(
        "CoPG: moves toward pi* (TV(pi, pi*) falls)",
        "Flet-Berliac et al. 2024",
        "TV(pi, pi*) after copg minus before",
        interval(gain(cells, "copg", t, "tv_to_optimum")),
        -1,
    )
    add(
        "CoPG: its fixed point is pi* only on the data's support (mass on OTHER grows)",
        "Flet-Berliac et al. 2024",
        "pi(OTHER) after copg minus pi_ref(OTHER)",
        interval(gain(cells, "copg", t, "mass_other")),
        +1,
    )
    add(
        "CoPG: closer to pi* than DPO at the same budget",
        "Flet-Berliac et al. 2024",
        "TV(pi, pi*) of copg minus that of dpo",
        diff(
            per_seed(cells, "copg", t, "tv_to_optimum"), per_seed(cells, "dpo", t, "tv_to_optimum")
        ),
        -1,
    )
    # Liu et al.: RPO's SFT term counters over-optimization (less KL, less drift off the data).
    for t in ("enumerable", "unseen-response"):
        add(
            f"RPO: less KL(pi || pi_ref) than DPO, {t}",
            "Liu et al. 2024",
            "KL(pi || pi_ref) of rpo minus that of dpo",
            diff(
                per_seed(cells, "rpo", t, "kl_policy_ref"),
                per_seed(cells, "dpo", t, "kl_policy_ref"),
            ),
            -1,
        )
    add(
        "RPO: less mass on the unseen y3 than DPO",
        "Liu et al. 2024",
        "pi(y3) of rpo minus that of dpo",
        diff(
            per_seed(cells, "rpo", "unseen-response", "mass_on_unseen"),
            per_seed(cells, "dpo", "unseen-response", "mass_on_unseen"),
        ),
        -1,
    )
    return out


def speed_row(steps: int = 30, rounds: int = 3) -> dict:
    """Optimizer steps/s of ``dpo-ours`` (our base) and ``dpo`` (TRL) on the enumerable task,
    batch 32, the same reference and data; ``rounds`` alternating runs of each (ours, TRL, ours,
    ...), the best round of each reported (the machine is shared; the best is the least disturbed)."""
    from policyfit.pref.train import train

    seconds: dict[str, list[float]] = {"dpo-ours": [], "dpo": []}
    for _ in range(rounds):
        for name in seconds:
            r = train(name, "enumerable", steps=steps, seed=0, beta=0.5, batch_size=32)
            seconds[name].append(r["train_seconds"])
    out: dict = {
        name: {
            "steps": steps,
            "rounds_seconds": values,
            "seconds": min(values),
            "steps_per_s": steps / min(values),
        }
        for name, values in seconds.items()
    }
    out["ratio_ours_over_trl"] = out["dpo-ours"]["steps_per_s"] / out["dpo"]["steps_per_s"]
    out["rounds"] = rounds
    return out


def table(summary: dict, task: str) -> list[str]:
    exact = task in ("enumerable", "unseen-response")
    cols = ["objective", "E R", "KL(pi||ref)"] + (["TV(pi,pi*)", "KL(pi||pi*)"] if exact else [])
    if task == "unseen-response":
        cols.append("pi(y3)")
    if task == "enumerable":
        cols.append("pi(OTHER)")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    ref = summary[task]["reference"]

    def fmt(iv):
        if iv is None or iv.get("mean") is None:
            return "n/a"
        half = iv.get("ci95")
        return f"{iv['mean']:.3f}" + ("" if half is None else f" ± {half:.3f}")

    keys = ["expected_reward", "kl_policy_ref"] + (
        ["tv_to_optimum", "kl_policy_optimum"] if exact else []
    )
    if task == "unseen-response":
        keys.append("mass_on_unseen")
    if task == "enumerable":
        keys.append("mass_other")
    lines.append("| reference | " + " | ".join(fmt(ref.get(k)) for k in keys) + " |")
    for obj, row in summary[task]["objectives"].items():
        lines.append(f"| {obj} | " + " | ".join(fmt(row.get(k)) for k in keys) + " |")
    return lines


def plot(summary: dict, path: Path) -> None:
    from policyfit.common.files import atomic_write_bytes
    from policyfit.report.plots import COLORS, _figure

    fig = _figure(12.0, 3.4)
    axes = fig.subplots(1, len(TASKS))
    for ax, task in zip(axes, TASKS, strict=True):
        for i, (obj, row) in enumerate(summary[task]["objectives"].items()):
            kl, er = row["kl_policy_ref"], row["expected_reward"]
            ax.errorbar(
                kl["mean"],
                er["mean"],
                xerr=kl["ci95"] or 0,
                yerr=er["ci95"] or 0,
                fmt="os^"[i // len(COLORS)],
                color=COLORS[i % len(COLORS)],
                label=obj,
                ms=4,
            )
        ref = summary[task]["reference"]["expected_reward"]["mean"]
        ax.axhline(ref, color="grey", lw=0.8, ls="--")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("KL(pi || pi_ref)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("expected reward")
    axes[-1].legend(fontsize=6, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    import torch

    from policyfit.paths import home

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every step budget.")
    parser.add_argument("--only", default=None, help="Comma-separated objectives to run.")
    parser.add_argument("--tasks", default=None, help="Comma-separated tasks to run.")
    parser.add_argument("--fresh", action="store_true", help="Ignore finished cells.")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from policyfit.pref import tasks as pref_tasks

    pref_tasks.BANDIT_EVAL_PROMPTS = BANDIT_EVAL_PROMPTS  # read at call time by evaluate()
    kind = cpu_kind()
    work = home() / "bench" / f"preference_{kind}"
    work.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for p in work.glob("*.json"):
            p.unlink()
    objectives = args.only.split(",") if args.only else list(OBJECTIVES)
    tasks = args.tasks.split(",") if args.tasks else list(TASKS)
    started = time.perf_counter()
    cells = {}
    for task in tasks:
        for seed in range(args.seeds):
            for obj in objectives:
                t0 = time.perf_counter()
                cells[(obj, task, seed)] = run_cell(work, obj, task, seed, args.scale)
                c = cells[(obj, task, seed)]
                print(
                    f"{task:24s} {obj:12s} seed {seed}: E R {c['expected_reward']:.3f} "
                    f"KL {c['kl_policy_ref']:.3f} ({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
    summary = {}
    for task in tasks:
        rows = {}
        for obj in objectives:
            rows[obj] = {k: interval(per_seed(cells, obj, task, k)) for k in KEYS}
        first = [c for (o, t, _), c in sorted(cells.items()) if t == task]
        ref = {
            k: interval([c["before"].get(k) for c in first if c["objective"] == objectives[0]])
            for k in KEYS
            if k != "train_seconds"
        }
        summary[task] = {
            "objectives": rows,
            "reference": ref,
            "steps": max(2, round(STEPS[task] * args.scale)),
        }
    checked = (
        claims(cells) if set(OBJECTIVES) <= set(objectives) and set(TASKS) <= set(tasks) else []
    )
    speed = None if args.no_speed else speed_row()
    elapsed = time.perf_counter() - started
    payload = {
        "settings": {
            "learning_rate": LR,
            "seeds": args.seeds,
            "scale": args.scale,
            "steps": {t: summary[t]["steps"] for t in tasks},
            "beta": BETA,
        },
        "summary": summary,
        "claims": checked,
        "speed": speed,
        "cells": [cells[k] for k in sorted(cells)],
        "wall_seconds": elapsed,
        "train_seconds_all_cells": sum(c["train_seconds"] for c in cells.values()),
    }
    name = f"preference_{kind}"
    write_result(name, payload)
    md = [f"# Preference objectives on the pref tasks ({kind})", ""]
    md.append(
        f"{args.seeds} seeds per cell, mean ± 95% t-interval over seeds; steps per task: "
        + ", ".join(f"{t} {summary[t]['steps']}" for t in tasks)
        + f"; training time of all cells {sum(c['train_seconds'] for c in cells.values()) / 60:.1f}"
        f" min (this invocation's wall time {elapsed / 60:.1f} min; finished cells are reused, not"
        " re-run). Exact metrics on enumerable and unseen-response, "
        f"Monte Carlo ({BANDIT_EVAL_PROMPTS} prompts x 8 samples) on the token bandits."
    )
    for task in tasks:
        md += ["", f"## {task}", "", *table(summary, task)]
    if checked:
        md += [
            "",
            "## Claims",
            "",
            "| claim | measure | mean ± 95% | verdict |",
            "|---|---|---|---|",
        ]
        for c in checked:
            ci = "n/a" if c["mean"] is None else f"{c['mean']:.3f} ± {c['ci95']:.3f}"
            md.append(f"| {c['claim']} | {c['measure']} | {ci} | {c['verdict']} |")
    if speed:
        md += [
            "",
            "## Speed (enumerable, batch 32)",
            "",
            f"best of {speed.get('rounds', 1)} alternating rounds: "
            f"our base's DPO {speed['dpo-ours']['steps_per_s']:.2f} steps/s, TRL DPOTrainer "
            f"{speed['dpo']['steps_per_s']:.2f} steps/s, ratio {speed['ratio_ours_over_trl']:.2f}",
        ]
    write_text(RESULTS_DIR / f"{name}.md", "\n".join(md) + "\n")
    if set(TASKS) <= set(tasks):
        plot(summary, RESULTS_DIR / f"{name}.png")
    print(
        json.dumps(
            {"claims": [(c["claim"], c["verdict"]) for c in checked], "speed": speed}, indent=1
        )
    )


if __name__ == "__main__":
    main()
