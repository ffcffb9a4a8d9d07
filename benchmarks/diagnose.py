"""Benchmark: seconds to diagnose a 1M-transition dataset (issue 6 budget: 30 s on the dev machine).

Data: the suite's ``halfcheetah-medium`` (1M transitions, the widest MuJoCo task: 17 + 6 dims) when
the suite can build it, else 1M HalfCheetah-v5 transitions rolled out here from a noisy open-loop
gait policy (cached under ``$POLICYFIT_HOME/benchmarks``). SACo is measured against the suite's
``halfcheetah-medium-replay`` when available, else against the data itself (same cost).

    .venv/bin/python benchmarks/diagnose.py [--transitions 1000000] [--repeats 1]

Writes ``benchmarks/results/diagnose.json`` (machine, versions, git commit, seconds per stage, and
the machine's load average: the dev machine is shared, so the load is part of the figure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402
from policyfit.common.files import atomic_write_npz
from policyfit.data import Dataset
from policyfit.diagnostics.card import diagnose
from policyfit.paths import home


def rollout_dataset(env_id: str, transitions: int, seed: int = 0) -> Dataset:
    """``transitions`` steps of a noisy sinusoidal gait (per-episode amplitude/noise) in ``env_id``."""
    import gymnasium as gym

    from policyfit.data.spaces import space_from_gym

    cache = home() / "benchmarks" / f"{env_id}-gait-{transitions}-s{seed}.npz"
    env = gym.make(env_id)
    if not cache.exists():
        rng = np.random.default_rng(seed)
        act_dim = env.action_space.shape[0]
        obs_dim = env.observation_space.shape[0]
        arrays = {
            "observations": np.empty((transitions, obs_dim), np.float32),
            "actions": np.empty((transitions, act_dim), np.float32),
            "rewards": np.empty(transitions, np.float32),
            "terminals": np.zeros(transitions, bool),
            "timeouts": np.zeros(transitions, bool),
            "next_observations": np.empty((transitions, obs_dim), np.float32),
        }
        obs, _ = env.reset(seed=seed)
        amp, noise = rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.8)
        phase = rng.uniform(0, 2 * np.pi, act_dim)
        t_ep = 0
        for i in range(transitions):
            action = amp * np.sin(0.4 * t_ep + phase) + noise * rng.normal(size=act_dim)
            action = np.clip(action, -1, 1).astype(np.float32)
            nxt, reward, term, trunc, _ = env.step(action)
            arrays["observations"][i] = obs
            arrays["actions"][i] = action
            arrays["rewards"][i] = reward
            arrays["next_observations"][i] = nxt
            arrays["terminals"][i] = term
            arrays["timeouts"][i] = trunc or (i == transitions - 1 and not term)
            obs, t_ep = nxt, t_ep + 1
            if term or trunc:
                obs, _ = env.reset()
                amp, noise = rng.uniform(0.2, 1.0), rng.uniform(0.05, 0.8)
                phase, t_ep = rng.uniform(0, 2 * np.pi, act_dim), 0

        atomic_write_npz(cache, arrays)
    with np.load(cache) as f:
        arrays = {k: f[k] for k in f.files}
    metadata = {
        "env_id": env_id,
        "action_space": space_from_gym(env.action_space),
        "observation_space": space_from_gym(env.observation_space),
    }
    return Dataset(**arrays, metadata=metadata, source=f"rollouts:{env_id}-gait")


def load_data(transitions: int) -> tuple[Dataset, Dataset | None, str]:
    try:
        from policyfit.envs.suite import make_dataset

        ds = make_dataset("halfcheetah-medium")
        ref = make_dataset("halfcheetah-medium-replay")
        if len(ds) > transitions:
            ds = ds[:transitions]
        return ds, ref, "suite:halfcheetah-medium vs suite:halfcheetah-medium-replay"
    except Exception as exc:  # the suite may not exist yet: fall back to our own rollouts
        print(f"suite unavailable ({type(exc).__name__}: {exc}); using rollouts", file=sys.stderr)
    ds = rollout_dataset("HalfCheetah-v5", transitions)
    return ds, ds, "rollouts:HalfCheetah-v5 gait policy (reference: itself)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--name", default="diagnose", help="result file benchmarks/results/NAME.json"
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    ds, ref, data_name = load_data(args.transitions)
    load_s = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        card = diagnose(ds, reference=ref)
        runs.append(
            {
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu,  # all threads; wall >> cpu = contention
                "load_average_1m": os.getloadavg()[0],
                "stages_s": card.timings,
            }
        )
    result = {
        "data": data_name,
        "transitions": len(ds),
        "observation_dim": ds.observation_dim,
        "action_dim": ds.action_dim,
        "seconds": min(r["seconds"] for r in runs),
        "runs": runs,
        "budget_seconds": 30.0,
        "data_load_seconds": load_s,
        "load_average_1m_at_end": os.getloadavg()[0],
        "scipy": scipy.__version__,
        "flagged_fraction": card.anomalies["fraction"],
        "flag_counts": card.anomalies["counts"],
    }
    path = write_result(args.name, result)
    print(f"wrote {path}")
    print(json.dumps({k: result[k] for k in ("data", "transitions", "seconds", "flag_counts")}))
    print("\n".join(card.verdict))


if __name__ == "__main__":
    main()
