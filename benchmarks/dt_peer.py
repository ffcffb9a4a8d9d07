"""Decision Transformer, policyfit vs d3rlpy 2.8.1 on the same data: updates/s and scores (issue 15).

Both libraries train the paper's network (Chen et al. 2021, ``gym/experiment.py``; :data:`SHARED`):
context K = 20 (60 tokens), 3 layers, 1 head, width 128, MLP 4 x 128, dropout 0.1 (embedding,
attention, residual), batch 64 windows, AdamW lr 1e-4 with weight decay 1e-4, linear warm-up over
10k updates, gradient clipped at global norm 0.25, returns-to-go divided by 1000, states
standardized with the data's mean and std, a learned timestep embedding over 1000 steps, a
``Linear -> tanh`` action head read from the state tokens. d3rlpy's ``DecisionTransformerConfig``
defaults differ and are overridden (see :func:`d3rlpy_config`): its state embedding is the default
encoder (an MLP 256-256, width 256 transformer), the optimizer plain Adam without warm-up or clip,
no observation or return scaling. The MLP activation is GELU on both sides (policyfit's
:class:`~policyfit.nn.transformer.CausalTransformer` has GELU built in; the paper's config and
d3rlpy's default say ReLU, ``--d3rlpy-activation relu`` restores it for d3rlpy; the cost is the
same). What stays different (same FLOPs up to a few percent, see the markdown): policyfit adds a
learned position embedding over the 60 token slots; d3rlpy windows *end* at a uniform transition
and are padded at the start (policyfit's start there, padded at the end); d3rlpy's loss sums the
squared error over action dimensions and averages over all ``B x K`` slots, padding included,
policyfit's (the paper's) averages over action dimensions and valid slots; LayerNorm epsilon
(d3rlpy 3e-3, flax 1e-6) and initialization.

Data: a suite dataset (``--dataset``, default ``hopper-medium``, 1M transitions), written once to
``benchmarks/work/dt_peer/<name>.npz`` (:func:`policyfit.data.io.save_dataset`) that both
libraries read: policyfit with :func:`policyfit.load_dataset`, d3rlpy as an ``MDPDataset`` built from
the arrays, episodes cut at ``terminals | timeouts`` (:func:`episode_bounds` is the same cut).

* Throughput (always): updates/s of each, in one run, ``--rounds`` rounds back to back (best round
  of each reported; the machine is shared). policyfit: the trainer's fused program
  (:func:`policyfit.training.trainer.make_train_chunk`: ``lax.scan`` over ``--fuse`` updates with
  the windows sampled inside it) after a compile and a warm-up call; d3rlpy: ``fit`` (its Python
  window sampler and update loop, no logging; timed from its first to its last update through
  ``fit``'s per-step callback, so ``fit``'s one-off setup is left out) after a 20-update warm-up
  ``fit``, in its own venv (``--d3rlpy-python``, default ``benchmarks/.venv-d3rlpy/bin/python``;
  ``make bench-venv``), once per torch thread count of ``--torch-threads`` (default ``1,2``; a
  timed fit ends after ``--d3rlpy-cap-seconds``). Both counts are reported and the ratio is taken
  against d3rlpy's best: on the shared 2-core machine, 2 OpenMP threads stall at every operator
  whenever the other core is busy (about 3 s per update against 0.25 s with 1 thread), which
  says nothing about d3rlpy. XLA runs its own thread pool over both cores. FLOPs of one update:
  XLA's cost analysis of policyfit's compiled update (one batch, forward + backward + AdamW);
  GFLOP/s of both use that count (same network), and torch's ``FlopCounterMode`` count of one
  d3rlpy update (matmuls only) is recorded beside it as a cross-check.
* Diagnosis (``--diagnose``): the parts of one update (sampling, forward, forward + backward,
  the whole update, policyfit's without dropout) and the update's matmul shapes (forward,
  attention, weight gradients) timed in both libraries, with a paragraph on where the time goes.
* Scores (``--score-steps S``, 0 = skip): each library trains ``S`` updates per seed (``--seeds``),
  then rolls out 10 episodes (``--episodes``) of the dataset's environment (Hopper-v5) with the
  paper's target return (``--target-return``, default from
  :data:`policyfit.algos.dt.PAPER_TARGET_RETURNS`, 3600 for hopper) and reset seeds
  ``10_000 + 100 * seed + i``; normalized with the dataset's reference returns. policyfit acts
  through :func:`policyfit.evaluation.evaluate` (carry-aware rollouts); d3rlpy through its
  ``StatefulTransformerWrapper`` in its venv's gymnasium.

Results: ``benchmarks/results/dt_peer_<cpu kind>.{json,md}`` (``--out`` changes the name).

    python benchmarks/dt_peer.py --diagnose               # throughput, 200 updates x 2 rounds
    python benchmarks/dt_peer.py --render benchmarks/results/dt_peer_intel-xeon.json  # md only
    python benchmarks/dt_peer.py --score-steps 100000 --seeds 0,1,2 --out dt_peer_scores_gpu
    python benchmarks/dt_peer.py --score-steps 100 --seeds 0 --rounds 1 --out dt_peer_smoke
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "dt_peer"
NPZ_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")

#: The paper's DT (kzl/decision-transformer ``gym/experiment.py``), given to both libraries.
SHARED: dict[str, Any] = {
    "context_length": 20,
    "embed_dim": 128,
    "n_layer": 3,
    "n_head": 1,
    "dropout": 0.1,
    "batch_size": 64,
    "learning_rate": 1e-4,
    "weight_decay": 1e-4,
    "warmup_steps": 10_000,
    "grad_clip": 0.25,
    "return_scale": 1000.0,
    "max_timestep": 1000,
}
D3RLPY_WARMUP_UPDATES = 20


def eval_seed(seed: int) -> int:
    """First reset seed of the evaluation episodes of training seed ``seed`` (both libraries)."""
    return 10_000 + 100 * seed


def episode_bounds(terminals: np.ndarray, timeouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` (inclusive) of the episodes of flat arrays cut at ``terminals | timeouts``.

    The cut both libraries make (policyfit's :class:`~policyfit.data.Dataset`, d3rlpy's
    ``MDPDataset``). A tail after the last flag is an unfinished episode: d3rlpy drops it, so it is
    an error here (the suite marks its last transition as a timeout)."""
    done = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    if done.ndim != 1 or len(done) == 0:
        raise ValueError("terminals and timeouts must be non-empty 1-d arrays")
    if not done[-1]:
        raise ValueError("the last transition ends no episode (neither terminal nor timeout)")
    ends = np.flatnonzero(done)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


