"""Parity with d3rlpy: same method, same data, same budget, same evaluation -> same score? (issue 19)

The correctness check of policyfit's continuous-control algorithms against an independent
implementation, d3rlpy 2.8.1 (the discrete counterpart is ``benchmarks/discrete_peer.py``). For each
algorithm x dataset x seed both libraries train ``--steps`` updates (default 100,000) on the same
transitions and both greedy policies are rolled out by the same code:

* data: the suite's ``hopper-medium``, ``halfcheetah-medium`` and ``walker2d-medium-replay``
  (``policyfit.envs.datasets.load_dataset(name)``), written once each to
  ``benchmarks/work/parity/<name>.npz`` (:func:`policyfit.data.io.save_dataset`, the
  :func:`dt_peer.export_dataset` of ``dt_peer.py``) that both sides read: policyfit with
  :func:`policyfit.load_dataset`, d3rlpy as an ``MDPDataset`` built from the arrays
  (:func:`dt_peer.d3rlpy_dataset`: episodes cut at ``terminals | timeouts``);
* evaluation: d3rlpy's greedy policy is exported with ``save_policy`` (TorchScript, its
  observation scaler inside), loaded in policyfit's venv with ``torch.jit.load`` and wrapped as a
  deterministic ``obs -> action`` function; policyfit's is its run directory. Both go through
  :func:`policyfit.evaluation.evaluate` (the rollouts of :func:`policyfit.envs.rollout.rollout_returns`):
  the dataset's gymnasium environment (``Hopper-v5``, ...), ``--episodes`` episodes (default 10)
  with reset seeds ``10_000 + 100 * seed + i``, normalized with the dataset's reference returns
  (``ref_min_score``, ``ref_max_score``);
* reported per algorithm x dataset: each library's final normalized score, mean over seeds with a
  95% bootstrap interval (:func:`policyfit.evaluation.stats.aggregate_scores`), whether the two
  intervals overlap, and the wall-clock of each: training (time in the update loop, the whole
  training job) and evaluation separately, updates/s (and the steady rate: policyfit's median
  chunk rate after the first chunk, which compiles; d3rlpy's rate between its first and last
  update).

Hyperparameters: policyfit's defaults (the papers' / CORL's, ``src/policyfit/algos/iql.py``,
``td3bc.py``, ``cql.py``), read from its config classes at run time, and the d3rlpy config that
matches them (:data:`FIELD_MAP` and :func:`d3rlpy_config`; checked against d3rlpy 2.8.1's
``algos/qlearning/{iql,td3_plus_bc,cql}.py`` and ``torch/*_impl.py``):

* all: MLP 256-256 ReLU for every network (CQL 256-256-256; d3rlpy ``VectorEncoderFactory`` for
  the actor, critic and value encoders, each with a linear head), Adam (betas 0.9/0.999, eps 1e-8),
  batch 256, gamma 0.99, Polyak tau 0.005, two critics, observations standardized with the data's
  mean and std + 1e-3 (d3rlpy ``StandardObservationScaler``, eps 1e-3), uniform sampling of
  transitions with replacement, actions already in [-1, 1] (no action scaler on either side);
* IQL: actor, critic and value lr 3e-4 (d3rlpy has one critic optimizer for Q and V at
  ``critic_learning_rate``: the same thing, their losses share no parameters), expectile 0.7,
  inverse temperature 3 (``weight_temp``), weights clipped at 100, cosine decay of the actor lr to
  0 over the run (d3rlpy: ``CosineAnnealingLRFactory(T_max=steps)`` on the actor's Adam; optax's
  ``cosine_decay_schedule(lr, steps)``: the same curve), tanh-mean Gaussian actor with a
  state-independent log-std in [-5, 2]. **Rewards**: policyfit's IQL default
  ``reward_normalization="per_step"`` multiplies rewards by ``1 / mean|r|`` of the dataset
  (:func:`policyfit.algos.iql.reward_scale`); d3rlpy scales nothing by default, so it gets
  ``MultiplyRewardScaler(1 / mean|r|)`` with the factor computed by policyfit's own function on
  the same data (hopper-medium 0.330, halfcheetah-medium 0.346, walker2d-medium-replay 0.464): both
  sides train on the same rewards, the npz keeps the raw ones;
* TD3+BC: actor and critic lr 3e-4, alpha 2.5, target-policy noise 0.2 clipped at 0.5, actor and
  target updates every 2 critic updates (from the first), deterministic tanh actor, critic loss
  summed over the two critics, ``lambda = alpha / mean|Q|`` from the first critic; rewards raw;
* CQL (``--algos cql``; CORL's settings, policyfit's defaults): actor lr 3e-5, critic lr 3e-4,
  SAC temperature learned at the actor's lr from 1 (d3rlpy ``temp_learning_rate``,
  ``initial_temperature=1``), target entropy -|A|, fixed conservative weight 10 (d3rlpy
  ``conservative_weight=10``, ``initial_alpha=1``, ``alpha_learning_rate=0``: no Lagrange tuning,
  ``alpha_threshold=0``, a constant that moves no gradient), 10 sampled actions per proposal with
  importance sampling (both), no entropy in the target (``soft_q_backup=False``), no BC warm-up;
  rewards raw. About 20x slower than IQL/TD3+BC per update on either side: run it at the budget the
  machine allows (``--steps``), or on a GPU (``--d3rlpy-device cuda:0``).

What cannot be matched exactly (:data:`DIFFERENCES`; also in the markdown): initialization
(flax orthogonal sqrt(2) hidden layers, 1e-2 policy heads, 1.0 value heads; PyTorch's
Kaiming-uniform), IQL's log-std parameterization (policyfit: a free parameter clipped to [-5, 2],
initially 0; d3rlpy: ``-5 + 7 * sigmoid(p)``, initially -1.5), IQL's advantage for the actor
(policyfit: from the value net before this update's value step, as CORL; d3rlpy: after it), IQL's
TD loss averaged over the two critics (d3rlpy sums them; Adam makes the factor 2 moot), the last
transition of each episode cut by a time limit (d3rlpy's episodes have no next observation for it
and drop it: 1 of 1M transitions in hopper-medium, 1,000 of 1M in halfcheetah-medium, 24 of 210k in
walker2d-medium-replay; policyfit trains on it with the logged next observation), the
standardization statistics (d3rlpy's over the transitions it keeps), random number streams, and for
CQL the update order (policyfit: actor, temperature, critics; d3rlpy: critics, temperature, actor),
the temperature's gradient (policyfit ``log_alpha * (...)``, d3rlpy ``alpha * (...)``) and the
actor's log-std range (policyfit [-5, 2], d3rlpy [-20, 2]).

Threads: d3rlpy runs in its own venv (``--d3rlpy-python``, default
``benchmarks/.venv-d3rlpy/bin/python``; ``make bench-venv``) with ``--torch-threads`` (default 1)
torch threads, one worker process per run; XLA runs its own thread pool over every core.

Resumable: every finished (library, algorithm, dataset, seed) is written at once (atomically)
into ``benchmarks/results/<name>.json`` (``--name``, default ``parity_<cpu kind>``) and a rerun
skips it; a policyfit run is a run directory ``benchmarks/work/<name>/policyfit-...`` checkpointed
every 10,000 updates and resumed if it was cut (:func:`common.train_or_resume`); a d3rlpy run is
atomic (its TorchScript policy and record under ``benchmarks/work/<name>/`` are written at its end;
a cut run is redone, a finished but unevaluated one is only evaluated). Seeds are the outer loop,
so a budget cut short still leaves every cell with its first seeds. ``--table-only`` rewrites the
markdown and the plot from the JSON. Outputs: ``<name>.{json,md,png}``.

Two processes, one per library (``--libraries policyfit`` and ``--libraries d3rlpy``), may share the
results file: a row is added under an exclusive lock on ``<name>.json.lock``. d3rlpy's worker uses
one core; each row keeps the load average at its end, and the times are then those of a shared
machine. On a 2-core machine (session 16, Intel Xeon) policyfit alone ran at 170-190 updates/s
(about 9.5 min per 100k-update run) where beside a d3rlpy worker (seeds 0, 1) its steady rate was
86-118; d3rlpy's TD3+BC ran at 40 updates/s either beside policyfit or as one of two d3rlpy
processes split by ``--algos``, each pinned to its own core (``taskset -c 0 ... --algos iql`` and
``taskset -c 1 ... --algos td3bc``). So run policyfit's share alone, then d3rlpy's as such a pinned
pair.

    python benchmarks/parity.py                                   # 100k updates, seeds 0,1,2
    python benchmarks/parity.py --algos cql --steps 20000         # CQL at a smaller budget
    python benchmarks/parity.py --table-only
    python benchmarks/parity.py --steps 2000 --seeds 0 --datasets hopper-medium --episodes 2 \\
        --name parity_smoke                                       # smoke run, not committed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "work" / "parity"
ALGOS = ("iql", "td3bc", "cql")
LIBRARIES = ("policyfit", "d3rlpy")
DEFAULT_ALGOS = "iql,td3bc"
DEFAULT_DATASETS = "hopper-medium,halfcheetah-medium,walker2d-medium-replay"
SAVE_EVERY = 10_000  # policyfit checkpoint cadence: a cut run loses at most this many updates

#: ``(policyfit config field, d3rlpy config field)`` pairs copied one to one; the rest of the
#: mapping (encoders, scalers, the IQL schedule, CQL's fixed weights) is in :func:`d3rlpy_config`.
FIELD_MAP: dict[str, list[tuple[str, str]]] = {
    "iql": [
        ("actor_lr", "actor_learning_rate"),
        ("critic_lr", "critic_learning_rate"),
        ("n_critics", "n_critics"),
        ("expectile", "expectile"),
        ("temperature", "weight_temp"),
        ("max_weight", "max_weight"),
    ],
    "td3bc": [
        ("actor_lr", "actor_learning_rate"),
        ("critic_lr", "critic_learning_rate"),
        ("alpha", "alpha"),
        ("policy_noise", "target_smoothing_sigma"),
        ("noise_clip", "target_smoothing_clip"),
        ("policy_freq", "update_actor_interval"),
    ],
    "cql": [
        ("actor_lr", "actor_learning_rate"),
        ("critic_lr", "critic_learning_rate"),
        ("actor_lr", "temp_learning_rate"),
        ("cql_alpha", "conservative_weight"),
        ("cql_n_actions", "n_action_samples"),
        ("backup_entropy", "soft_q_backup"),
    ],
}
COMMON_FIELDS = [("batch_size", "batch_size"), ("discount", "gamma"), ("tau", "tau")]

#: Values of policyfit config fields that the d3rlpy mapping assumes (other values have no d3rlpy
#: counterpart: the run refuses to start rather than compare different methods).
ASSUMED: dict[str, dict[str, Any]] = {
    "iql": {
        "deterministic_actor": False,
        "value_quantile": None,
        "huber_delta": None,
        "target_clip": None,
        "normalize_with_next": False,
    },
    "td3bc": {},
    "cql": {
        "lagrange": False,
        "cql_importance_sample": True,
        "cql_temperature": 1.0,
        "cql_clip_diff_min": -math.inf,
        "cql_clip_diff_max": math.inf,
        "bc_steps": 0,
        "auto_entropy": True,
        "alpha_multiplier": 1.0,
    },
}

DIFFERENCES = [
    "initialization: flax orthogonal (sqrt 2 hidden layers, 1e-2 policy heads, 1.0 value heads) "
    "vs PyTorch's Kaiming-uniform defaults",
    "IQL log-std: policyfit a free parameter clipped to [-5, 2], initially 0; d3rlpy "
    "-5 + 7 sigmoid(p), initially -1.5",
    "IQL actor advantage: policyfit from the value net before this update's value step (CORL); "
    "d3rlpy after it",
    "IQL TD loss: mean over the two critics (policyfit) vs sum (d3rlpy); Adam makes the factor 2 "
    "moot",
    "time-limit cuts: d3rlpy drops the last transition of each episode cut by a time limit (no "
    "next observation in its episodes): 1 of 1M in hopper-medium, 1,000 of 1M in "
    "halfcheetah-medium, 24 of 210k in walker2d-medium-replay; policyfit trains on it with the "
    "logged next observation",
    "observation statistics: d3rlpy's over the transitions it keeps, policyfit's over all",
    "CQL: update order (policyfit actor, temperature, critics; d3rlpy critics, temperature, actor), "
    "temperature gradient (log_alpha * (...) vs alpha * (...)), actor log-std range ([-5, 2] vs "
    "[-20, 2])",
    "random number streams (sampling, noise, initialization)",
]


def eval_seed(seed: int) -> int:
    """First reset seed of the evaluation episodes of training seed ``seed`` (both libraries)."""
    return 10_000 + 100 * seed


def run_key(row: dict[str, Any]) -> tuple:
    """What makes two rows the same run: library, algorithm, dataset, seed, budget, episodes."""
    return (row["library"], row["algo"], row["dataset"], row["seed"], row["steps"], row["episodes"])


def run_name(library: str, algo: str, dataset: str, seed: int, steps: int) -> str:
    return f"{library}-{algo}-{dataset}-s{seed}-{steps}"


# --------------------------------------------------------------------------- configs
def policyfit_config(algo: str, steps: int) -> dict[str, Any]:
    """policyfit's default config of ``algo`` as the trainer builds it for ``steps`` updates
    (fields named ``schedule_steps`` follow the budget)."""
    from policyfit.algos.registry import get_algorithm

    cfg = get_algorithm(algo).Config().to_dict()
    if "schedule_steps" in cfg:
        cfg["schedule_steps"] = steps
    return cfg


def unmatched(algo: str, cfg: dict[str, Any]) -> list[str]:
    """The settings of ``cfg`` the d3rlpy mapping cannot express (empty: it matches)."""
    out = [
        f"{k}={cfg.get(k)!r} (the mapping assumes {v!r})"
        for k, v in ASSUMED[algo].items()
        if cfg.get(k) != v
    ]
    if algo == "iql" and cfg["value_lr"] != cfg["critic_lr"]:
        out.append("value_lr != critic_lr (d3rlpy trains Q and V with one optimizer)")
    return out


def d3rlpy_config(
    d3rlpy: Any, algo: str, cfg: dict[str, Any], reward_scale: float | None = None
) -> Any:
    """The d3rlpy config matching policyfit's ``cfg`` (see the module docstring)."""
    optim = d3rlpy.optimizers

    def encoder() -> Any:
        return d3rlpy.models.VectorEncoderFactory(hidden_units=list(cfg["hidden_dims"]))

    kwargs: dict[str, Any] = {d3: cfg[pf] for pf, d3 in COMMON_FIELDS + FIELD_MAP[algo]}
    kwargs.update(
        actor_encoder_factory=encoder(),
        critic_encoder_factory=encoder(),
        critic_optim_factory=optim.AdamFactory(),
        observation_scaler=(
            d3rlpy.preprocessing.StandardObservationScaler()
            if cfg["normalize_observations"]
            else None
        ),
    )
    if reward_scale is not None and reward_scale != 1.0:
        kwargs["reward_scaler"] = d3rlpy.preprocessing.MultiplyRewardScaler(reward_scale)
    if algo == "iql":
        schedule = (
            optim.CosineAnnealingLRFactory(T_max=int(cfg["schedule_steps"]))
            if cfg["cosine_schedule"]
            else None
        )
        return d3rlpy.algos.IQLConfig(
            value_encoder_factory=encoder(),
            actor_optim_factory=optim.AdamFactory(lr_scheduler_factory=schedule),
            **kwargs,
        )
    if algo == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            actor_optim_factory=optim.AdamFactory(), n_critics=2, **kwargs
        )
    if algo == "cql":
        return d3rlpy.algos.CQLConfig(
            actor_optim_factory=optim.AdamFactory(),
            temp_optim_factory=optim.AdamFactory(),
            n_critics=2,
            initial_temperature=1.0,
            initial_alpha=1.0,
            alpha_learning_rate=0.0,
            alpha_threshold=0.0,
            max_q_backup=False,
            **kwargs,
        )
    raise ValueError(f"no d3rlpy counterpart for {algo}")


