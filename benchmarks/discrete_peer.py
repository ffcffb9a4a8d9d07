"""Discrete peer check against d3rlpy: same method, same data, same seeds -> similar score? (issue 14)

For each algorithm x dataset x seed, policyfit and d3rlpy train for the same number of updates on
the same transitions (``policyfit.make_dataset(name, size=..., seed=...)``, exported to ``.npz``
once) with the same hyperparameters, and both greedy policies are rolled out on the same episodes
of the dataset's environment (its ``env_id``; reset seeds ``10_000 + 100 * seed + i``). The
datasets are three of the discrete suite by default, ``cartpole-replay``, ``cartpole-noisy`` and
``cartpole-expert`` (``--datasets``: any ``{env}-{random,mixed,replay,noisy,expert}`` of a
classic-control environment, whose gymnasium id both environments can make); the older
``cartpole-random``, ``cartpole-medium``, ``cartpole-expert`` work too. Reported per algorithm:
the final normalized score (0 = the dataset's ``ref_min_score``, the random policy; 100 = its
``ref_max_score``: the online DQN's best evaluation return for the suite, 500 for the older cartpole
names) of each library, its mean over seeds x datasets with a 95% stratified-bootstrap interval
(:func:`policyfit.evaluation.stats.aggregate_scores`, datasets are the strata) and per dataset,
and the updates per second of each library with their ratio, measured in the same run:

* policyfit: ``summary["steps_per_second"]`` of ``policyfit.train`` (the trainer's clock, which
  includes tracing the fused program and loading it from the compilation cache), and the steady
  rate (median of the per-chunk rates after the first chunk, from ``metrics.jsonl``);
* d3rlpy: updates / wall time of its ``fit`` call (replay sampling, updates, no logging).

d3rlpy runs in its own virtual environment (``--d3rlpy-python``, default
``benchmarks/.venv-d3rlpy/bin/python``; ``make bench-venv``), one worker process per algorithm and
dataset, with ``--torch-threads`` threads.

Matched settings (``SHARED`` and ``Q_SHARED`` below; offline Double DQN 64x64, Adam 1e-3 reaches
100 on cartpole-medium in ~3k updates for some seeds, see ``Q_SHARED``): MLP 64x64 ReLU for the
Q-network / policy (d3rlpy's ``VectorEncoderFactory`` + linear head, the same shape), Adam 1e-3
(eps 1e-8 in both), batch 128, gamma 0.9, Double-DQN target, Huber TD loss with threshold 1
(d3rlpy's discrete mean Q-function uses Huber too), hard target copy every 100 updates,
observation standardization from the dataset (d3rlpy: ``StandardObservationScaler``), CQL alpha
0.1 (policyfit's ``cql_alpha``, Schweighofer et al. 2022; d3rlpy's ``alpha``), discrete BC without
d3rlpy's logit penalty (``beta=0``; policyfit has none). What cannot be matched exactly:
initialization (PyTorch's Kaiming-uniform vs flax's LeCun-normal defaults), the standardization's
epsilon (d3rlpy 1e-3 added to the std), and d3rlpy's handling of an episode cut by a time limit
(d3rlpy 2.8.1 drops its last transition, ``transition_count = size - 1`` for an episode that did
not terminate; policyfit keeps it with the logged next observation). Both sample transitions
uniformly with replacement.

Defaults (about 9 minutes for the three algorithms on the three datasets on the shared 2-core CPU,
extrapolated from 6 minutes measured on two datasets; d3rlpy's ~250 updates/s there set the
budget): 20,000 transitions of each dataset (data seed 0), 3,000 updates, 3 seeds, 10 evaluation episodes; ``--quick`` is a ~1-minute smoke run (1 seed,
the first of ``--datasets``, 10,000 transitions, 500 updates, 3 episodes). Results:
``benchmarks/results/discrete_peer_<cpu kind>.{json,md}``.

    python benchmarks/discrete_peer.py [--algos discrete_bc,dqn,cql_discrete] [--seeds 3]
        [--updates 3000] [--size 20000] [--datasets cartpole-replay,cartpole-noisy,cartpole-expert]
    python benchmarks/discrete_peer.py --datasets cartpole-medium,cartpole-expert   # older names
    python benchmarks/discrete_peer.py --quick --datasets cartpole-medium
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
HIDDEN = (64, 64)
# batch 128: Schweighofer et al. 2022's classic-control setting, and half of d3rlpy's per-update
# cost here (its replay sampling is a Python loop over the batch's transitions)
SHARED = {"batch_size": 128, "learning_rate": 1e-3, "hidden_dims": HIDDEN}
# gamma 0.9: offline Double DQN on cartpole-medium (20k, batch 128) measured at 3,000 updates over
# seeds 0-2: gamma 0.9 -> 100, 100, -3; gamma 0.95 -> 100, -3, -3; Adam 3e-4 -> -3 x 3. The check
# needs scores off the floor to compare, not a tuned DQN.
Q_SHARED = {**SHARED, "discount": 0.9, "double": True, "target_update_period": 100}
CONFIGS: dict[str, dict[str, Any]] = {  # policyfit config of each algorithm
    "discrete_bc": dict(SHARED),
    "dqn": dict(Q_SHARED),
    "cql_discrete": {**Q_SHARED, "cql_alpha": 0.1},
}
DEFAULT_ALGOS = "discrete_bc,dqn,cql_discrete"
DEFAULT_DATASETS = "cartpole-replay,cartpole-noisy,cartpole-expert"


def eval_seed(seed: int) -> int:
    """First reset seed of the evaluation episodes of training seed ``seed`` (both libraries)."""
    return 10_000 + 100 * seed


def available_algos(names: list[str]) -> tuple[list[str], list[str]]:
    """``(usable, missing)``: the names policyfit's registry resolves, and the rest."""
    from policyfit.algos.registry import get_algorithm
    from policyfit.errors import PolicyfitError

    usable, missing = [], []
    for name in names:
        try:
            get_algorithm(name)
        except (PolicyfitError, KeyError):
            missing.append(name)
        else:
            usable.append(name)
    return usable, missing