def episode_summary(rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> dict:
    """Episode count, lengths and returns of flat arrays (what each library must agree on)."""
    starts, ends = episode_bounds(terminals, timeouts)
    sums = np.add.reduceat(np.asarray(rewards, np.float64), starts)
    return {
        "episodes": len(starts),
        "lengths": (ends - starts + 1).tolist(),
        "returns": sums.tolist(),
        "terminated": np.asarray(terminals, bool)[ends].tolist(),
    }


def paper_target(env_id: str) -> float | None:
    from policyfit.algos.dt import PAPER_TARGET_RETURNS

    key = env_id.split("-")[0].lower()
    return PAPER_TARGET_RETURNS[key][0] if key in PAPER_TARGET_RETURNS else None


def policyfit_config(target_return: float | None = None) -> dict[str, Any]:
    cfg = {k: v for k, v in SHARED.items() if k != "max_timestep"}
    if target_return is not None:
        cfg["target_return"] = float(target_return)
    return cfg


# --------------------------------------------------------------------------- diagnosis
#: The matmuls of one update at the paper's shapes (B 64 x 3K 60 = 3840 tokens, width 128, MLP
#: 512), as einsums both libraries run: forward (x @ W), the attention's batched products, and
#: the weight gradients of the backward pass (x^T @ dy, contracting batch and tokens; written 3-d
#: as jax.grad of a Dense emits them, and one 2-d, the form XLA compiles them to in the update).
GEMMS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "fwd qkv/proj [3840,128]x[128,128]": ("mk,kn->mn", (3840, 128), (128, 128)),
    "fwd mlp up [3840,128]x[128,512]": ("mk,kn->mn", (3840, 128), (128, 512)),
    "fwd mlp down [3840,512]x[512,128]": ("mk,kn->mn", (3840, 512), (512, 128)),
    "attn q.k [64,60,128]x[64,60,128]": ("btk,bsk->bts", (64, 60, 128), (64, 60, 128)),
    "attn p.v [64,60,60]x[64,60,128]": ("bts,bsk->btk", (64, 60, 60), (64, 60, 128)),
    "dW qkv/proj [64,60,128]^T[64,60,128]": ("btk,btn->kn", (64, 60, 128), (64, 60, 128)),
    "dW mlp up [64,60,128]^T[64,60,512]": ("btk,btn->kn", (64, 60, 128), (64, 60, 512)),
    "dW mlp down [64,60,512]^T[64,60,128]": ("btk,btn->kn", (64, 60, 512), (64, 60, 128)),
    "dW mlp down, 2-d [3840,512]^T[3840,128]": ("mk,mn->kn", (3840, 512), (3840, 128)),
    "dx mlp down [3840,128]x[512,128]^T": ("mn,kn->mk", (3840, 128), (512, 128)),
}