# --------------------------------------------------------------------------- d3rlpy worker
def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """The worker's own atomic write (it runs in d3rlpy's venv, without policyfit)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def d3rlpy_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs inside d3rlpy's venv: one run; writes the TorchScript policy, then its record."""
    t_start = time.perf_counter()
    import d3rlpy
    import torch
    from dt_peer import d3rlpy_dataset

    torch.set_num_threads(int(job["threads"]))
    t0 = time.perf_counter()
    dataset = d3rlpy_dataset(d3rlpy, job["data"])
    d3rlpy.seed(int(job["seed"]))
    config = d3rlpy_config(d3rlpy, job["algo"], job["config"], job.get("reward_scale"))
    learner = config.create(device=job["device"])
    setup_seconds = time.perf_counter() - t0
    stamps: list[float] = []

    def callback(algo: Any, epoch: int, step: int) -> None:
        stamps.append(time.perf_counter())

    steps = int(job["steps"])
    t0 = time.perf_counter()
    learner.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        show_progress=False,
        save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        callback=callback,
    )
    train_seconds = time.perf_counter() - t0
    policy = Path(job["policy"])
    tmp = policy.with_name(policy.stem + ".tmp.pt")  # ".pt": save_policy writes TorchScript
    learner.save_policy(str(tmp))
    os.replace(tmp, policy)
    record = {
        "transitions": int(dataset.transition_count),
        "setup_seconds": setup_seconds,
        "train_seconds": train_seconds,
        "updates_per_second": steps / train_seconds,
        "steady_updates_per_second": (
            (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
        ),
        "train_wall_seconds": time.perf_counter() - t_start,
        "torch_threads": torch.get_num_threads(),
        "device": job["device"],
        "d3rlpy": d3rlpy.__version__,
        "torch": torch.__version__,
        "d3rlpy_config": json.loads(config.serialize()),
    }
    _write_json_atomic(Path(job["record"]), record)
    return record


def d3rlpy_versions(python: str) -> dict[str, str]:
    from discrete_peer import d3rlpy_versions as versions

    return versions(python)


def run_d3rlpy_job(python: str, job: dict[str, Any]) -> dict[str, Any]:
    """The worker's record, from an earlier finished run if there is one; ``{"error": ...}``."""
    record_path = Path(job["record"])
    if record_path.is_file() and Path(job["policy"]).is_file():
        return {**json.loads(record_path.read_text()), "reused": True}
    job_path = record_path.with_name(record_path.stem + ".job.json")
    job_path.parent.mkdir(parents=True, exist_ok=True)
    job_path.write_text(json.dumps(job))
    cmd = [python, str(Path(__file__).resolve()), "--d3rlpy-worker", str(job_path)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # the worker's output goes to a file, not a pipe: a worker whose parent was stopped then
    # finishes its run and writes its record (with a pipe it died of EPIPE), and a rerun reuses it
    log_path = record_path.with_name(record_path.stem + ".log")
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    job_path.unlink(missing_ok=True)
    if proc.returncode != 0 or not record_path.is_file():
        lines = log_path.read_text().strip().splitlines()
        return {"error": lines[-1] if lines else f"worker exit {proc.returncode}"}
    return json.loads(record_path.read_text())


# --------------------------------------------------------------------------- evaluation
def torchscript_policy(path: Path, threads: int) -> Any:
    """d3rlpy's exported greedy policy as a deterministic ``obs [B, d] -> actions`` function."""
    import torch

    torch.set_num_threads(threads)
    module = torch.jit.load(str(path), map_location="cpu")
    module.eval()

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(np.asarray(obs, np.float32))).numpy()

    return act


def evaluate_policy(policy: Any, env_id: str, seed: int, episodes: int, refs: tuple) -> dict:
    """The one evaluation both libraries get: :func:`policyfit.evaluation.evaluate`."""
    from policyfit.evaluation.rollout import evaluate

    t0 = time.perf_counter()
    ev = evaluate(policy, env_id, episodes=episodes, seed=eval_seed(seed), ref_scores=refs)
    return {
        "score": ev["normalized_score"],
        "return_mean": ev["return_mean"],
        "returns": ev["returns"],
        "eval_seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- one run each
class Data:
    """One dataset's npz (written once), loaded lazily by the policyfit side."""

    def __init__(self, name: str):
        from dt_peer import export_dataset

        self.name = name
        self.path = export_dataset(name, DATA_DIR / f"{name}.npz")
        self._ds: Any = None

    @property
    def ds(self) -> Any:
        if self._ds is None:
            from policyfit.envs.datasets import load_dataset

            self._ds = load_dataset(self.path)
        return self._ds

    @property
    def refs(self) -> tuple[float, float]:
        meta = self.ds.metadata
        return float(meta["ref_min_score"]), float(meta["ref_max_score"])

    def reward_scale(self, cfg: dict[str, Any]) -> float:
        """The factor policyfit's IQL multiplies this data's rewards by (d3rlpy gets it too)."""
        from policyfit.algos.base import DatasetSpec
        from policyfit.algos.iql import reward_scale

        return reward_scale(DatasetSpec.from_dataset(self.ds), cfg["reward_normalization"])


def policyfit_run(
    algo: str,
    data: Data,
    seed: int,
    steps: int,
    episodes: int,
    work: Path,
    config: dict[str, Any] | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    """Train (or resume, or read) the policyfit run, then evaluate its policy.

    ``config`` overrides policyfit's defaults (``init_ablation.py``'s variants; the run
    directory's name then ends in ``suffix``)."""
    from discrete_peer import steady_rate

    from common import train_or_resume
    from policyfit.training.rundir import RunDir

    run_dir = work / (run_name("policyfit", algo, data.name, seed, steps) + suffix)
    t0 = time.perf_counter()
    summary = train_or_resume(
        algo,
        lambda: data.ds,
        run_dir,
        steps,
        seed,
        eval_every=0,
        save_every=min(SAVE_EVERY, steps),
        eval_episodes=1,  # the trainer's own final check; the score is evaluate_policy's
        config=config,
    )
    session_seconds = time.perf_counter() - t0
    ev = evaluate_policy(str(run_dir), data.ds.env_id, seed, episodes, data.refs)
    return {
        "train_seconds": summary["train_seconds"],
        "train_wall_seconds": summary["wall_seconds"],
        "train_session_seconds": session_seconds,
        "updates_per_second": steps / summary["train_seconds"],
        "steady_updates_per_second": steady_rate(run_dir),
        "resumed_from_step": summary.get("resumed_from_step"),
        "device": summary.get("device"),
        "config": RunDir(run_dir).read_config().get("config"),
        "run_dir": str(run_dir.relative_to(HERE.parent)),
        **ev,
    }


def d3rlpy_run(
    algo: str, data: Data, seed: int, steps: int, episodes: int, work: Path, args: Any
) -> dict[str, Any]:
    """Train the d3rlpy run in its venv (or reuse a finished one), then evaluate its policy."""
    cfg = policyfit_config(algo, steps)
    name = run_name("d3rlpy", algo, data.name, seed, steps)
    job = {
        "algo": algo,
        "data": str(data.path),
        "seed": seed,
        "steps": steps,
        "config": cfg,
        "reward_scale": data.reward_scale(cfg) if algo == "iql" else None,
        "threads": args.torch_threads,
        "device": args.d3rlpy_device,
        "policy": str(work / f"{name}.pt"),
        "record": str(work / f"{name}.json"),
    }
    rec = run_d3rlpy_job(args.d3rlpy_python, job)
    if "error" in rec:
        return rec
    policy = torchscript_policy(Path(job["policy"]), args.torch_threads)
    ev = evaluate_policy(policy, data.ds.env_id, seed, episodes, data.refs)
    return {**rec, "reward_scale": job["reward_scale"], **ev}


# --------------------------------------------------------------------------- results file
def result_path(name: str) -> Path:
    from common import RESULTS_DIR

    return RESULTS_DIR / f"{name}.json"


def read_rows(name: str) -> list[dict[str, Any]]:
    path = result_path(name)
    return json.loads(path.read_text()).get("runs", []) if path.is_file() else []


def record_row(name: str, row: dict[str, Any], setup: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``row`` to ``results/<name>.json`` (replacing the same run's older row), written
    atomically with a fresh summary and markdown; returns every row."""
    import fcntl

    lock = result_path(name).with_suffix(".json.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:  # another parity process (the other library) may write too
        fcntl.flock(handle, fcntl.LOCK_EX)
        rows = [r for r in read_rows(name) if run_key(r) != run_key(row)] + [row]
        write_all(name, rows, setup, plot_too=False)
    return rows


def write_all(
    name: str, rows: list[dict[str, Any]], setup: dict[str, Any], plot_too: bool = True
) -> Path:
    from common import RESULTS_DIR, write_result, write_text

    summary = summarize(rows, setup["steps"], setup["episodes"])
    setup = {**setup, "load_average": list(os.getloadavg())}
    for algo in summary["cells"]:  # rows of algorithms not in this invocation's --algos
        setup["configs"] = {algo: policyfit_config(algo, setup["steps"]), **setup["configs"]}
        setup["field_map"] = {algo: COMMON_FIELDS + FIELD_MAP[algo], **setup["field_map"]}
    path = write_result(name, {"setup": setup, "summary": summary, "runs": rows})
    record = json.loads(path.read_text())
    write_text(RESULTS_DIR / f"{name}.md", markdown(record, name))
    if plot_too and summary["cells"]:
        plot(summary, RESULTS_DIR / f"{name}.png")
    return path


# --------------------------------------------------------------------------- summary
def _cell(rows: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    from policyfit.evaluation.stats import aggregate_scores

    scores = np.array([r["score"] for r in rows], dtype=np.float64)
    ci = aggregate_scores({"x": [scores]}, metrics=("mean",), reps=reps)["x"]["mean"]

    def mean_of(key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return float(np.mean(vals)) if vals else None

    return {
        "n": len(scores),
        "seeds": [r["seed"] for r in rows],
        "scores": scores.tolist(),
        "mean": float(scores.mean()),
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        **{
            f"{k}_mean": mean_of(k)
            for k in (
                "train_seconds",
                "train_wall_seconds",
                "updates_per_second",
                "steady_updates_per_second",
                "eval_seconds",
            )
        },
    }


def verdict(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    """``overlap`` / ``separated`` of two cells' 95% intervals (None when one is missing)."""
    if a is None or b is None:
        return None
    return "overlap" if a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"] else "separated"


def summarize(
    rows: list[dict[str, Any]], steps: int, episodes: int, reps: int = 2000
) -> dict[str, Any]:
    """Per algorithm x dataset: each library's cell (:func:`_cell`) and the verdict; per
    algorithm, each library's mean over the datasets both have (stratified bootstrap)."""
    from policyfit.evaluation.stats import aggregate_scores

    ok = [
        r
        for r in rows
        if r.get("score") is not None and r["steps"] == steps and r["episodes"] == episodes
    ]
    cells: dict[str, dict[str, Any]] = {}
    overall: dict[str, Any] = {}
    for algo in [a for a in ALGOS if any(r["algo"] == a for r in ok)]:
        mine = [r for r in ok if r["algo"] == algo]
        datasets = list(dict.fromkeys(r["dataset"] for r in mine))
        by_ds: dict[str, Any] = {}
        for d in datasets:
            cell: dict[str, Any] = {}
            for lib in LIBRARIES:
                lib_rows = sorted(
                    (r for r in mine if r["dataset"] == d and r["library"] == lib),
                    key=lambda r: r["seed"],
                )
                if lib_rows:
                    cell[lib] = _cell(lib_rows, reps)
            cell["verdict"] = verdict(cell.get("policyfit"), cell.get("d3rlpy"))
            cell["min_seeds"] = min((cell[lib]["n"] for lib in LIBRARIES if lib in cell), default=0)
            by_ds[d] = cell
        cells[algo] = by_ds
        both = [d for d in datasets if all(lib in by_ds[d] for lib in LIBRARIES)]
        if both:
            table = {lib: [np.array(by_ds[d][lib]["scores"]) for d in both] for lib in LIBRARIES}
            agg = {
                lib: v["mean"]
                for lib, v in aggregate_scores(table, metrics=("mean",), reps=reps).items()
            }
            overall[algo] = {
                "datasets": both,
                **agg,
                "verdict": verdict(agg["policyfit"], agg["d3rlpy"]),
                "min_seeds": min(by_ds[d]["min_seeds"] for d in both),
            }
    errors = [
        f"{r['library']} {r['algo']} {r['dataset']} s{r['seed']}: {r['error']}"
        for r in rows
        if "error" in r and r["steps"] == steps
    ]
    return {
        "steps": steps,
        "episodes": episodes,
        "cells": cells,
        "overall": overall,
        "errors": errors,
    }


# --------------------------------------------------------------------------- markdown, plot
def _ci(v: dict[str, Any] | None) -> str:
    from policyfit.evaluation.stats import format_interval

    if not v:
        return "-"
    return f"{format_interval(v['mean'], v['ci_low'], v['ci_high'])} (n={v['n']})"


def _time(v: dict[str, Any] | None) -> str:
    if not v:
        return "-"
    steady = v.get("steady_updates_per_second_mean")
    return (
        f"{v['train_wall_seconds_mean'] / 60:.1f} min, {v['updates_per_second_mean']:,.0f}"
        + (f" ({steady:,.0f})" if steady else "")
        + f" upd/s; eval {v['eval_seconds_mean']:.0f} s"
    )


def _verdict_text(cell: dict[str, Any]) -> str:
    v = cell.get("verdict")
    if v is None:
        return "-"
    if cell["min_seeds"] < 3:  # the bootstrap interval of fewer seeds is no interval
        return "n<3"
    return "overlap" if v == "overlap" else "**SEPARATED**"


def markdown(record: dict[str, Any], name: str) -> str:
    setup, summary = record["setup"], record["summary"]
    versions = record["versions"]
    d3v = sorted({f"{r['d3rlpy']} (torch {r['torch']})" for r in record["runs"] if r.get("d3rlpy")})
    load = ", ".join(f"{x:.2f}" for x in setup["load_average"])
    lines = [
        "# Parity: policyfit vs d3rlpy, same method, same data, same evaluation (issue 19)",
        "",
        f"{summary['steps']:,} updates per run; seeds {setup['seeds']}; {summary['episodes']} "
        f"evaluation episodes per run (reset seeds 10000 + 100 * seed + i, both policies through "
        f"`policyfit.evaluation.evaluate`). Machine: {record['machine']['cpu']} "
        f"({record['machine']['cpu_count']} cores, shared); load average at the last write: "
        f"{load}. Commit {record['commit']}; jax {versions.get('jax')}; d3rlpy "
        f"{', '.join(d3v) or '-'} ({setup['torch_threads']} torch thread(s), device "
        f"{setup['d3rlpy_device']}); torch in policyfit's venv "
        f"{setup.get('torch_main', '?')} (evaluation of d3rlpy's TorchScript policy only).",
        "",
        "Cells: final normalized score, mean [95% bootstrap interval over seeds] (n seeds). "
        "Verdict: whether the two intervals overlap (n<3: fewer than 3 seeds on a side, no "
        "verdict). Time (a shared machine: the two libraries' runs may overlap, see each run's "
        "load average in the JSON): "
        "the training job's wall-clock (policyfit: `policyfit.train`'s, compilation, checkpoints "
        "and its 1-episode final check included; d3rlpy: the worker process, imports and "
        "dataset building included), updates/s over the update loop (in parentheses the steady "
        "rate: policyfit after its first, compiling chunk; d3rlpy between its first and last "
        "update), and the evaluation's wall-clock; means over seeds.",
        "",
        "| algorithm | dataset | policyfit | d3rlpy | verdict | policyfit time | d3rlpy time |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, by_ds in summary["cells"].items():
        for d, cell in by_ds.items():
            lines.append(
                f"| {algo} | {d} | {_ci(cell.get('policyfit'))} | {_ci(cell.get('d3rlpy'))} | "
                f"{_verdict_text(cell)} | {_time(cell.get('policyfit'))} | "
                f"{_time(cell.get('d3rlpy'))} |"
            )
    if summary["overall"]:
        from policyfit.evaluation.stats import format_interval

        lines += [
            "",
            "Over the datasets both libraries have (mean, stratified bootstrap):",
            "",
            "| algorithm | datasets | policyfit | d3rlpy | verdict |",
            "|---|---|---|---|---|",
        ]
        for algo, o in summary["overall"].items():
            cells = [
                format_interval(o[lib]["estimate"], o[lib]["ci_low"], o[lib]["ci_high"])
                for lib in LIBRARIES
            ]
            lines.append(
                f"| {algo} | {len(o['datasets'])} | {cells[0]} | {cells[1]} | {_verdict_text(o)} |"
            )
    lines += ["", "Per seed (normalized score):", "", "| algorithm | dataset | library | scores |"]
    lines.append("|---|---|---|---|")
    for algo, by_ds in summary["cells"].items():
        for d, cell in by_ds.items():
            for lib in LIBRARIES:
                if lib in cell:
                    per = ", ".join(
                        f"s{s}: {x:.1f}"
                        for s, x in zip(cell[lib]["seeds"], cell[lib]["scores"], strict=True)
                    )
                    lines.append(f"| {algo} | {d} | {lib} | {per} |")
    lines += ["", "## Matched hyperparameters", ""]
    for algo, cfg in setup["configs"].items():
        pairs = ", ".join(f"{pf}={cfg[pf]} -> {d3}" for pf, d3 in COMMON_FIELDS + FIELD_MAP[algo])
        extra = {
            "iql": "hidden_dims -> actor/critic/value VectorEncoderFactory; cosine_schedule -> "
            "CosineAnnealingLRFactory(T_max=steps) on the actor's Adam; "
            "reward_normalization=per_step -> MultiplyRewardScaler(1/mean|r|) "
            + ", ".join(f"{d}: {s:.4f}" for d, s in setup.get("reward_scales", {}).items()),
            "td3bc": "hidden_dims -> actor/critic VectorEncoderFactory; n_critics=2",
            "cql": "hidden_dims -> actor/critic VectorEncoderFactory; initial_temperature=1, "
            "initial_alpha=1, alpha_learning_rate=0, alpha_threshold=0 (fixed weight), "
            "max_q_backup=False",
        }[algo]
        lines.append(
            f"* {algo}: {pairs}; {extra}; normalize_observations -> StandardObservationScaler."
        )
    lines += ["", "## What differs (besides the library)", ""]
    lines += [f"* {d}" for d in DIFFERENCES]
    if summary["errors"]:
        lines += ["", "## Errors", "", *[f"* {e}" for e in summary["errors"]]]
    if summary["cells"]:
        lines += ["", f"![parity]({name}.png)"]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """One panel per dataset: each algorithm's score per library, 95% interval, seeds as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policyfit.common.files import atomic_write_bytes
    from policyfit.evaluation.stats import figure_png_bytes

    algos = list(summary["cells"])
    datasets = list(dict.fromkeys(d for by_ds in summary["cells"].values() for d in by_ds))
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.2 * len(datasets), 0.7 * len(algos) + 1.8), squeeze=False
    )
    for ax, d in zip(axes[0], datasets, strict=True):
        for i, algo in enumerate(algos):
            cell = summary["cells"][algo].get(d, {})
            for j, lib in enumerate(LIBRARIES):
                v = cell.get(lib)
                if v is None:
                    continue
                y = i + (j - 0.5) * 0.3
                ax.errorbar(
                    v["mean"],
                    y,
                    xerr=[[v["mean"] - v["ci_low"]], [v["ci_high"] - v["mean"]]],
                    fmt="o",
                    capsize=3,
                    color=f"C{j}",
                    label=lib if i == 0 else None,
                )
                ax.plot(v["scores"], [y] * len(v["scores"]), "x", color="grey", ms=4)
        ax.set_yticks(range(len(algos)), algos)
        ax.set_ylim(len(algos) - 0.5, -0.5)
        ax.set_title(d)
        ax.set_xlabel("normalized score (95% CI; x: seeds)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(
            loc="lower center", bbox_to_anchor=(0.5, -0.45), ncol=2, fontsize=8, frameon=False
        )
    fig.tight_layout()
    atomic_write_bytes(path, figure_png_bytes(fig))
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", default=DEFAULT_ALGOS, help=f"any of {', '.join(ALGOS)}")
    p.add_argument("--datasets", default=DEFAULT_DATASETS)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--libraries", default=",".join(LIBRARIES))
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--d3rlpy-python", default=str(HERE / ".venv-d3rlpy" / "bin" / "python"))
    p.add_argument("--d3rlpy-device", default="cpu:0", help="cuda:0 on a GPU machine")
    p.add_argument(
        "--name", default=None, help="results/<name>.* and work/<name>/ (default parity_<cpu kind>)"
    )
    p.add_argument("--table-only", action="store_true", help="rewrite md/png from the JSON")
    p.add_argument("--d3rlpy-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    bad = [a for a in args.algos.split(",") if a not in ALGOS]
    bad += [lib for lib in args.libraries.split(",") if lib not in LIBRARIES]
    if bad:
        p.error(f"unknown: {', '.join(bad)} (algorithms: {ALGOS}; libraries: {LIBRARIES})")
    return args


def make_setup(args: argparse.Namespace, have_d3: bool) -> dict[str, Any]:
    import importlib.metadata

    algos = args.algos.split(",")
    try:
        torch_main = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_main = None
    return {
        "algos": algos,
        "datasets": args.datasets.split(","),
        "seeds": [int(s) for s in args.seeds.split(",")],
        "steps": args.steps,
        "episodes": args.episodes,
        "eval_seeds": "10000 + 100 * seed + episode",
        "libraries": args.libraries.split(","),
        "torch_threads": args.torch_threads,
        "d3rlpy_device": args.d3rlpy_device,
        "d3rlpy_versions": d3rlpy_versions(args.d3rlpy_python) if have_d3 else None,
        "torch_main": torch_main,
        "configs": {a: policyfit_config(a, args.steps) for a in algos},
        "field_map": {a: COMMON_FIELDS + FIELD_MAP[a] for a in algos},
        "differences": DIFFERENCES,
        "save_every": SAVE_EVERY,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.d3rlpy_worker:
        d3rlpy_worker(json.loads(Path(args.d3rlpy_worker).read_text()))
        return
    sys.path.insert(0, str(HERE))
    from common import cpu_kind, git_commit
    from policyfit.errors import PolicyfitError

    name = args.name or f"parity_{cpu_kind()}"
    have_d3 = Path(args.d3rlpy_python).exists()
    setup = make_setup(args, have_d3)
    for algo in setup["algos"]:
        problems = unmatched(algo, setup["configs"][algo])
        if problems:
            raise SystemExit(f"{algo}: no d3rlpy counterpart for {'; '.join(problems)}")
    # IQL's reward factors, per dataset, as recorded so far (filled in as datasets are loaded)
    setup["reward_scales"] = (_read_record(name) or {}).get("setup", {}).get("reward_scales", {})
    if args.table_only:
        rows = read_rows(name)
        print(f"wrote {write_all(name, rows, setup)} ({len(rows)} rows)")
        return
    libraries = setup["libraries"]
    if "d3rlpy" in libraries and not have_d3:
        print(f"no d3rlpy environment at {args.d3rlpy_python}: policyfit side only", flush=True)
        libraries = [lib for lib in libraries if lib != "d3rlpy"]
    work = HERE / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    done = {run_key(r) for r in read_rows(name) if r.get("score") is not None}
    commit = git_commit()
    datas: dict[str, Data] = {}
    rows: list[dict[str, Any]] = read_rows(name)
    t_all = time.perf_counter()
    for seed in setup["seeds"]:
        for dataset in setup["datasets"]:
            for algo in setup["algos"]:
                for lib in libraries:
                    key = (lib, algo, dataset, seed, args.steps, args.episodes)
                    if key in done:
                        print(
                            f"{lib:9s} {algo:6s} {dataset:24s} s{seed}: done, skipped", flush=True
                        )
                        continue
                    if dataset not in datas:
                        datas[dataset] = Data(dataset)
                    data = datas[dataset]
                    if algo == "iql":
                        setup["reward_scales"][dataset] = data.reward_scale(setup["configs"]["iql"])
                    t0 = time.perf_counter()
                    try:
                        if lib == "policyfit":
                            out = policyfit_run(algo, data, seed, args.steps, args.episodes, work)
                        else:
                            out = d3rlpy_run(
                                algo, data, seed, args.steps, args.episodes, work, args
                            )
                    except PolicyfitError as exc:
                        out = {"error": str(exc)}
                    row = {
                        "library": lib,
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
                    rows = record_row(name, row, setup)
                    print(progress_line(row), flush=True)
    path = write_all(name, rows, setup)
    print(Path(path).with_suffix(".md").read_text())
    print(f"wrote {path} ({time.perf_counter() - t_all:.0f} s)")


def _read_record(name: str) -> dict[str, Any] | None:
    path = result_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def progress_line(row: dict[str, Any]) -> str:
    head = f"{row['library']:9s} {row['algo']:6s} {row['dataset']:24s} s{row['seed']}"
    if "error" in row:
        return f"{head}: error: {row['error']}"
    steady = row.get("steady_updates_per_second")
    return (
        f"{head}: score {row['score']:6.1f}  train {row['train_wall_seconds']:7.1f} s "
        f"({row['updates_per_second']:,.0f} upd/s"
        + (f", steady {steady:,.0f}" if steady else "")
        + f")  eval {row['eval_seconds']:5.1f} s"
    )


if __name__ == "__main__":
    main()