# --------------------------------------------------------------------------- d3rlpy worker
def d3rlpy_config(d3rlpy: Any, algo: str, cfg: dict[str, Any]) -> Any:
    """The d3rlpy config with policyfit's hyperparameters ``cfg`` (see the module docstring)."""
    enc = d3rlpy.models.VectorEncoderFactory(hidden_units=list(cfg["hidden_dims"]))
    common = dict(
        batch_size=cfg["batch_size"],
        learning_rate=cfg["learning_rate"],
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        optim_factory=d3rlpy.optimizers.AdamFactory(),
    )
    if algo == "discrete_bc":
        return d3rlpy.algos.DiscreteBCConfig(encoder_factory=enc, beta=0.0, **common)
    q = dict(
        encoder_factory=enc,
        gamma=cfg["discount"],
        target_update_interval=cfg["target_update_period"],
        **common,
    )
    if algo == "dqn":
        make = d3rlpy.algos.DoubleDQNConfig if cfg["double"] else d3rlpy.algos.DQNConfig
        return make(**q)
    if algo == "cql_discrete":
        return d3rlpy.algos.DiscreteCQLConfig(alpha=cfg["cql_alpha"], **q)
    raise ValueError(f"no d3rlpy counterpart for {algo}")


def d3rlpy_episodes(learner: Any, env_id: str, seed0: int, episodes: int) -> list[float]:
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed0 + i)
        total, done = 0.0, False
        while not done:
            action = int(learner.predict(np.asarray(obs, np.float32)[None])[0])
            obs, reward, term, trunc, _ = env.step(action)
            total += float(reward)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def d3rlpy_worker(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs inside the d3rlpy environment: every seed of one algorithm on one dataset."""
    import d3rlpy
    import torch

    torch.set_num_threads(job["threads"])
    data = np.load(job["data"])
    dataset = d3rlpy.dataset.MDPDataset(
        observations=data["observations"],
        actions=data["actions"].astype(np.int64),
        rewards=data["rewards"].astype(np.float32),
        terminals=data["terminals"].astype(np.float32),
        timeouts=data["timeouts"].astype(np.float32),
        action_space=d3rlpy.ActionSpace.DISCRETE,
        action_size=int(job["n_actions"]),
    )
    rows = []
    for seed in job["seeds"]:
        d3rlpy.seed(seed)
        learner = d3rlpy_config(d3rlpy, job["algo"], job["config"]).create(device="cpu:0")
        t0 = time.perf_counter()
        learner.fit(
            dataset,
            n_steps=job["updates"],
            n_steps_per_epoch=job["updates"],
            show_progress=False,
            save_interval=10**9,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        )
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "library": "d3rlpy",
                "seed": seed,
                "updates": job["updates"],
                "train_seconds": seconds,
                "updates_per_second": job["updates"] / seconds,
                "returns": d3rlpy_episodes(
                    learner, job["env_id"], eval_seed(seed), job["episodes"]
                ),
            }
        )
    return rows


def d3rlpy_versions(python: str) -> dict[str, str]:
    code = (
        "import json, d3rlpy, torch, gymnasium; print(json.dumps({'d3rlpy': d3rlpy.__version__, "
        "'torch': torch.__version__, 'gymnasium': gymnasium.__version__}))"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-500:]}


def run_d3rlpy(python: str, job: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """One worker process; on failure, one error row per seed (the run goes on)."""
    job_path = work / f"job-{job['algo']}-{job['dataset']}.json"
    job_path.write_text(json.dumps(job))
    cmd = [python, str(Path(__file__).resolve()), "--d3rlpy-worker", str(job_path)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        return [{"library": "d3rlpy", "seed": s, "error": tail} for s in job["seeds"]]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- policyfit side
def save_npz(ds: Any, path: Path) -> Path:
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    np.savez(path, **{k: getattr(ds, k) for k in keys})
    return path


def steady_rate(run_dir: Path) -> float | None:
    """Median updates/s of the training chunks after the first (which traces and compiles)."""
    from policyfit.training.rundir import RunDir

    rows, _ = RunDir(run_dir).read_metrics()
    rates = [r["steps_per_second"] for r in rows if "steps_per_second" in r]
    return float(np.median(rates[1:])) if len(rates) > 1 else None


def policyfit_run(
    ds: Any,
    algo: str,
    seed: int,
    updates: int,
    episodes: int,
    work: Path,
    config: dict[str, Any] | None = None,
    fuse: int = 500,
    fast_compile: bool | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Train ``algo`` on ``ds`` with ``CONFIGS[algo]`` (or ``config``); the same row as d3rlpy's.

    The run directory is ``work/<algo>-<name>-s<seed>`` (``name``: the dataset's, by default the
    stem of its source)."""
    import policyfit
    from policyfit.envs.rollout import rollout_returns

    run_dir = work / f"{algo}-{name or Path(str(ds.source)).stem}-s{seed}"
    result = policyfit.train(
        algo,
        ds,
        steps=updates,
        seed=seed,
        config=dict(CONFIGS[algo] if config is None else config),
        out=run_dir,
        eval_every=0,
        eval_episodes=1,
        save_every=0,
        progress=False,
        fuse=min(fuse, updates),
        fast_compile=fast_compile,
    )
    returns, _ = rollout_returns(result.policy, ds.env_id, episodes=episodes, seed=eval_seed(seed))
    return {
        "library": "policyfit",
        "seed": seed,
        "updates": updates,
        "train_seconds": result.summary["train_seconds"],
        "updates_per_second": result.summary["steps_per_second"],
        "steady_updates_per_second": steady_rate(run_dir),
        "returns": [float(r) for r in returns],
    }


# --------------------------------------------------------------------------- the table
def add_scores(rows: list[dict[str, Any]], refs: tuple[float, float]) -> list[dict[str, Any]]:
    """Each row with its ``score``: the normalized mean return of its episodes."""
    from policyfit.common.scores import normalized_score

    return [
        {**r, "score": float(np.mean(normalized_score(r["returns"], refs)))}
        if "returns" in r
        else r
        for r in rows
    ]


def _interval(tables: dict[str, list[np.ndarray]], reps: int) -> dict[str, dict[str, float]]:
    from policyfit.evaluation.stats import aggregate_scores

    agg = aggregate_scores(tables, metrics=("mean",), reps=reps) if tables else {}
    return {lib: v["mean"] for lib, v in agg.items()}


def _rates(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return {"best": float(max(vals)), "mean": float(np.mean(vals))} if vals else None


def summarize(rows: list[dict[str, Any]], reps: int = 2000) -> dict[str, Any]:
    """Per algorithm: each library's mean score with a 95% stratified-bootstrap interval (seeds
    are runs, datasets are tasks), per dataset too, updates/s best/mean, their ratios, and the two
    verdicts: ``scores_agree`` (the two intervals of the mean overlap) and ``speedup_ge_3x``
    (policyfit's best steady rate, else its trainer rate, is at least 3x d3rlpy's best)."""
    out: dict[str, Any] = {}
    for algo in dict.fromkeys(r["algo"] for r in rows):
        ok = [r for r in rows if r["algo"] == algo and "score" in r]
        datasets = list(dict.fromkeys(r["dataset"] for r in ok))
        libs = [lib for lib in ("policyfit", "d3rlpy") if any(r["library"] == lib for r in ok)]

        def scores(lib: str, ds: str, ok=ok) -> np.ndarray:
            return np.array([r["score"] for r in ok if r["library"] == lib and r["dataset"] == ds])

        overall = _interval(
            {lib: [s for d in datasets if (s := scores(lib, d)).size] for lib in libs}, reps
        )
        per_dataset = {
            d: _interval({lib: [scores(lib, d)] for lib in libs if scores(lib, d).size}, reps)
            for d in datasets
        }
        rates = {
            lib: _rates([r for r in ok if r["library"] == lib], "updates_per_second")
            for lib in libs
        }
        steady = _rates([r for r in ok if r["library"] == "policyfit"], "steady_updates_per_second")
        d3 = rates.get("d3rlpy")
        pf = rates.get("policyfit")
        ratio = pf["best"] / d3["best"] if pf and d3 else None
        steady_ratio = steady["best"] / d3["best"] if steady and d3 else None
        agree = None
        if len(overall) == 2:
            a, b = overall["policyfit"], overall["d3rlpy"]
            agree = a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]
        best_ratio = steady_ratio if steady_ratio is not None else ratio
        out[algo] = {
            "mean_score": overall,
            "per_dataset": per_dataset,
            "updates_per_second": rates,
            "policyfit_steady_updates_per_second": steady,
            "speedup_trainer_clock": ratio,
            "speedup_steady": steady_ratio,
            "scores_agree": agree,
            "speedup_ge_3x": None if best_ratio is None else best_ratio >= 3.0,
            "errors": [r["error"] for r in rows if r["algo"] == algo and "error" in r],
        }
    return out


def _ci(v: dict[str, float] | None) -> str:
    from policyfit.evaluation.stats import format_interval

    return "-" if not v else format_interval(v["estimate"], v["ci_low"], v["ci_high"])


def _rate(v: dict[str, float] | None) -> str:
    return "-" if not v else f"{v['best']:,.0f} / {v['mean']:,.0f}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def markdown(summary: dict[str, Any], setup: dict[str, Any]) -> str:
    """The results as a markdown page: the setup line, then one table of scores and throughput."""
    load = ", ".join(f"{x:.2f}" for x in setup["load_average_end"])
    lines = [
        "# Discrete peer check: policyfit vs d3rlpy on discrete data (issue 14)",
        "",
        f"{', '.join(setup['datasets'])} ({setup['size']:,} transitions, data seed "
        f"{setup['data_seed']}); {setup['updates']:,} updates; seeds {setup['seeds']}; "
        f"{setup['episodes']} evaluation episodes per seed; d3rlpy {setup['d3rlpy_versions']}; "
        f"torch threads {setup['torch_threads']}; load average at the end: {load} "
        f"(shared {setup['cpus']}-core machine).",
        "",
        "Scores: normalized (0 = random policy, 100 = the dataset's `ref_max_score`: the online "
        "DQN's best return for the suite, 500 for the older cartpole names), mean over seeds x "
        "datasets with a 95% "
        "stratified-bootstrap interval. Updates/s: best / mean over runs; policyfit's trainer clock "
        "includes tracing each run's program, its steady rate excludes the first chunk.",
        "",
        "| algorithm | policyfit score | d3rlpy score | agree | policyfit upd/s (trainer) | "
        "policyfit upd/s (steady) | d3rlpy upd/s | speedup (trainer) | speedup (steady) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for algo, s in summary.items():
        lines.append(
            f"| {algo} | {_ci(s['mean_score'].get('policyfit'))} | "
            f"{_ci(s['mean_score'].get('d3rlpy'))} | "
            f"{'-' if s['scores_agree'] is None else ('yes' if s['scores_agree'] else 'NO')} | "
            f"{_rate(s['updates_per_second'].get('policyfit'))} | "
            f"{_rate(s['policyfit_steady_updates_per_second'])} | "
            f"{_rate(s['updates_per_second'].get('d3rlpy'))} | "
            f"{_ratio(s['speedup_trainer_clock'])} | {_ratio(s['speedup_steady'])} |"
        )
    lines += ["", "Per dataset (mean over seeds, 95% bootstrap interval):", ""]
    lines += ["| algorithm | dataset | policyfit | d3rlpy |", "|---|---|---|---|"]
    for algo, s in summary.items():
        for d, v in s["per_dataset"].items():
            lines.append(f"| {algo} | {d} | {_ci(v.get('policyfit'))} | {_ci(v.get('d3rlpy'))} |")
    errors = [f"- {algo}: {e}" for algo, s in summary.items() for e in s["errors"]]
    if errors:
        lines += ["", "Errors:", "", *errors]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default=DEFAULT_ALGOS)
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=3_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="~1-minute smoke run")
    parser.add_argument("--out", default=None, help="default: discrete_peer_<cpu kind>")
    parser.add_argument("--d3rlpy-python", default=str(HERE / ".venv-d3rlpy" / "bin" / "python"))
    parser.add_argument("--d3rlpy-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.updates, args.episodes = 1, 500, 3
        args.datasets, args.size = args.datasets.split(",")[0], 10_000
    return args


def run_all(args: argparse.Namespace, algos: list[str], work: Path, have_d3: bool) -> list[dict]:
    import policyfit

    rows: list[dict[str, Any]] = []
    seeds = list(range(args.seeds))
    for name in args.datasets.split(","):
        ds = policyfit.make_dataset(name, size=args.size, seed=args.data_seed, progress=False)
        data = save_npz(ds, work / f"{name}.npz")
        refs = (float(ds.metadata["ref_min_score"]), float(ds.metadata["ref_max_score"]))
        for algo in algos:
            new = []
            if have_d3:
                job = {
                    "algo": algo,
                    "dataset": name,
                    "data": str(data),
                    "n_actions": int(ds.action_dim),
                    "env_id": ds.env_id,
                    "seeds": seeds,
                    "updates": args.updates,
                    "episodes": args.episodes,
                    "threads": args.torch_threads,
                    "config": CONFIGS[algo],
                }
                new += run_d3rlpy(args.d3rlpy_python, job, work)
            for seed in seeds:
                new.append(
                    policyfit_run(ds, algo, seed, args.updates, args.episodes, work, name=name)
                )
            new = [{**r, "algo": algo, "dataset": name, "env_id": ds.env_id} for r in new]
            new = add_scores(new, refs)
            for r in new:
                print(
                    f"{algo:13s} {name:16s} s{r['seed']} {r['library']:9s} "
                    + (
                        f"score {r['score']:6.1f}  {r['updates_per_second']:8.0f} upd/s"
                        if "score" in r
                        else f"error: {r['error']}"
                    ),
                    flush=True,
                )
            rows += new
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.d3rlpy_worker:
        print(json.dumps(d3rlpy_worker(json.loads(Path(args.d3rlpy_worker).read_text()))))
        return
    sys.path.insert(0, str(HERE))
    from common import cpu_kind, write_result, write_text
    from policyfit.errors import PolicyfitError

    algos, missing = available_algos(args.algos.split(","))
    if missing:
        print(f"not in policyfit's registry, skipped: {', '.join(missing)}", flush=True)
    have_d3 = Path(args.d3rlpy_python).exists()
    if not have_d3:
        print(f"no d3rlpy environment at {args.d3rlpy_python}: policyfit side only", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pf-discrete-peer-"))
    t0 = time.perf_counter()
    try:
        rows = run_all(args, algos, work, have_d3)
    except PolicyfitError as exc:  # e.g. a dataset name that is not built in (yet)
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    summary = summarize(rows)
    setup = {
        "env_ids": {r["dataset"]: r["env_id"] for r in rows},
        "datasets": args.datasets.split(","),
        "size": args.size,
        "data_seed": args.data_seed,
        "seeds": list(range(args.seeds)),
        "eval_seeds": "10000 + 100 * seed + episode",
        "updates": args.updates,
        "episodes": args.episodes,
        "configs": {a: CONFIGS[a] for a in algos},
        "skipped_algos": missing,
        "torch_threads": args.torch_threads,
        "d3rlpy_versions": d3rlpy_versions(args.d3rlpy_python) if have_d3 else None,
        "cpus": os.cpu_count(),
        "load_average_end": list(os.getloadavg()),
        "wall_seconds": time.perf_counter() - t0,
        "quick": args.quick,
    }
    name = args.out or f"discrete_peer_{cpu_kind()}"
    path = write_result(name, {"setup": setup, "summary": summary, "rows": rows})
    write_text(HERE / "results" / f"{name}.md", markdown(summary, setup))
    print(markdown(summary, setup))
    print(f"wrote {path} ({setup['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