def gemm_flops(spec: str, a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """2 x the product of every distinct index size of an einsum ``spec`` over shapes a, b."""
    sizes: dict[str, int] = {}
    for letters, shape in zip(spec.split("->")[0].split(","), (a, b), strict=True):
        sizes.update(zip(letters, shape, strict=True))
    return 2.0 * float(np.prod(list(sizes.values())))


def best_seconds(fn: Any, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def jax_gemms(reps: int = 20) -> dict[str, float]:
    """GFLOP/s of each :data:`GEMMS` einsum under ``jax.jit`` (best of ``reps``)."""
    import jax
    import jax.numpy as jnp

    out = {}
    for name, (spec, a, b) in GEMMS.items():
        x, y = jnp.ones(a, jnp.float32), jnp.ones(b, jnp.float32)
        f = jax.jit(lambda x, y, spec=spec: jnp.einsum(spec, x, y))
        t = best_seconds(lambda f=f, x=x, y=y: f(x, y).block_until_ready(), reps)
        out[name] = gemm_flops(spec, a, b) / t / 1e9
    return out


def torch_gemms(reps: int = 20) -> dict[str, float]:
    import torch

    out = {}
    for name, (spec, a, b) in GEMMS.items():
        x, y = torch.ones(a), torch.ones(b)
        t = best_seconds(lambda spec=spec, x=x, y=y: torch.einsum(spec, x, y), reps)
        out[name] = gemm_flops(spec, a, b) / t / 1e9
    return out


def d3rlpy_phases(d3rlpy: Any, learner: Any, dataset: Any, reps: int = 5) -> dict[str, float]:
    """Milliseconds of one d3rlpy update's parts: window sampling, forward (loss), forward +
    backward, the whole update (with AdamW); best of ``reps``."""
    from d3rlpy.torch_utility import TorchTrajectoryMiniBatch

    impl, cfg = learner.impl, learner.config
    batch = dataset.sample_trajectory_batch(SHARED["batch_size"], SHARED["context_length"])
    tb = TorchTrajectoryMiniBatch.from_batch(
        batch=batch,
        device=str(learner.impl.device),
        observation_scaler=cfg.observation_scaler,
        action_scaler=cfg.action_scaler,
        reward_scaler=cfg.reward_scaler,
    )
    impl.modules.transformer.train()

    def backward() -> None:
        impl.modules.optim.zero_grad()
        impl.compute_loss(tb).backward()

    k, n = SHARED["batch_size"], SHARED["context_length"]
    return {
        "sample_ms": 1e3 * best_seconds(lambda: dataset.sample_trajectory_batch(k, n), reps),
        "forward_ms": 1e3 * best_seconds(lambda: impl.compute_loss(tb), reps),
        "forward_backward_ms": 1e3 * best_seconds(backward, reps),
        "update_ms": 1e3 * best_seconds(lambda: learner.update(batch), reps),
    }


def _policyfit_parts(learner: Any, state: dict, sampler: Any, reps: int) -> dict[str, float]:
    import jax

    from policyfit.nn.normalization import to_unit_actions

    n = SHARED["batch_size"]
    batch = sampler.sample(sampler.data, jax.random.PRNGKey(2), n)
    acts = to_unit_actions(batch["actions"], state["action_scale"]) * batch["mask"][..., None]
    key = jax.random.PRNGKey(3)

    def loss(p):
        return learner.loss(p, state, batch, acts, key)

    forward, backward = jax.jit(loss), jax.jit(jax.grad(loss))
    sample = jax.jit(lambda k: sampler.sample(sampler.data, k, n))
    k4, actor = jax.random.PRNGKey(4), state["actor"]
    return {
        "sample_ms": 1e3 * best_seconds(lambda: jax.block_until_ready(sample(k4)), reps),
        "forward_ms": 1e3 * best_seconds(lambda: forward(actor).block_until_ready(), reps),
        "forward_backward_ms": 1e3
        * best_seconds(lambda: jax.block_until_ready(backward(actor)), reps),
    }


def policyfit_phases(ds: Any, reps: int = 3) -> dict[str, float]:
    """The same parts of one policyfit update (each jitted alone; ``update_ms``: the fused program
    of 10 updates / 10, sampling included), and the update without dropout."""
    import jax
    import jax.numpy as jnp

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.dt import DecisionTransformer, DTConfig
    from policyfit.training.trainer import make_train_chunk

    spec = DatasetSpec.from_dataset(ds)
    out = {}
    for dropout in (SHARED["dropout"], 0.0):
        learner = DecisionTransformer(
            DTConfig.from_dict({**policyfit_config(), "dropout": dropout})
        )
        state = jax.jit(learner.init, static_argnums=0)(spec, jax.random.PRNGKey(0))
        sampler = learner.make_sampler(ds, spec)
        chunk = make_train_chunk(learner, sampler, jax.random.PRNGKey(1), SHARED["batch_size"])
        t = best_seconds(
            lambda c=chunk, st=state, sm=sampler: jax.block_until_ready(
                c(st, sm.data, jnp.int32(0), 10)
            ),
            reps,
        )
        out["update_ms" if dropout else "update_ms_without_dropout"] = 1e3 * t / 10
        if dropout:
            out.update(_policyfit_parts(learner, state, sampler, reps))
    return out


# --------------------------------------------------------------------------- d3rlpy worker
def d3rlpy_config(d3rlpy: Any, activation: str = "gelu") -> Any:
    """d3rlpy's ``DecisionTransformerConfig`` set to :data:`SHARED` (its defaults: batch 64, lr 1e-4,
    K 20, 3 layers, 1 head, dropout 0.1 already match; the state encoder (default MLP 256-256 ->
    width 256), the optimizer (default Adam, no warm-up, no clip), the scalers (none) and the
    activation (ReLU) are set here)."""
    s = SHARED
    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=s["batch_size"],
        learning_rate=s["learning_rate"],
        context_size=s["context_length"],
        max_timestep=s["max_timestep"],
        num_heads=s["n_head"],
        num_layers=s["n_layer"],
        attn_dropout=s["dropout"],
        resid_dropout=s["dropout"],
        embed_dropout=s["dropout"],
        activation_type=activation,
        # one Linear(obs_dim, 128): the paper's embed_state
        encoder_factory=d3rlpy.models.VectorEncoderFactory(
            hidden_units=[s["embed_dim"]], exclude_last_activation=True
        ),
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=s["weight_decay"],
            clip_grad_norm=s["grad_clip"],
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(
                warmup_steps=s["warmup_steps"]
            ),
        ),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(1.0 / s["return_scale"]),
        position_encoding_type=d3rlpy.PositionEncodingType.SIMPLE,
    )


