"""Did the algorithm-contract redesign (issue 13) slow training down? Old code vs new, same run.

Two source trees are measured side by side, alternating, in fresh processes: the checkout at
``--baseline`` (a git commit before the redesign, checked out into a temporary worktree) and the
current tree. For each algorithm and tree:

* ``fused``: updates/s of the trainer's fused program alone (``make_train_chunk``: ``lax.scan`` over
  ``--fuse`` updates with on-device sampling), as ``throughput.py`` measures it;
* ``train``: ``policyfit.train`` end to end on the same data (``--steps`` updates, no evaluation
  until the end, no intermediate checkpoints): the summary's ``steps_per_second`` (update time only)
  and the wall time of the whole call (setup, compile, the loop, one evaluation episode, saving).

Data: 100k transitions of Hopper-v5 under a random policy (real dynamics; content does not change
update cost), width 256, batch 256, as ``throughput.py``. The best of ``--rounds`` rounds is
reported; the ratio is new / old (1.0 = unchanged, < 0.95 would be a slowdown above 5%).

    python benchmarks/contract_overhead.py [--baseline 8243581] [--algos iql,td3bc] [--rounds 3]

Writes ``results/contract_overhead_<cpu kind>.{json,md}`` (one file per CPU kind, never overwriting
another machine's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from common import cpu_kind, machine, write_result, write_text  # noqa: E402

WORKER = r"""
import json, sys, time
import numpy as np
import jax, jax.numpy as jnp
import policyfit
from policyfit.data import Dataset
from policyfit.algos.base import DatasetSpec
from policyfit.algos.registry import get_algorithm
from policyfit.data.sampler import TransitionSampler
try:
    from policyfit.training.trainer import make_train_chunk, train
except ImportError:  # before the redesign the package was policyfit.train
    from policyfit.train.trainer import make_train_chunk, train

algo, data_path, fuse, updates, steps, out = sys.argv[1:7]
fuse, updates, steps = int(fuse), int(updates), int(steps)
raw = np.load(data_path)
ds = Dataset(**{k: raw[k] for k in raw.files}, metadata={"env_id": "Hopper-v5"}, source="hopper-random")
config = {"hidden_dims": (256, 256), "batch_size": 256}
cls = get_algorithm(algo)
learner = cls(cls.Config.from_dict(config))
spec = DatasetSpec.from_dataset(ds)
state = jax.jit(learner.init, static_argnums=0)(spec, jax.random.PRNGKey(0))
sampler = TransitionSampler(ds)
chunk = make_train_chunk(learner, sampler, jax.random.PRNGKey(1), 256)
state, _ = chunk(state, sampler.data, jnp.int32(0), fuse)
jax.block_until_ready(state)
done, t0 = 0, time.perf_counter()
while done < updates:
    state, _ = chunk(state, sampler.data, jnp.int32(fuse + done), fuse)
    done += fuse
jax.block_until_ready(state)
fused = done / (time.perf_counter() - t0)
t0 = time.perf_counter()
result = train(algo, ds, steps=steps, seed=0, config=config, out=out, eval_every=0,
               save_every=0, eval_episodes=1, progress=False, fuse=fuse)
wall = time.perf_counter() - t0
print(json.dumps({"fused_updates_per_second": fused,
                  "train_steps_per_second": result.summary["steps_per_second"],
                  "train_wall_seconds": wall}))
"""


def make_data(path: Path) -> None:
    from throughput import make_data as hopper_random

    hopper_random(path)


def measure(src: Path, algo: str, data: Path, args: argparse.Namespace, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    env = {**os.environ, "PYTHONPATH": str(src), "POLICYFIT_JAX_CACHE": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER,
            algo,
            str(data),
            str(args.fuse),
            str(args.updates),
            str(args.steps),
            str(out / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed for {src} {algo}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="8243581", help="git commit before the redesign")
    p.add_argument("--algos", default="iql,td3bc")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fuse", type=int, default=500)
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--steps", type=int, default=5000)
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pf-contract-"))
    old = work / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.baseline],
        check=True,
        capture_output=True,
    )
    try:
        data = work / "hopper-random-100k.npz"
        make_data(data)
        trees = {"old": old / "src", "new": REPO / "src"}
        rounds: dict = {a: {t: [] for t in trees} for a in args.algos.split(",")}
        for r in range(args.rounds):
            for algo in rounds:
                for tree, src in trees.items():
                    row = measure(src, algo, data, args, work)
                    rounds[algo][tree].append(row)
                    print(f"round {r} {algo:6s} {tree}: {row}", flush=True)
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
            check=False,
            capture_output=True,
        )

    results = {}
    for algo, by_tree in rounds.items():
        best = {}
        for tree, rows in by_tree.items():
            best[tree] = {
                "fused_updates_per_second": max(x["fused_updates_per_second"] for x in rows),
                "train_steps_per_second": max(x["train_steps_per_second"] for x in rows),
                "train_wall_seconds": min(x["train_wall_seconds"] for x in rows),
            }
        results[algo] = {
            "best": best,
            "rounds": by_tree,
            "ratio_new_over_old": {
                "fused_updates_per_second": best["new"]["fused_updates_per_second"]
                / best["old"]["fused_updates_per_second"],
                "train_steps_per_second": best["new"]["train_steps_per_second"]
                / best["old"]["train_steps_per_second"],
                "train_wall_seconds": best["new"]["train_wall_seconds"]
                / best["old"]["train_wall_seconds"],
            },
        }
    name = f"contract_overhead_{cpu_kind()}"
    path = write_result(
        name,
        {
            "setup": {
                "baseline_commit": args.baseline,
                "data": "Hopper-v5 random rollouts, 100k transitions",
                "width": 256,
                "batch_size": 256,
                "fuse": args.fuse,
                "fused_updates_timed": args.updates,
                "train_steps": args.steps,
                "rounds": args.rounds,
                "persistent_compile_cache": "off",
            },
            "load_average_end": os.getloadavg(),
            "results": results,
        },
    )
    lines = [
        f"# Training speed before and after the contract redesign ({machine()['cpu']})",
        "",
        f"Baseline {args.baseline} vs this tree, same data and settings, alternating in fresh "
        f"processes, best of {args.rounds} rounds; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}. Ratio = new / old (for wall time, "
        "lower is faster).",
        "",
        "| algorithm | fused upd/s old | new | ratio | train() upd/s old | new | ratio | "
        "train() wall s old | new | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for algo, r in results.items():
        o, n, q = r["best"]["old"], r["best"]["new"], r["ratio_new_over_old"]
        lines.append(
            f"| {algo} | {o['fused_updates_per_second']:.0f} | {n['fused_updates_per_second']:.0f}"
            f" | {q['fused_updates_per_second']:.3f} | {o['train_steps_per_second']:.0f} | "
            f"{n['train_steps_per_second']:.0f} | {q['train_steps_per_second']:.3f} | "
            f"{o['train_wall_seconds']:.1f} | {n['train_wall_seconds']:.1f} | "
            f"{q['train_wall_seconds']:.3f} |"
        )
    write_text(HERE / "results" / f"{name}.md", "\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
