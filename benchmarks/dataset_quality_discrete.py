"""The dataset-quality study on discrete data: TQ and SACo of each dataset vs 9 algorithms' scores.

Replicates Schweighofer et al., "A Dataset Perspective on Offline Reinforcement Learning" (CoLLAs
2022; code github.com/ml-jku/OfflineRL) on the discrete suite ``{env}-{random,mixed,replay,noisy,
expert}``: for every environment and dataset it measures the trajectory quality (TQ) and the
state-action coverage (SACo), trains BC, BVE, MCE, DQN, QR-DQN, REM, BCQ, CQL and CRR on it with
several seeds, and checks the paper's findings against the scores.

Definitions (as in the paper's code; see each function's docstring for the file:function read):

* TQ = (mean return of the dataset's episodes - random return) / (online best return - random
  return), with ``ref_min_score`` / ``ref_max_score`` of the dataset's metadata as the random and
  online-best returns (``source/plotting/create_plots.py``, the ``y`` of the TQ-SACo plots).
  Only complete episodes count (``evaluator.py::Evaluator.get_returns`` sums up to each ``done``):
  an episode that the dataset's end or a collection lane's end cut short is left out.
* SACo = unique (state, action) pairs of the dataset / those of the same environment's ``replay``
  dataset (same size and data seed), states cut into 100 bins per dimension
  (``evaluator.py::Evaluator.get_unique_state_actions``, ``create_plots.py``: ``usa /
  online_usap``), counted by :func:`policyfit.diagnostics.coverage.state_action_coverage`.
* Score = 100 (return of the learned policy - random return) / (online best - random), the
  normalized score of ``policyfit.evaluate`` on the run directory: 10 episodes, reset seeds 0-9
  (the paper's ``source/utils/evaluation.py::evaluate`` seeds its 10 episodes 0-9). The paper
  takes the maximum over the evaluation checkpoints of a run (``create_plots.py``: ``np.max(
  np.mean(csv, axis=1))``); **this script reports the final policy's score**, which is lower or
  equal and is what a user would deploy.

The budget. The paper trains 5 x online-steps updates (500k for 100k-transition datasets) with
Adam 1e-4, batch 128 and 3 x 256 SELU MLPs, then keeps the best checkpoint (``ex_01.py``,
``source/train_offline.py``, ``source/networks/critic.py``). That is days of CPU for the 405 runs
(3 classic-control envs x 5 datasets x 9 algorithms x 3 seeds): a 3 x 256 network runs at about
250 updates/s on one core here. The defaults fit well within an hour of one core: 100k-transition
datasets (the paper's size), **10,000 updates** per run, MLPs **64 x 64** (ReLU), **Adam 1e-3**,
batch 128, the environment's discount (0.95 CartPole, 0.99 Acrobot / MountainCar,
:data:`policyfit.envs.jaxenv.DISCRETE_ENVS`), target copies every 100 updates for every algorithm
with a target network (the paper's ``target_update_freq``; BCQ's Polyak default is switched off
for it), BCQ threshold 0.3, CRR beta 1, 50 quantiles (QR-DQN), 200 heads (REM), CQL alpha 0.1.
Measured on the shared 2-core Xeon pinned to one core (``taskset -c 1``), 27 cartpole runs (9
algorithms x 3 datasets): 3.6 s per run on average at 10,000 updates (compilation, training and
the evaluation), i.e. about 25 minutes for the 405 runs; 4.3 s per run at 5,000 updates under
heavier load from other users, which at 10,000 updates extrapolates to about 50 minutes. Dataset
building comes on top. The algorithms are not tuned further (Adam 1e-3 is what offline Double DQN
needed to reach the top score on cartpole data in a few thousand updates in
``benchmarks/discrete_peer.py``). ``--steps``, ``--hidden``, ``--lr`` and ``--set
ALGO.KEY=VALUE`` change the budget.

Output: ``benchmarks/results/dataset_quality_discrete_<cpu kind>.{json,md,png}`` — the algorithm x
dataset table of mean scores with 95% stratified-bootstrap intervals (strata: environments; runs:
seeds; :func:`policyfit.evaluation.stats.aggregate_scores`), TQ and SACo of every dataset, the
paper's three findings checked one by one (reproduces / does not reproduce, with the numbers), the
Spearman correlation of each algorithm's score with TQ and with SACo across the (env, dataset)
cells, and the TQ-SACo plane (one panel per algorithm, one point per dataset coloured by the
algorithm's score, as the paper's ``tq_vs_sac/algos_avg`` figure).

Work directory (``--out``): ``budget.json`` (the budget every row was made with; a rerun with
another budget is refused), ``datasets/<name>.npz`` and ``datasets.jsonl`` (one row per measured
dataset), ``runs.jsonl`` (one row per finished (env, dataset, algorithm, seed), appended when the
run is done), ``runs/<dataset>/<algo>-s<seed>/`` (the run directories). A rerun skips finished
rows, so the script can be killed at any time and restarted; ``--analyze-only`` rewrites the
results from the work directory without training.

    nice python benchmarks/dataset_quality_discrete.py                        # the full grid
    nice python benchmarks/dataset_quality_discrete.py --envs cartpole \\
        --datasets random,medium,expert --reference random --algorithms discrete_bc,dqn \\
        --seeds 1 --steps 300 --size 5000 --out /tmp/dq --name smoke          # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import (  # noqa: E402
    RESULTS_DIR,
    cpu_kind,
    git_commit,
    parse_overrides,
    write_result,
    write_text,
)

ENVS = ("cartpole", "acrobot", "mountaincar")
KINDS = ("random", "mixed", "replay", "noisy", "expert")
REFERENCE_KIND = "replay"
# The paper's grouping (Sec. 5): methods that stay close to the behavior policy, off-policy
# methods, and the constrained methods in between.
BC_LIKE = ("discrete_bc", "bve", "mce")
OFF_POLICY = ("dqn", "qrdqn", "rem")
MIDDLE = ("bcq_discrete", "cql_discrete", "crr")
ALGORITHMS = BC_LIKE + OFF_POLICY + MIDDLE
LABELS = {
    "discrete_bc": "BC",
    "bve": "BVE",
    "mce": "MCE",
    "dqn": "DQN",
    "qrdqn": "QR-DQN",
    "rem": "REM",
    "bcq_discrete": "BCQ",
    "cql_discrete": "CQL",
    "crr": "CRR",
}
# markers of the paper's TQ-SACo plots (create_plots.py): random, mixed, er, noisy, fully
MARKERS = {"random": "o", "mixed": "D", "replay": "*", "noisy": "<", "expert": "s"}
SPARE_MARKERS = ("^", "v", "P", "X", "h")

DEFAULT_STEPS = 10_000
DEFAULT_SIZE = 100_000
DEFAULT_HIDDEN = (64, 64)
DEFAULT_LR = 1e-3
BATCH_SIZE = 128  # ex_01.py
TARGET_UPDATE_PERIOD = 100  # source/agents/*.py: target_update_freq
EVAL_SEED = 0  # source/utils/evaluation.py: env.seed(0..9)
EVAL_EPISODES = 10
WORK = HERE / "work" / "dataset_quality_discrete"
RUNS_FILE = "runs.jsonl"
DATASETS_FILE = "datasets.jsonl"
BUDGET_FILE = "budget.json"
COLOR_RANGE = (0.0, 120.0)  # create_plots.py: Normalize(vmin=0, vmax=120, clip=True)


def label(algo: str) -> str:
    return LABELS.get(algo, algo)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- jsonl rows
def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: a kill leaves at most a partial last line, which
    :func:`read_rows` skips and the next append starts a fresh line after."""
    from policyfit.common.files import dumps

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((dumps(row, indent=None) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a jsonl file; a line that does not parse (a killed write) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log(f"{path}:{n}: skipped an unreadable line (a killed write?)")
    return rows


def run_key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return row["env"], row["kind"], row["algorithm"], int(row["seed"])


# ----------------------------------------------------------------------------- budget
def budget_of(args: argparse.Namespace) -> dict[str, Any]:
    """What every row of a work directory must share (the grid itself may grow)."""
    return {
        "steps": args.steps,
        "size": args.size,
        "data_seed": args.data_seed,
        "episodes": args.episodes,
        "eval_seed": args.eval_seed,
        "hidden_dims": list(args.hidden),
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "reference": args.reference,
        "overrides": args.overrides,
    }


def check_budget(work: Path, budget: dict[str, Any]) -> None:
    """Write ``budget.json`` on first use; refuse a work directory made with another budget."""
    from policyfit.common.files import read_json, write_json
    from policyfit.errors import ConfigError

    path = work / BUDGET_FILE
    if not path.is_file():
        write_json(path, budget)
        return
    old = read_json(path)
    diff = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in budget.items() if old.get(k) != v]
    if diff:
        raise ConfigError(
            f"the work directory was made with {', '.join(diff)}; rerun with its budget, or pass "
            "another --out",
            path=str(path),
            field="budget",
        )


# ----------------------------------------------------------------------------- configs
def env_spec(env: str) -> Any:
    from policyfit.envs.jaxenv import get_discrete_env

    return get_discrete_env(env)


def algo_config(algo: str, env: str, args: argparse.Namespace) -> dict[str, Any]:
    """The config of ``algo`` on ``env``: the shared budget, the paper's per-algorithm settings
    (``ex_01.py``, ``source/agents/*.py``), then ``--set`` overrides."""
    cfg: dict[str, Any] = {
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "hidden_dims": tuple(args.hidden),
    }
    if algo != "discrete_bc":
        cfg["discount"] = env_spec(env).discount
    if algo in ("dqn", "qrdqn", "rem", "cql_discrete", "bve", "bcq_discrete", "crr"):
        cfg["target_update_period"] = TARGET_UPDATE_PERIOD
    if algo == "bcq_discrete":
        cfg["target_tau"] = None  # bcq.py copies the target every 100 updates (no Polyak)
    if algo == "crr":
        cfg["actor_lr"] = args.lr  # crr.py: one lr for both networks
    cfg.update(args.overrides.get(algo, {}))
    return cfg


# ----------------------------------------------------------------------------- datasets
def complete_episode_returns(ds: Any, max_episode_steps: int | None) -> tuple[np.ndarray, int]:
    """Returns of the dataset's complete episodes, and how many cut episodes were left out.

    The paper's ``evaluator.py::Evaluator.get_returns`` sums rewards up to each ``done`` (a
    terminal or the time limit) and drops the unfinished rest. Here an episode is cut when it
    ends in neither a terminal nor the environment's time limit (``max_episode_steps``): the end
    of the dataset, or of a collection lane. When every episode is cut, all are used.
    """
    returns = np.asarray(ds.episode_returns(), dtype=np.float64)
    if not max_episode_steps:
        return returns, 0
    ends = np.asarray(ds.episode_ends)
    terminal = np.asarray(ds.terminals)[ends] > 0
    cut = ~terminal & (np.asarray(ds.episode_lengths) < max_episode_steps)
    if cut.all():
        return returns, 0
    return returns[~cut], int(cut.sum())


def measure_dataset(ds: Any, ref: Any, env: str) -> dict[str, Any]:
    """TQ and SACo of ``ds``, SACo relative to ``ref`` (the environment's replay dataset).

    TQ: ``create_plots.py`` (``(mean return - random_return) / (online_return - random_return)``)
    over :func:`complete_episode_returns`, with the metadata's ``ref_min_score``/``ref_max_score``.
    SACo: ``ex_01.py::assess_env`` and ``evaluator.py::Evaluator.get_unique_state_actions`` count
    unique rows of ``np.digitize(x, np.linspace(min, max, 100))`` (for CartPole and MountainCar
    over the replay buffer's range, else each dataset's own) with a HyperLogLog sketch;
    :func:`~policyfit.diagnostics.coverage.state_action_coverage` counts exactly up to 5M rows
    on 100 equal bins over the range of both datasets together: nearly the paper's grid (its 100
    edges make 99 bins) whenever the replay data spans the other dataset's range.
    """
    from policyfit.diagnostics.coverage import state_action_coverage, trajectory_quality

    returns, cut = complete_episode_returns(ds, env_spec(env).max_episode_steps)
    refs = ds.reference_scores()
    cov = state_action_coverage(ds.observations, ds.actions, ref.observations, ref.actions)
    return {
        "transitions": len(ds),
        "episodes": int(ds.num_episodes),
        "complete_episodes": int(returns.size),
        "cut_episodes": cut,
        "return_mean": float(returns.mean()),
        "ref_min_score": None if refs is None else refs[0],
        "ref_max_score": None if refs is None else refs[1],
        "tq": None if refs is None else trajectory_quality(returns, *refs),
        "saco": float(cov["saco"]),
        "unique_pairs": cov["unique_pairs"],
        "reference_unique_pairs": cov["reference_unique_pairs"],
        "env_id": ds.env_id,
    }


def dataset_file(work: Path, name: str) -> Path:
    return work / "datasets" / f"{name}.npz"


def load_or_build(work: Path, name: str, size: int, data_seed: int) -> tuple[Any, float]:
    """The dataset from the work directory, else built by ``policyfit.make_dataset`` and saved."""
    import policyfit

    path = dataset_file(work, name)
    if path.is_file():
        return policyfit.load_dataset(path), 0.0
    t0 = time.perf_counter()
    ds = policyfit.make_dataset(name, size=size, seed=data_seed, progress=False)
    seconds = time.perf_counter() - t0
    policyfit.save_dataset(ds, path)
    return policyfit.load_dataset(path), seconds


def prepare_datasets(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Build and measure every (env, kind) dataset not yet in ``datasets.jsonl``."""
    path = work / DATASETS_FILE
    done = {(r["env"], r["kind"]) for r in read_rows(path)}
    for env in args.envs:
        todo = [k for k in args.kinds if (env, k) not in done]
        if not todo:
            continue
        ref_name = f"{env}-{args.reference}"
        ref, ref_seconds = load_or_build(work, ref_name, args.size, args.data_seed)
        for kind in todo:
            name = f"{env}-{kind}"
            t0 = time.perf_counter()
            if kind == args.reference:
                ds, seconds = ref, ref_seconds
            else:
                ds, seconds = load_or_build(work, name, args.size, args.data_seed)
            row = {
                "env": env,
                "kind": kind,
                "dataset": name,
                "size": args.size,
                "data_seed": args.data_seed,
                "reference": ref_name,
                **measure_dataset(ds, ref, env),
                "build_seconds": round(seconds, 2),
                "measure_seconds": round(time.perf_counter() - t0, 2),
            }
            append_row(path, row)
            tq = "-" if row["tq"] is None else f"{row['tq']:.2f}"
            log(
                f"dataset {name}: TQ {tq}, SACo {row['saco']:.2f}, {row['transitions']:,} "
                f"transitions, {row['complete_episodes']} complete episodes"
            )
    return read_rows(path)


# ----------------------------------------------------------------------------- runs
_DATA_CACHE: dict[str, Any] = {}


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Train one (env, dataset, algorithm, seed) and evaluate its final policy (a worker job)."""
    import policyfit

    path = task["data"]
    if path not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[path] = policyfit.load_dataset(path)
    ds = _DATA_CACHE[path]
    run_dir = Path(task["run_dir"])
    if run_dir.exists():  # a run killed before its row was written: start it again
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    result = policyfit.train(
        task["algorithm"],
        ds,
        steps=task["steps"],
        seed=task["seed"],
        config=task["config"],
        out=run_dir,
        eval_every=0,
        eval_episodes=1,  # the trainer's own final rollout; the score is evaluate's below
        save_every=0,
        progress=False,
        fuse=min(500, task["steps"]),
        fast_compile=task["fast_compile"],
    )
    t1 = time.perf_counter()
    ev = policyfit.evaluate(run_dir, episodes=task["episodes"], seed=task["eval_seed"])
    t2 = time.perf_counter()
    return {
        "env": task["env"],
        "kind": task["kind"],
        "dataset": task["dataset"],
        "algorithm": task["algorithm"],
        "seed": task["seed"],
        "score": ev["normalized_score"],
        "return_mean": ev["return_mean"],
        "returns": [float(r) for r in ev["returns"]],
        "steps": task["steps"],
        "train_seconds": round(t1 - t0, 2),
        "eval_seconds": round(t2 - t1, 2),
        "wall_seconds": round(t2 - t0, 2),
        "steps_per_second": result.summary["steps_per_second"],
        "config": task["config"],
        "run_dir": str(run_dir),
    }


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,4"`` -> seeds 0 and 4."""
    from policyfit.errors import ConfigError

    try:
        parts = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(
            f"expected a count or a comma list of integers, got {text!r}", field="seeds"
        ) from None
    if len(parts) == 1 and "," not in text:
        return list(range(parts[0]))
    return parts


def plan_tasks(args: argparse.Namespace, work: Path, done: set) -> list[dict[str, Any]]:
    """The unfinished runs, seed-major: a grid killed halfway has every cell's first seeds."""
    tasks = []
    for seed in args.seeds:
        for env in args.envs:
            for kind in args.kinds:
                name = f"{env}-{kind}"
                for algo in args.algorithms:
                    if (env, kind, algo, seed) in done:
                        continue
                    tasks.append(
                        {
                            "env": env,
                            "kind": kind,
                            "dataset": name,
                            "algorithm": algo,
                            "seed": seed,
                            "data": str(dataset_file(work, name)),
                            "run_dir": str(work / "runs" / name / f"{algo}-s{seed}"),
                            "steps": args.steps,
                            "episodes": args.episodes,
                            "eval_seed": args.eval_seed,
                            "config": algo_config(algo, env, args),
                            "fast_compile": args.fast_compile,
                        }
                    )
    return tasks


def run_grid(args: argparse.Namespace, work: Path) -> None:
    path = work / RUNS_FILE
    done = {run_key(r) for r in read_rows(path)}
    tasks = plan_tasks(args, work, done)
    total = len(tasks)
    log(f"{total} runs to do ({len(done)} finished rows in {path})")
    if not total:
        return
    t0 = time.perf_counter()

    def finished(i: int, row: dict[str, Any]) -> None:
        append_row(path, row)
        elapsed = time.perf_counter() - t0
        eta = elapsed / i * (total - i)
        log(
            f"[{i}/{total}] {row['dataset']} {row['algorithm']} s{row['seed']}: "
            f"score {row['score']:.1f}, {row['wall_seconds']:.1f} s "
            f"(elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min)"
        )

    if args.jobs <= 1:
        for i, task in enumerate(tasks, 1):
            finished(i, run_one(task))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # JAX is not fork-safe
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = [pool.submit(run_one, t) for t in tasks]
        for i, fut in enumerate(as_completed(futures), 1):
            finished(i, fut.result())


# ----------------------------------------------------------------------------- analysis
def _agg(tasks: list[Any], reps: int) -> dict[str, float] | None:
    """Mean over tasks of the per-task mean, with its 95% stratified-bootstrap interval."""
    from policyfit.evaluation.stats import aggregate_scores

    tasks = [np.asarray(t, dtype=np.float64) for t in tasks if len(t)]
    if not tasks:
        return None
    agg = aggregate_scores({"x": tasks}, metrics=("mean",), reps=reps)
    return agg["x"]["mean"]


def _fmt(v: dict[str, float] | None) -> str:
    from policyfit.evaluation.stats import format_interval

    return "-" if not v else format_interval(v["estimate"], v["ci_low"], v["ci_high"])


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def median_groups(
    datasets: dict[tuple[str, str], dict[str, Any]], envs: list[str], kinds: list[str], key: str
) -> dict[str, list[tuple[str, str]]]:
    """Per environment, the datasets above (``high``) and below (``low``) that environment's
    median ``key`` (TQ or SACo); a dataset at the median is in neither."""
    out: dict[str, list[tuple[str, str]]] = {"high": [], "low": []}
    for env in envs:
        vals = {
            k: datasets[(env, k)][key]
            for k in kinds
            if (env, k) in datasets and datasets[(env, k)].get(key) is not None
        }
        if len(vals) < 2:
            continue
        med = float(np.median(list(vals.values())))
        out["high"] += [(env, k) for k, v in vals.items() if v > med]
        out["low"] += [(env, k) for k, v in vals.items() if v < med]
    return out


def _spearman(x: list[float], y: list[float]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "p": None, "n": len(x)}
    res = spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    return {
        "rho": rho if math.isfinite(rho) else None,
        "p": p if math.isfinite(p) else None,
        "n": len(x),
    }


def _disjoint(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"]


def _compare(text: str, left: dict | None, right: dict | None, op: str) -> dict[str, Any] | None:
    """One check ``left op right`` on point estimates (``>`` or ``>=``; ``<``), with both
    intervals and whether they are disjoint (the evidence is clear) or overlap (weak)."""
    if left is None or right is None:
        return None
    a, b = left["estimate"], right["estimate"]
    holds = {">": a > b, ">=": a >= b, "<": a < b}[op]
    return {
        "check": text,
        "left": left,
        "right": right,
        "holds": bool(holds),
        "intervals_disjoint": _disjoint(left, right),
        "text": f"{text}: {_fmt(left)} {op} {_fmt(right)} -> {'yes' if holds else 'NO'}"
        + ("" if _disjoint(left, right) else " (intervals overlap)"),
    }


def _verdict(checks: list[dict[str, Any]], missing: str) -> str:
    if not checks:
        return f"not testable ({missing})"
    held = sum(c["holds"] for c in checks)
    if held == len(checks):
        return "reproduces"
    if held == 0:
        return "does not reproduce"
    return f"partly reproduces ({held} of {len(checks)} checks hold)"


def analyze(
    dataset_rows: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
    envs: list[str] | None = None,
    kinds: list[str] | None = None,
    algorithms: list[str] | None = None,
    reps: int = 2000,
) -> dict[str, Any]:
    """Everything the report shows, from the dataset rows and the run rows (no training).

    The grid defaults to what the rows hold (in the order of :data:`ENVS`, :data:`KINDS`,
    :data:`ALGORITHMS`, then first appearance).
    """

    def order(found: list[str], known: tuple[str, ...]) -> list[str]:
        seen = list(dict.fromkeys(found))
        return [k for k in known if k in seen] + [k for k in seen if k not in known]

    envs = envs or order([r["env"] for r in dataset_rows + run_rows], ENVS)
    kinds = kinds or order([r["kind"] for r in dataset_rows + run_rows], KINDS)
    algorithms = algorithms or order([r["algorithm"] for r in run_rows], ALGORITHMS)
    datasets = {(r["env"], r["kind"]): r for r in dataset_rows}
    cells: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in run_rows:
        if r.get("score") is None:
            continue
        if r["env"] in envs and r["kind"] in kinds and r["algorithm"] in algorithms:
            cells.setdefault((r["env"], r["kind"], r["algorithm"]), {})[int(r["seed"])] = float(
                r["score"]
            )

    def seeds(env: str, kind: str, algo: str) -> list[float]:
        got = cells.get((env, kind, algo), {})
        return [got[s] for s in sorted(got)]

    # the table: algorithm x dataset kind, strata = environments, runs = seeds
    table = {
        algo: {
            **{kind: _agg([seeds(e, kind, algo) for e in envs], reps) for kind in kinds},
            "all": _agg([seeds(e, k, algo) for e in envs for k in kinds], reps),
        }
        for algo in algorithms
    }
    per_kind = {}
    for kind in kinds:
        rows = [datasets[(e, kind)] for e in envs if (e, kind) in datasets]
        tqs = [r["tq"] for r in rows if r.get("tq") is not None]
        per_kind[kind] = {
            "tq": float(np.mean(tqs)) if tqs else None,
            "saco": float(np.mean([r["saco"] for r in rows])) if rows else None,
            "envs": len(rows),
        }

    # per cell: the seed mean, for correlations, groups and the plot
    cell_means = {
        f"{e}-{k}": {a: float(np.mean(seeds(e, k, a))) for a in algorithms if seeds(e, k, a)}
        for e in envs
        for k in kinds
    }
    spearman = {}
    for algo in algorithms:
        pts = [
            (datasets[(e, k)], float(np.mean(seeds(e, k, algo))))
            for e in envs
            for k in kinds
            if (e, k) in datasets and seeds(e, k, algo)
        ]
        with_tq = [(d["tq"], s) for d, s in pts if d.get("tq") is not None]
        spearman[algo] = {
            "tq": _spearman([x for x, _ in with_tq], [s for _, s in with_tq]),
            "saco": _spearman([d["saco"] for d, _ in pts], [s for _, s in pts]),
        }

    tq_groups = median_groups(datasets, envs, kinds, "tq")
    saco_groups = median_groups(datasets, envs, kinds, "saco")

    def group(algos: tuple[str, ...] | list[str], members: list[tuple[str, str]]) -> dict | None:
        return _agg([seeds(e, k, a) for a in algos if a in algorithms for e, k in members], reps)

    bc = [a for a in BC_LIKE if a in algorithms]
    off = [a for a in OFF_POLICY if a in algorithms]
    mid = [a for a in MIDDLE if a in algorithms]
    hi_tq, lo_tq = tq_groups["high"], tq_groups["low"]
    hi_sa, lo_sa = saco_groups["high"], saco_groups["low"]

    # (a) BC-like methods do best on high-TQ data (>=: a score at the ceiling on both counts)
    a_checks = [
        _compare(
            f"{label(a)}: high-TQ data >= low-TQ data", group([a], hi_tq), group([a], lo_tq), ">="
        )
        for a in bc
    ]
    a_checks.append(
        _compare(
            "high-TQ data: BC-like (BC, BVE, MCE) >= off-policy (DQN, QR-DQN, REM)",
            group(bc, hi_tq) if bc else None,
            group(off, hi_tq) if off else None,
            ">=",
        )
    )
    # (b) off-policy methods need high SACo: strictly better on high-SACo data (a method that
    # fails everywhere does not "need" coverage), and below BC-like methods on low-SACo data
    b_checks = [
        _compare(
            f"{label(a)}: high-SACo data > low-SACo data", group([a], hi_sa), group([a], lo_sa), ">"
        )
        for a in off
    ]
    b_checks += [
        _compare(
            f"{label(a)} < BC-like on low-SACo data (fails where BC does not)",
            group([a], lo_sa),
            group(bc, lo_sa) if bc else None,
            "<",
        )
        for a in off
    ]
    # (c) BCQ, CQL, CRR in between: good on high-TQ and on high-SACo data
    c_checks = []
    for a in mid:
        c_checks.append(
            _compare(
                f"{label(a)} >= off-policy on high-TQ data",
                group([a], hi_tq),
                group(off, hi_tq) if off else None,
                ">=",
            )
        )
        c_checks.append(
            _compare(
                f"{label(a)} >= BC-like on high-SACo data",
                group([a], hi_sa),
                group(bc, hi_sa) if bc else None,
                ">=",
            )
        )

    def finding(claim: str, checks: list, missing: str) -> dict[str, Any]:
        checks = [c for c in checks if c is not None]
        return {"claim": claim, "verdict": _verdict(checks, missing), "checks": checks}

    findings = {
        "a_bc_like_high_tq": finding(
            "BC-like methods (BC, BVE, MCE) do best on high-TQ data (expert, noisy) and beat the "
            "off-policy methods there",
            a_checks,
            "needs BC-like scores on datasets above and below the TQ median",
        ),
        "b_off_policy_need_saco": finding(
            "Off-policy methods (DQN, QR-DQN, REM) need high SACo: they do best on high-SACo "
            "data (replay, random-like) and fail on low-SACo data (expert), below BC-like methods",
            b_checks,
            "needs off-policy and BC-like scores on datasets above and below the SACo median",
        ),
        "c_constrained_in_between": finding(
            "BCQ, CQL and CRR sit in between: at least as good as the off-policy methods on "
            "high-TQ data and at least as good as the BC-like methods on high-SACo data",
            c_checks,
            "needs BCQ/CQL/CRR, BC-like and off-policy scores",
        ),
    }
    names = {k: [f"{e}-{kk}" for e, kk in v] for k, v in tq_groups.items()}
    names_saco = {k: [f"{e}-{kk}" for e, kk in v] for k, v in saco_groups.items()}
    seconds: dict[str, list[float]] = {}
    for r in run_rows:
        if r.get("wall_seconds") is not None and r["algorithm"] in algorithms:
            seconds.setdefault(r["algorithm"], []).append(float(r["wall_seconds"]))
    timing = {
        "per_algorithm_mean_seconds": {a: float(np.mean(v)) for a, v in seconds.items()},
        "runs": sum(len(v) for v in seconds.values()),
        "total_seconds": float(sum(sum(v) for v in seconds.values())),
    }
    return {
        "envs": envs,
        "kinds": kinds,
        "algorithms": algorithms,
        "datasets": [datasets[(e, k)] for e in envs for k in kinds if (e, k) in datasets],
        "per_kind": per_kind,
        "table": table,
        "cell_means": cell_means,
        "seeds_per_cell": {
            f"{e}-{k}-{a}": len(seeds(e, k, a)) for e in envs for k in kinds for a in algorithms
        },
        "groups": {"tq": names, "saco": names_saco},
        "findings": findings,
        "spearman": spearman,
        "timing": timing,
    }


def projection_seconds(timing: dict[str, Any], cells: int, seeds: int, algos: list[str]) -> float:
    """Wall time of a grid of ``cells`` datasets x ``seeds`` x ``algos`` on one job, from the
    measured mean seconds per run of each algorithm (algorithms not measured are left out)."""
    per = timing["per_algorithm_mean_seconds"]
    return cells * seeds * sum(per[a] for a in algos if a in per)


# ----------------------------------------------------------------------------- report
def plot(result: dict[str, Any], path: Path) -> Path:
    """The TQ-SACo plane: one panel per algorithm, each (env, dataset) a point at (SACo, TQ)
    coloured by the algorithm's mean score over seeds (create_plots.py, ``algos_avg``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from policyfit.common.files import atomic_write_bytes
    from policyfit.evaluation.stats import figure_png_bytes

    algos, kinds = result["algorithms"], result["kinds"]
    spare = iter(SPARE_MARKERS * 4)
    markers = {k: MARKERS.get(k) or next(spare) for k in kinds}
    ncols = min(3, max(1, len(algos)))
    nrows = max(1, math.ceil(len(algos) / ncols))
    height = 3.0 * nrows + 1.3
    fig = Figure(figsize=(3.6 * ncols + 1.4, height), dpi=100)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    norm = Normalize(*COLOR_RANGE, clip=True)
    datasets = {(d["env"], d["kind"]): d for d in result["datasets"]}
    for ax, algo in zip(axes, algos, strict=False):
        ax.axhline(1.0, color="silver", lw=0.8)
        ax.axvline(1.0, color="silver", lw=0.8)
        ax.set_title(label(algo))
        for (env, kind), d in datasets.items():
            score = result["cell_means"].get(f"{env}-{kind}", {}).get(algo)
            if score is None or d.get("tq") is None:
                continue
            ax.scatter(
                d["saco"],
                d["tq"],
                c=[score],
                cmap="viridis",
                norm=norm,
                marker=markers[kind],
                s=70,
                edgecolors="black",
                linewidths=0.4,
                zorder=10,
            )
        ax.grid(alpha=0.3)
        ax.set_xlim(left=-0.02)
        ax.set_ylim(bottom=min(-0.05, ax.get_ylim()[0]))
    for ax in axes[len(algos) :]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols :]:
        ax.set_xlabel("SACo of dataset")
    for ax in axes[::ncols]:
        ax.set_ylabel("TQ of dataset")
    fig.subplots_adjust(
        left=0.08, right=0.84, bottom=0.6 / height, top=1 - 0.75 / height, wspace=0.12, hspace=0.3
    )
    cax = fig.add_axes((0.87, 0.25, 0.02, 0.5))
    fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), cax=cax).set_label(
        "score (% of online policy)"
    )
    handles = [Line2D([0], [0], color="black", marker=markers[k], lw=0, label=k) for k in kinds]
    fig.legend(handles=handles, loc="upper center", ncol=len(kinds), fontsize="small")
    return atomic_write_bytes(path, figure_png_bytes(fig))


def markdown(result: dict[str, Any], setup: dict[str, Any], png: str | None) -> str:
    kinds, algos = result["kinds"], result["algorithms"]
    b = setup["budget"]
    lines = [
        "# Dataset quality on discrete data: Schweighofer et al. 2022 replicated",
        "",
        f"Environments {', '.join(result['envs'])}; datasets {', '.join(kinds)} "
        f"({b['size']:,} transitions each, data seed {b['data_seed']}; SACo relative to "
        f"`<env>-{b['reference']}`); algorithms {', '.join(label(a) for a in algos)}; "
        f"training seeds {setup['seeds']}.",
        "",
        f"Budget: {b['steps']:,} updates per run, MLP {'x'.join(map(str, b['hidden_dims']))} "
        f"ReLU, Adam {b['learning_rate']:g}, batch {b['batch_size']}, the environment's "
        f"discount, target copies every {TARGET_UPDATE_PERIOD} updates"
        + (f", overrides {b['overrides']}" if b["overrides"] else "")
        + ". The paper: 500k updates, 3x256 SELU, Adam 1e-4, batch 128. "
        f"Score: normalized return of the **final** policy over {b['episodes']} episodes (reset "
        f"seeds {b['eval_seed']}-{b['eval_seed'] + b['episodes'] - 1}); 0 = random policy, "
        "100 = the online DQN's best evaluation (the datasets' `ref_min_score`/`ref_max_score`). "
        "The paper reports the best checkpoint instead.",
        "",
        f"Commit {setup['commit']}; {setup['cpu']}; {setup['runs']} runs, "
        f"{setup['run_seconds'] / 60:.1f} min of training and evaluation on {setup['jobs']} "
        f"job(s).",
        "",
        "## Datasets",
        "",
        "TQ: (mean return of the complete episodes - random) / (online best - random). "
        "SACo: unique (state, action) pairs (100 bins per state dimension) / those of the "
        f"environment's `{b['reference']}` dataset.",
        "",
        "| dataset | transitions | episodes (complete) | return | TQ | SACo |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for d in result["datasets"]:
        lines.append(
            f"| {d['dataset']} | {d['transitions']:,} | {d['episodes']} "
            f"({d['complete_episodes']}) | {_num(d['return_mean'], 1)} | {_num(d['tq'])} | "
            f"{_num(d['saco'])} |"
        )
    lines += [
        "",
        "## Scores",
        "",
        "Mean normalized score over environments and seeds with its 95% stratified-bootstrap "
        "interval (strata: environments, runs: seeds). Last rows: TQ and SACo of each dataset "
        "kind (mean over environments).",
        "",
        "| algorithm | " + " | ".join(kinds) + " | all |",
        "|---|" + "---|" * (len(kinds) + 1),
    ]
    for algo in algos:
        row = result["table"][algo]
        lines.append(
            f"| {label(algo)} | "
            + " | ".join(_fmt(row[k]) for k in kinds)
            + f" | {_fmt(row['all'])} |"
        )
    pk = result["per_kind"]
    lines.append("| *TQ* | " + " | ".join(_num(pk[k]["tq"]) for k in kinds) + " | |")
    lines.append("| *SACo* | " + " | ".join(_num(pk[k]["saco"]) for k in kinds) + " | |")
    g = result["groups"]
    lines += [
        "",
        "## The paper's findings",
        "",
        "Groups, per environment relative to its median over the datasets: high TQ: "
        f"{', '.join(g['tq']['high']) or '-'}; low TQ: {', '.join(g['tq']['low']) or '-'}; "
        f"high SACo: {', '.join(g['saco']['high']) or '-'}; low SACo: "
        f"{', '.join(g['saco']['low']) or '-'}. A group's score is the mean over its datasets "
        "(and over a family's algorithms) with a stratified-bootstrap interval; checks compare "
        "point estimates and say when the intervals overlap.",
        "",
    ]
    for key, tag in (
        ("a_bc_like_high_tq", "(a)"),
        ("b_off_policy_need_saco", "(b)"),
        ("c_constrained_in_between", "(c)"),
    ):
        f = result["findings"][key]
        lines += [f"**{tag} {f['claim']}** — **{f['verdict']}**", ""]
        lines += [f"- {c['text']}" for c in f["checks"]]
        lines.append("")
    lines += [
        "## Correlations",
        "",
        "Spearman rank correlation of each algorithm's score (mean over seeds) with the "
        "dataset's TQ and SACo, across the (environment, dataset) cells.",
        "",
        "| algorithm | rho (TQ) | p | rho (SACo) | p | n |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for algo in algos:
        s = result["spearman"][algo]
        lines.append(
            f"| {label(algo)} | {_num(s['tq']['rho'])} | {_num(s['tq']['p'], 3)} | "
            f"{_num(s['saco']['rho'])} | {_num(s['saco']['p'], 3)} | {s['saco']['n']} |"
        )
    t = result["timing"]
    lines += [
        "",
        "## Run time",
        "",
        "Mean wall seconds per run (training with compilation, and the evaluation): "
        + ", ".join(f"{label(a)} {s:.1f}" for a, s in t["per_algorithm_mean_seconds"].items())
        + f". The full grid (3 environments x 5 datasets x 9 algorithms x 3 seeds) at this "
        f"budget and these rates on one job: about {setup['projected_full_grid_seconds'] / 60:.0f} min, plus "
        "building the datasets.",
    ]
    if png:
        lines += ["", f"![TQ-SACo plane]({png})"]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace, work: Path) -> Path:
    from policyfit.common.versions import machine_info

    dataset_rows = read_rows(work / DATASETS_FILE)
    run_rows = read_rows(work / RUNS_FILE)
    result = analyze(dataset_rows, run_rows, args.envs, args.kinds, args.algorithms, args.reps)
    full_cells = len(ENVS) * len(KINDS)
    setup = {
        "budget": budget_of(args),
        "seeds": args.seeds,
        "jobs": args.jobs,
        "work": str(work),
        "commit": git_commit(),
        "cpu": machine_info().get("cpu", "unknown cpu"),
        "runs": result["timing"]["runs"],
        "run_seconds": result["timing"]["total_seconds"],
        "projected_full_grid_seconds": projection_seconds(
            result["timing"], full_cells, 3, list(ALGORITHMS)
        ),
        "configs": {
            env: {a: algo_config(a, env, args) for a in args.algorithms} for env in args.envs
        },
        "score": "final policy (the paper: max over evaluation checkpoints)",
    }
    name = args.name or f"dataset_quality_discrete_{cpu_kind()}"
    results_dir = Path(args.results_dir)
    png = plot(result, results_dir / f"{name}.png")
    path = write_result(name, {"setup": setup, **result, "runs": run_rows}, directory=results_dir)
    write_text(results_dir / f"{name}.md", markdown(result, setup, png.name))
    log(f"wrote {path}, {name}.md and {png.name}")
    for key, f in result["findings"].items():
        log(f"{key}: {f['verdict']}")
    return path


# ----------------------------------------------------------------------------- main
def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--envs", default=",".join(ENVS), help="environments (comma list)")
    parser.add_argument(
        "--datasets", default=",".join(KINDS), help="dataset kinds; each env's is <env>-<kind>"
    )
    parser.add_argument(
        "--reference",
        default=REFERENCE_KIND,
        help="the kind SACo is relative to (built and measured if not among --datasets)",
    )
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help="registry names")
    parser.add_argument(
        "--seeds", default="3", help="training seeds: a count N (0..N-1) or a comma list"
    )
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="updates per run")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="transitions per dataset")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of every dataset")
    parser.add_argument("--episodes", type=int, default=EVAL_EPISODES, help="evaluation episodes")
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=EVAL_SEED,
        help="reset seed of the first evaluation episode",
    )
    parser.add_argument("--hidden", default=",".join(map(str, DEFAULT_HIDDEN)), help="MLP widths")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="transitions per update")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ALGO.KEY=VALUE",
        help="config override, repeatable (e.g. cql_discrete.cql_alpha=1.0)",
    )
    parser.add_argument(
        "--out", default=str(WORK), help="work directory: datasets, runs file, run directories"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for the runs")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where results go")
    parser.add_argument(
        "--name", default=None, help="result file stem (None: dataset_quality_discrete_<cpu kind>)"
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument(
        "--fast-compile",
        action="store_true",
        default=None,
        help="low XLA optimization (None: $POLICYFIT_FAST_COMPILE)",
    )
    parser.add_argument(
        "--analyze-only", action="store_true", help="rewrite the results from --out, no training"
    )
    args = parser.parse_args(argv)
    args.envs, args.kinds, args.algorithms = (
        _csv(args.envs),
        _csv(args.datasets),
        _csv(args.algorithms),
    )
    args.seeds = parse_seeds(args.seeds)
    args.hidden = tuple(int(h) for h in _csv(args.hidden))
    args.overrides = parse_overrides(args.set)
    return args


def check_args(args: argparse.Namespace) -> None:
    from policyfit.algos.registry import get_algorithm
    from policyfit.errors import ConfigError

    for env in args.envs:
        env_spec(env)  # PolicyfitError naming the unknown environment
    for algo in args.algorithms:
        get_algorithm(algo)
    for field, value in (
        ("steps", args.steps),
        ("size", args.size),
        ("episodes", args.episodes),
        ("jobs", args.jobs),
    ):
        if value < 1:
            raise ConfigError(f"must be >= 1, got {value}", field=field)
    if not args.seeds or not args.kinds:
        raise ConfigError("needs at least one seed and one dataset kind", field="seeds/datasets")


def main(argv: list[str] | None = None) -> None:
    from policyfit.errors import PolicyfitError

    args = parse_args(argv)
    work = Path(args.out)
    try:
        check_args(args)
        if not args.analyze_only:
            work.mkdir(parents=True, exist_ok=True)
            check_budget(work, budget_of(args))
            prepare_datasets(args, work)
            run_grid(args, work)
        report(args, work)
    except PolicyfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