def d3rlpy_flags(terminals: np.ndarray, timeouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(terminals, timeouts)`` for ``MDPDataset``, which rejects a step flagged both
    ways: there the terminal wins (the episode ended by termination; the cut is the same).
    """
    term = np.asarray(terminals, bool)
    return term.astype(np.float32), (np.asarray(timeouts, bool) & ~term).astype(np.float32)


def d3rlpy_dataset(d3rlpy: Any, path: str) -> Any:
    data = np.load(path)
    terminals, timeouts = d3rlpy_flags(data["terminals"], data["timeouts"])
    return d3rlpy.dataset.MDPDataset(
        observations=data["observations"].astype(np.float32),
        actions=data["actions"].astype(np.float32),
        rewards=data["rewards"].astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
    )


def d3rlpy_episodes_of(dataset: Any) -> dict:
    """The same summary as :func:`episode_summary`, read from d3rlpy's episodes."""
    eps = dataset.episodes
    return {
        "episodes": len(eps),
        "lengths": [int(e.size()) for e in eps],
        "returns": [float(np.sum(e.rewards, dtype=np.float64)) for e in eps],
        "terminated": [bool(e.terminated) for e in eps],
    }


class _TimeCap(Exception):
    """Raised from ``fit``'s per-step callback to end a timed fit at its time cap."""


def _fit(
    d3rlpy: Any, learner: Any, dataset: Any, n: int, cap_seconds: float | None = None
) -> dict[str, float]:
    """``fit`` for ``n`` updates; the rate is timed between its first and last update (the
    callback runs after every update), so the one-off setup of ``fit`` is left out. With
    ``cap_seconds`` the fit ends after the update that passes the cap."""
    stamps: list[float] = []

    def callback(algo: Any, epoch: int, step: int) -> None:
        stamps.append(time.perf_counter())
        if cap_seconds is not None and stamps[-1] - stamps[0] > cap_seconds:
            raise _TimeCap

    t0 = time.perf_counter()
    with contextlib.suppress(_TimeCap):
        learner.fit(
            dataset,
            n_steps=n,
            n_steps_per_epoch=n,
            show_progress=False,
            save_interval=10**9,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            callback=callback,
        )
    done = len(stamps)
    span = stamps[-1] - stamps[0] if done > 1 else float("nan")
    return {
        "updates": done,
        "seconds": time.perf_counter() - t0,
        "updates_per_second": (done - 1) / span if done > 1 else float("nan"),
        "capped": done < n,
    }


def d3rlpy_flops(learner: Any, dataset: Any) -> float | None:
    """torch's FlopCounterMode count of one update (matmuls, forward + backward)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        batch = dataset.sample_trajectory_batch(SHARED["batch_size"], SHARED["context_length"])
        counter = FlopCounterMode(display=False)
        with counter:
            learner.update(batch)
        return float(counter.get_total_flops())
    except Exception:  # a cross-check only
        return None


def d3rlpy_rollouts(learner: Any, env_id: str, target: float, seed0: int, episodes: int) -> list:
    import gymnasium as gym

    env = gym.make(env_id)
    wrapper = learner.as_stateful_wrapper(target_return=target)
    returns = []
    for i in range(episodes):
        wrapper.reset()
        obs, _ = env.reset(seed=seed0 + i)
        total, reward, done = 0.0, 0.0, False
        while not done:
            action = wrapper.predict(np.asarray(obs, np.float32), float(reward))
            obs, reward, term, trunc, _ = env.step(np.asarray(action))
            total += float(reward)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def d3rlpy_worker(job: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the d3rlpy venv; ``job["mode"]``: ``episodes``, ``throughput`` or ``scores``."""
    import d3rlpy
    import torch

    torch.set_num_threads(int(job.get("threads", 2)))
    dataset = d3rlpy_dataset(d3rlpy, job["data"])
    if job["mode"] == "episodes":
        return d3rlpy_episodes_of(dataset)
    info = {
        "d3rlpy": d3rlpy.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if job["mode"] == "diagnose":
        d3rlpy.seed(0)
        learner = d3rlpy_config(d3rlpy, job["activation"]).create(device=job.get("device", "cpu:0"))
        _fit(d3rlpy, learner, dataset, 2)
        return {**info, "phases": d3rlpy_phases(d3rlpy, learner, dataset), "gemm": torch_gemms()}
    if job["mode"] == "throughput":
        d3rlpy.seed(0)
        learner = d3rlpy_config(d3rlpy, job["activation"]).create(device=job.get("device", "cpu:0"))
        _fit(d3rlpy, learner, dataset, D3RLPY_WARMUP_UPDATES)  # builds the networks, warms up
        timed = _fit(d3rlpy, learner, dataset, job["updates"], job.get("cap_seconds"))
        return {
            **info,
            **timed,
            "flops_per_update_torch_matmul": d3rlpy_flops(learner, dataset),
            "parameters": int(
                sum(p.numel() for p in learner.impl.modules.transformer.parameters())
            ),
        }
    rows = []
    for seed in job["seeds"]:
        d3rlpy.seed(seed)
        learner = d3rlpy_config(d3rlpy, job["activation"]).create(device=job.get("device", "cpu:0"))
        timed = _fit(d3rlpy, learner, dataset, job["steps"])
        rows.append(
            {
                "library": "d3rlpy",
                "seed": seed,
                "steps": job["steps"],
                "train_seconds": timed["seconds"],
                "updates_per_second": timed["updates_per_second"],
                "returns": d3rlpy_rollouts(
                    learner, job["env_id"], job["target"], eval_seed(seed), job["episodes"]
                ),
            }
        )
    return {**info, "rows": rows}


def run_d3rlpy(python: str, job: dict[str, Any]) -> dict[str, Any]:
    """One worker process; ``{"error": ...}`` when it fails (the run goes on)."""
    WORK.mkdir(parents=True, exist_ok=True)
    job_path = WORK / f"job-{job['mode']}-{os.getpid()}.json"
    job_path.write_text(json.dumps(job))
    cmd = [python, str(Path(__file__).resolve()), "--d3rlpy-worker", str(job_path)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    job_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- policyfit side
def export_dataset(name: str, path: Path | None = None) -> Path:
    """The suite dataset ``name`` as ``.npz`` (written once; reused while it exists)."""
    from policyfit.data.io import save_dataset
    from policyfit.envs.datasets import load_dataset

    path = WORK / f"{name}.npz" if path is None else path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(load_dataset(name), path)
    return path


def policyfit_throughput(ds: Any, updates: int, fuse: int, rounds: int) -> dict[str, Any]:
    """Compile the trainer's fused program once, then time ``rounds`` x ``updates`` updates."""
    import jax
    import jax.numpy as jnp

    from policyfit.algos.base import DatasetSpec
    from policyfit.algos.dt import DecisionTransformer, DTConfig
    from policyfit.training.trainer import make_train_chunk

    learner = DecisionTransformer(DTConfig.from_dict(policyfit_config()))
    spec = DatasetSpec.from_dataset(ds)
    state = jax.jit(learner.init, static_argnums=0)(spec, jax.random.PRNGKey(0))
    sampler = learner.make_sampler(ds, spec)
    batch_size = SHARED["batch_size"]
    chunk = make_train_chunk(learner, sampler, jax.random.PRNGKey(1), batch_size)
    # FLOPs of ONE update (a scan body is counted once by XLA's cost analysis, not per step)
    batch = sampler.sample(sampler.data, jax.random.PRNGKey(2), batch_size)
    one = jax.jit(learner.update).lower(state, batch, jax.random.PRNGKey(3)).compile()
    cost = one.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops = float(cost.get("flops", 0.0)) if cost else None
    t0 = time.perf_counter()
    chunk.lower(state, sampler.data, jnp.int32(0), fuse).compile()
    compile_seconds = time.perf_counter() - t0
    state, _ = chunk(state, sampler.data, jnp.int32(0), fuse)  # warm-up (and cache load)
    jax.block_until_ready(state)
    step, rates = fuse, []
    for _ in range(rounds):
        done, t0 = 0, time.perf_counter()
        while done < updates:
            state, _ = chunk(state, sampler.data, jnp.int32(step), fuse)
            done, step = done + fuse, step + fuse
        jax.block_until_ready(state)
        rates.append(done / (time.perf_counter() - t0))
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state["actor"]))
    return {
        "rounds": rates,
        "updates_per_round": -(-updates // fuse) * fuse,
        "fuse": fuse,
        "compile_seconds": compile_seconds,
        "flops_per_update_xla": flops,
        "parameters": n_params,
        "path": "make_train_chunk: jitted lax.scan over `fuse` updates, windows sampled inside",
    }


def policyfit_scores(
    ds: Any, seeds: list[int], steps: int, episodes: int, target: float, work: Path
) -> list[dict[str, Any]]:
    import policyfit
    from policyfit.evaluation import rollout as evaluation

    rows = []
    for seed in seeds:
        result = policyfit.train(
            "dt",
            ds,
            steps=steps,
            seed=seed,
            config=policyfit_config(target),
            out=work / f"dt-s{seed}-{steps}",
            eval_every=0,
            eval_episodes=1,
            save_every=0,
            progress=False,
            fuse=min(500, steps),
        )
        ev = evaluation.evaluate(
            result.policy,
            ds.env_id,
            episodes=episodes,
            seed=eval_seed(seed),
            ref_scores=reference(ds),
        )
        rows.append(
            {
                "library": "policyfit",
                "seed": seed,
                "steps": steps,
                "train_seconds": result.summary["train_seconds"],
                "updates_per_second": result.summary["steps_per_second"],
                "returns": ev["returns"],
            }
        )
    return rows


def reference(ds: Any) -> tuple[float, float] | None:
    meta = ds.metadata
    if "ref_min_score" in meta and "ref_max_score" in meta:
        return float(meta["ref_min_score"]), float(meta["ref_max_score"])
    return None


# --------------------------------------------------------------------------- summary
def summarize_throughput(pf: dict, d3: list[dict], peak: float) -> dict[str, Any]:
    """Best round of each (d3rlpy: per torch thread count, and over all of them), the ratio to
    d3rlpy's best and to d3rlpy at every thread count, GFLOP/s from the one XLA FLOP count."""
    ok = [r for r in d3 if np.isfinite(r.get("updates_per_second", float("nan")))]
    pf_best = max(pf["rounds"])
    by_threads: dict[str, float] = {}
    for r in ok:
        key = str(r["torch_threads"])
        by_threads[key] = max(by_threads.get(key, 0.0), r["updates_per_second"])
    d3_best = max(by_threads.values()) if by_threads else None
    flops = pf["flops_per_update_xla"]

    def gflops(rate: float | None) -> float | None:
        return rate * flops / 1e9 if rate and flops else None

    return {
        "policyfit_updates_per_second": pf_best,
        "d3rlpy_updates_per_second": d3_best,
        "ratio": pf_best / d3_best if d3_best else None,
        "d3rlpy_best_threads": max(by_threads, key=by_threads.get) if by_threads else None,
        "d3rlpy_updates_per_second_by_threads": by_threads,
        "ratio_by_threads": {k: pf_best / v for k, v in by_threads.items()},
        "policyfit_gflops_per_second": gflops(pf_best),
        "d3rlpy_gflops_per_second": gflops(d3_best),
        "matmul_peak_gflops": peak,
        "flops_per_update_xla": flops,
        "flops_per_update_torch_matmul": next(
            (r["flops_per_update_torch_matmul"] for r in ok), None
        ),
    }


def summarize_scores(rows: list[dict], refs: tuple[float, float] | None) -> dict[str, Any]:
    from policyfit.common.scores import normalized_score

    out: dict[str, Any] = {}
    for lib in ("policyfit", "d3rlpy"):
        mine = [r for r in rows if r.get("library") == lib and "returns" in r]
        if not mine:
            continue
        per_seed = [float(np.mean(r["returns"])) for r in mine]
        entry = {
            "seeds": [r["seed"] for r in mine],
            "return_per_seed": per_seed,
            "return_mean": float(np.mean(per_seed)),
            "updates_per_second_mean": float(np.mean([r["updates_per_second"] for r in mine])),
        }
        if refs is not None:
            scores = [float(np.mean(normalized_score(r["returns"], refs))) for r in mine]
            entry["score_per_seed"] = scores
            entry["score_mean"] = float(np.mean(scores))
        out[lib] = entry
    return out


def _f(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def markdown(record: dict[str, Any]) -> str:
    setup, t = record["setup"], record["throughput"]
    lines = [
        f"# Decision Transformer: policyfit vs d3rlpy {record.get('d3rlpy_version', '?')}, "
        f"{setup['dataset']} ({setup['transitions']:,} transitions), CPU",
        "",
        "Same network on both sides (K 20 = 60 tokens, 3 layers, 1 head, width 128, MLP 512, "
        "dropout 0.1, GELU), batch 64, AdamW 1e-4 + warm-up + clip 0.25, the same `.npz`. "
        f"Best of {setup['rounds']} rounds of {setup['updates']} updates each, "
        f"{setup['cpu_count']} cores; load average at the "
        f"end {', '.join(f'{x:.1f}' for x in record['load_average_end'])} "
        "(a shared machine: other jobs ran meanwhile).",
        "",
        "| library | updates/s (best) | rounds | GFLOP/s | % of XLA's 2048^2 matmul rate |",
        "|---|---|---|---|---|",
    ]
    peak = t["matmul_peak_gflops"]
    pf_rounds = ", ".join(f"{x:.1f}" for x in record["policyfit"]["rounds"])
    flops = t["flops_per_update_xla"]
    table = [("policyfit (XLA, all cores)", t["policyfit_updates_per_second"], pf_rounds)]
    for threads in sorted({str(r.get("threads", "?")) for r in record["d3rlpy"]}):
        mine = [r for r in record["d3rlpy"] if str(r.get("threads", "?")) == threads]
        rounds = ", ".join(
            f"{r['updates_per_second']:.2f}"
            + (f" ({r['updates']} upd, capped)" if r["capped"] else "")
            if "updates_per_second" in r
            else f"error: {r.get('error')}"
            for r in mine
        )
        best = t["d3rlpy_updates_per_second_by_threads"].get(threads)
        table.append((f"d3rlpy, torch threads {threads}", best, rounds))
    for name, rate, rounds in table:
        gf = rate * flops / 1e9 if rate and flops else None
        pct = None if gf is None else 100 * gf / peak
        lines.append(f"| {name} | {_f(rate, 2)} | {rounds} | {_f(gf, 1)} | {_f(pct, 0)}% |")
    ratio = t["ratio"]
    by = ", ".join(f"{_f(v, 2)}x at {k} thread(s)" for k, v in t["ratio_by_threads"].items())
    lines += [
        "",
        f"**Ratio policyfit / d3rlpy (its best thread count, {t['d3rlpy_best_threads']}): "
        f"{_f(ratio, 2)}x** ({by}; goal >= 3x: {'met' if ratio and ratio >= 3 else 'NOT met'}).",
    ]
    if ratio is not None and ratio < 1:
        lines += [
            "",
            f"policyfit is {1 / ratio:.2f}x SLOWER than d3rlpy on this machine "
            f"({_f(t['policyfit_updates_per_second'], 2)} vs "
            f"{_f(t['d3rlpy_updates_per_second'], 2)} updates/s); why: see below.",
        ]
    lines += [
        "",
        f"FLOPs of one update: {_f(t['flops_per_update_xla'] / 1e6 if t['flops_per_update_xla'] else None)} "
        "MFLOP (XLA cost analysis of policyfit's compiled update, used for both GFLOP/s); torch "
        "FlopCounterMode on one d3rlpy update (matmuls only): "
        f"{_f(t['flops_per_update_torch_matmul'] / 1e6 if t['flops_per_update_torch_matmul'] else None)}"
        f" MFLOP. XLA's float32 2048^2 matmul on this machine: {peak:.1f} GFLOP/s (a reference, "
        "not the CPU's peak: torch's one-thread matmuls above reach more). Parameters: policyfit "
        f"{record['policyfit']['parameters']:,}, d3rlpy "
        f"{next((r['parameters'] for r in record['d3rlpy'] if 'parameters' in r), 'n/a')}. "
        f"policyfit compile: {record['policyfit']['compile_seconds']:.1f} s (not timed).",
        "",
        f"policyfit path: {record['policyfit']['path']} (fuse {record['policyfit']['fuse']}). "
        "d3rlpy path: `DecisionTransformer.fit` (Python window sampler over its episodes, one "
        f"update per step) after a {D3RLPY_WARMUP_UPDATES}-update warm-up fit.",
    ]
    if record.get("diagnosis"):
        lines += diagnosis_markdown(record["diagnosis"])
    if not record.get("scores"):
        lines += ["", "## Scores", "", SCORES_NOT_RUN]
    scores = record.get("scores")
    if scores:
        lines += [
            "",
            f"## Scores after {scores['steps']:,} updates "
            f"(target return {scores['target_return']:.0f}, {scores['episodes']} episodes/seed)",
            "",
        ]
        if scores.get("note"):
            lines += [scores["note"], ""]
        lines += [
            "| library | seeds | return (mean) | normalized score (mean) | per seed |",
            "|---|---|---|---|---|",
        ]
        for lib, e in scores["summary"].items():
            per = ", ".join(f"{x:.1f}" for x in e.get("score_per_seed", e["return_per_seed"]))
            lines.append(
                f"| {lib} | {len(e['seeds'])} | {e['return_mean']:.1f} | "
                f"{_f(e.get('score_mean'))} | {per} |"
            )
        errors = [r["error"] for r in scores["rows"] if "error" in r]
        if errors:
            lines += ["", f"d3rlpy failed: `{errors[0]}`"]
    lines += ["", "## What differs (besides the library)", ""]
    lines += [f"* {d}" for d in DIFFERENCES]
    return "\n".join(lines) + "\n"


SCORES_NOT_RUN = (
    "Not run in this result: the paper's budget (100k updates x 3 seeds) is hours per seed on "
    "this CPU for either library. Run `python benchmarks/dt_peer.py --score-steps 100000 "
    "--seeds 0,1,2 --out dt_peer_scores_<machine>` on a GPU machine. The score path was "
    "smoke-tested at 100 updates, 1 seed (both libraries train, roll out 10 episodes of Hopper-v5 "
    "at target 3600 and report); scores at that budget mean nothing and are not committed."
)


def diagnosis_markdown(diag: dict[str, Any]) -> list[str]:
    """Tables of the per-part times and the matmul GFLOP/s of both libraries."""
    sides = {"policyfit": diag["policyfit"]}
    sides.update({k: v for k, v in diag.items() if k.startswith("d3rlpy_") and "phases" in v})
    names = list(sides)
    head = "| | " + " | ".join(n.replace("d3rlpy_", "d3rlpy, threads ") for n in names) + " |"
    sep = "|---" * (len(names) + 1) + "|"
    lines = ["", "## Where the time goes (one update, milliseconds, best of a few)", "", head, sep]
    for part in (
        "sample_ms",
        "forward_ms",
        "forward_backward_ms",
        "update_ms",
        "update_ms_without_dropout",
    ):
        cells = [_f(sides[n]["phases"].get(part)) for n in names]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines += ["", "Matmul GFLOP/s at the update's shapes (einsum, jit for XLA):", "", head, sep]
    for g in GEMMS:
        if all(sides[n]["gemm"].get(g) is None for n in names):
            continue  # not measured by the version that wrote this result
        cells = [_f(sides[n]["gemm"].get(g)) for n in names]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    if len(names) > 1:
        lines += ["", diagnosis_summary(sides["policyfit"], sides[names[1]])]
    return lines


#: The weight-gradient matmuls of one update: per layer 4 of q/k/v/proj and the MLP's two.
DW_PER_UPDATE = {
    "dW qkv/proj [64,60,128]^T[64,60,128]": 4 * SHARED["n_layer"],
    "dW mlp up [64,60,128]^T[64,60,512]": SHARED["n_layer"],
    "dW mlp down [64,60,512]^T[64,60,128]": SHARED["n_layer"],
}


def weight_grad_ms(gemm: dict[str, float]) -> float:
    """Milliseconds one update spends in its weight-gradient matmuls at the rates ``gemm``."""
    return sum(
        count * gemm_flops(*GEMMS[name]) / (gemm[name] * 1e9) * 1e3
        for name, count in DW_PER_UPDATE.items()
    )


def diagnosis_summary(pf: dict[str, Any], d3: dict[str, Any]) -> str:
    """One paragraph from the measured numbers: where the two updates spend their time."""
    p, d = pf["phases"], d3["phases"]
    back_pf = p["forward_backward_ms"] - p["forward_ms"]
    back_d3 = d["forward_backward_ms"] - d["forward_ms"]
    dw_pf, dw_d3 = weight_grad_ms(pf["gemm"]), weight_grad_ms(d3["gemm"])
    dropout = p["update_ms"] - p.get("update_ms_without_dropout", p["update_ms"])
    gap = p["update_ms"] - d["update_ms"]
    faster = "faster" if gap < 0 else "slower"
    text = (
        f"Summary: one policyfit update takes {p['update_ms']:.0f} ms (the fused training "
        f"program), d3rlpy's {d['update_ms']:.0f} ms: policyfit is "
        f"{abs(gap) / d['update_ms'] * 100:.0f}% {faster}. Forward passes: "
        f"{p['forward_ms']:.0f} vs {d['forward_ms']:.0f} ms; backward (forward + backward minus "
        f"forward, each jitted alone): {back_pf:.0f} vs {back_d3:.0f} ms. The weight-gradient "
        "matmuls (x^T dy, contracting over batch x tokens = 3840 rows) are where XLA trails "
        "oneDNN/MKL most: at the 3-d einsum rates above they would take "
        f"{dw_pf:.0f} ms of every policyfit update against {dw_d3:.0f} ms in torch. policyfit's "
        "trunk therefore computes every projection as one 2-d matmul "
        "(`policyfit.nn.modules.flat_dot_general`), whose gradients run at the '2-d' rate"
    )
    two_d = "dW mlp down, 2-d [3840,512]^T[3840,128]"
    three_d = "dW mlp down [64,60,512]^T[64,60,128]"
    if pf["gemm"].get(two_d) and pf["gemm"].get(three_d):
        text += (
            f" ({pf['gemm'][two_d]:.0f} vs {pf['gemm'][three_d]:.0f} GFLOP/s for the MLP's down)"
        )
    text += ". "
    if dropout > 1.0:
        text += f"Dropout's random masks (threefry) cost policyfit {dropout:.0f} ms per update. "
    else:
        text += (
            "Dropout's random masks (threefry) cost nothing measurable here (the update with and "
            f"without dropout differ by {dropout:.0f} ms, inside the noise). "
        )
    text += (
        f"Sampling is negligible on both sides ({p['sample_ms']:.1f} vs {d['sample_ms']:.1f} ms)."
    )
    return text


DIFFERENCES = [
    "activation: GELU on both (policyfit's trunk has GELU built in; the paper and d3rlpy's "
    "default: ReLU)",
    "position: policyfit adds a learned embedding over the 60 token slots to the per-step "
    "timestep embedding; d3rlpy (SIMPLE) has the timestep embedding only",
    "windows: d3rlpy's end at a uniform transition, padded at the start, with a padding "
    "attention mask; policyfit's start there, padded at the end (causal attention: no mask)",
    "loss: d3rlpy sums the squared error over action dims and averages over all B x K slots; "
    "policyfit (as the paper) averages over action dims and the valid slots",
    "timestep table: d3rlpy's has max_timestep + 1 = 1001 rows, policyfit's one row per step of "
    "the data's longest episode (the parameter counts differ by that; lookups cost the same)",
    "LayerNorm epsilon (d3rlpy 3e-3, flax 1e-6); initialization (d3rlpy N(0, 0.02), flax "
    "LeCun normal); timesteps start at 1 in d3rlpy, 0 in policyfit",
]


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="hopper-medium")
    p.add_argument("--updates", type=int, default=200, help="timed updates per round")
    p.add_argument("--fuse", type=int, default=200, help="policyfit updates per jitted call")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--torch-threads",
        default="1,2",
        help="d3rlpy runs once per round with each of these torch thread counts",
    )
    p.add_argument(
        "--d3rlpy-cap-seconds",
        type=float,
        default=60.0,
        help="a timed d3rlpy fit ends after this long (its rate: the updates done by then)",
    )
    p.add_argument("--d3rlpy-python", default=str(HERE / ".venv-d3rlpy" / "bin" / "python"))
    p.add_argument(
        "--d3rlpy-device", default="cpu:0", help="torch device of d3rlpy (cuda:0 on a GPU machine)"
    )
    p.add_argument("--d3rlpy-activation", default="gelu", choices=("gelu", "relu"))
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="also time the parts of one update and the update's matmul shapes in both libraries",
    )
    p.add_argument("--score-steps", type=int, default=0, help="0: throughput only")
    p.add_argument("--seeds", default="0")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--target-return", type=float, default=None)
    p.add_argument("--score-note", default="", help="a line written above the score table")
    p.add_argument("--out", default=None, help="result name (default dt_peer_<cpu kind>)")
    p.add_argument(
        "--render",
        default=None,
        metavar="JSON",
        help="only rewrite the markdown of an existing result JSON (no measuring)",
    )
    p.add_argument("--d3rlpy-worker", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.d3rlpy_worker:
        job = json.loads(Path(args.d3rlpy_worker).read_text())
        print(json.dumps(d3rlpy_worker(job)))
        return

    if args.render:
        src = Path(args.render)
        record = json.loads(src.read_text())
        sys.path.insert(0, str(HERE))
        from common import write_text

        print(f"wrote {write_text(src.with_suffix('.md'), markdown(record))}")
        return

    sys.path.insert(0, str(HERE))
    from throughput import matmul_peak_gflops

    from common import cpu_kind, write_result, write_text
    from policyfit.envs.datasets import load_dataset

    out = args.out or f"dt_peer_{cpu_kind()}"
    have_d3 = Path(args.d3rlpy_python).exists()
    data_path = export_dataset(args.dataset)
    ds = load_dataset(data_path)
    print(f"{args.dataset}: {len(ds):,} transitions from {data_path}", flush=True)
    peak = matmul_peak_gflops()

    pf = policyfit_throughput(ds, args.updates, min(args.fuse, args.updates), args.rounds)
    print(f"policyfit: {pf['rounds']} upd/s (compile {pf['compile_seconds']:.0f} s)", flush=True)
    d3: list[dict] = []
    threads = [int(x) for x in str(args.torch_threads).split(",")]
    for _ in range(args.rounds if have_d3 else 0):
        for n_threads in threads:
            job = {
                "mode": "throughput",
                "data": str(data_path),
                "updates": args.updates,
                "threads": n_threads,
                "cap_seconds": args.d3rlpy_cap_seconds,
                "activation": args.d3rlpy_activation,
                "device": args.d3rlpy_device,
            }
            d3.append({"threads": n_threads, **run_d3rlpy(args.d3rlpy_python, job)})
            print(f"d3rlpy: {d3[-1]}", flush=True)
    record: dict[str, Any] = {
        "setup": {
            "dataset": args.dataset,
            "data_file": str(data_path.relative_to(HERE.parent)),
            "transitions": len(ds),
            "shared": SHARED,
            "updates": args.updates,
            "rounds": args.rounds,
            "torch_threads": threads,
            "d3rlpy_cap_seconds": args.d3rlpy_cap_seconds,
            "cpu_count": os.cpu_count(),
            "d3rlpy_activation": args.d3rlpy_activation,
        },
        "d3rlpy_version": next((r["d3rlpy"] for r in d3 if "d3rlpy" in r), None),
        "policyfit": pf,
        "d3rlpy": d3,
        "throughput": summarize_throughput(pf, d3, peak),
        "load_average_end": list(os.getloadavg()),
    }
    t = record["throughput"]
    print(f"ratio policyfit/d3rlpy: {t['ratio']}", flush=True)
    if args.diagnose:
        diag = {"policyfit": {"phases": policyfit_phases(ds), "gemm": jax_gemms()}}
        if have_d3:  # at d3rlpy's best thread count (the table shows the others' rates)
            for n_threads in [int(t["d3rlpy_best_threads"] or threads[0])]:
                job = {
                    "mode": "diagnose",
                    "data": str(data_path),
                    "threads": n_threads,
                    "activation": args.d3rlpy_activation,
                    "device": args.d3rlpy_device,
                }
                diag[f"d3rlpy_{n_threads}"] = run_d3rlpy(args.d3rlpy_python, job)
        record["diagnosis"] = diag
        print(json.dumps(diag, indent=1), flush=True)

    if args.score_steps > 0:
        seeds = [int(s) for s in args.seeds.split(",")]
        target = args.target_return or paper_target(ds.env_id)
        if target is None:  # the best episode return in the data (policyfit's default)
            target = max(episode_summary(ds.rewards, ds.terminals, ds.timeouts)["returns"])
        work = WORK / "runs"
        rows = policyfit_scores(ds, seeds, args.score_steps, args.episodes, target, work)
        if have_d3:
            job = {
                "mode": "scores",
                "data": str(data_path),
                "seeds": seeds,
                "steps": args.score_steps,
                "episodes": args.episodes,
                "target": target,
                "env_id": ds.env_id,
                "threads": int(t["d3rlpy_best_threads"] or threads[0]),
                "activation": args.d3rlpy_activation,
                "device": args.d3rlpy_device,
            }
            res = run_d3rlpy(args.d3rlpy_python, job)
            rows += res.get("rows", [{"library": "d3rlpy", "error": res.get("error")}])
        record["scores"] = {
            "steps": args.score_steps,
            "seeds": seeds,
            "episodes": args.episodes,
            "target_return": target,
            "env_id": ds.env_id,
            "reference_scores": reference(ds),
            "note": args.score_note,
            "rows": rows,
            "summary": summarize_scores(rows, reference(ds)),
        }
        print(json.dumps(record["scores"]["summary"], indent=1), flush=True)

    path = write_result(out, record)
    write_text(HERE / "results" / f"{out}.md", markdown(record))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
