#!/usr/bin/env bash
# 1M IQL updates on hopper-medium with evaluation, wall-clock, on one lent GPU (issue 19).
#
# JAX-CORL reports about 9 minutes for 1M IQL updates on a GPU; the issue's goal is <= 2 minutes.
# This runs one ordinary `policyfit train iql --dataset hopper-medium --steps 1000000` (evaluation
# every 100k updates, 10 episodes; the trainer's fused lax.scan chunks) and writes
# $OUT/iql_1m_gpu.json: wall-clock of the whole command and of the training loop alone (from the
# run's metrics.jsonl), final and best normalized score, device, versions, commit. Not run yet:
# no session so far had a GPU when this was written (session 10).
#
# The GPU machine has no network. It needs, in the repository root (as corruption_gpu.sh):
#   .whl/   wheels (cp312) of what its image lacks: gymnasium, farama-notifications, mujoco,
#           mujoco-core, glfw, pyopengl, minari
#   .carry/hopper_medium.tar.xz (optional) the suite's hopper-medium, made here with
#     tar cf - -C ~/.cache/policyfit datasets/policyfit/hopper-medium-v0 | xz -6 > .carry/hopper_medium.tar.xz
#   without it the dataset is generated there first (`policyfit data make hopper-medium`, not timed).
# Call: run(command="OUT=$OUT bash benchmarks/iql_1m_gpu.sh", carry=[".whl", ".carry"], timeout_s=600)
# then copy iql_1m_gpu.json into benchmarks/results/iql_1m_gpu_<device>.json.
set -u
OUT=${OUT:-/tmp/policyfit-gpu-out}
STEPS=${STEPS:-1000000}
mkdir -p "$OUT"
t0=$(date +%s)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export POLICYFIT_HOME=${POLICYFIT_HOME:-/tmp/policyfit-home}
mkdir -p "$POLICYFIT_HOME"
[ -f .carry/hopper_medium.tar.xz ] && tar xJf .carry/hopper_medium.tar.xz -C "$POLICYFIT_HOME"
PF="python3 -c 'from policyfit.cli.main import main; main()'"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
eval "$PF data make hopper-medium" 2>&1 | tail -2
echo "setup took $(($(date +%s) - t0)) s"

t1=$(date +%s.%N)
eval "$PF train iql --dataset hopper-medium --steps $STEPS --eval-every 100000 --seed 0 \
  --out $OUT/run" 2>&1 | tee "$OUT/train.log" | grep -v "^\s*$" | tail -5
t2=$(date +%s.%N)

python3 - "$OUT" "$t1" "$t2" "$STEPS" <<'EOF'
import json, sys, subprocess
from pathlib import Path
out, t1, t2, steps = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
import jax
from policyfit.common.versions import git_state, library_versions, machine_info
rows = [json.loads(l) for l in (out / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
summary = json.loads((out / "run" / "summary.json").read_text())
evals = [r for r in rows if r.get("eval/normalized_score") is not None]
record = {
    "benchmark": "iql_1m_gpu",
    "device": (out / "device.txt").read_text().strip(),
    "jax_devices": [str(d) for d in jax.devices()],
    "machine": machine_info(),
    "versions": library_versions(),
    "commit": git_state(Path("benchmarks")).get("commit"),
    "steps": steps,
    "wall_seconds_command": t2 - t1,
    "wall_seconds_last_eval": max((r.get("wall_seconds", 0.0) for r in evals), default=None),
    "final_normalized_score": summary.get("final_normalized_score"),
    "best_normalized_score": summary.get("best_normalized_score"),
    "evaluations": [{"step": r.get("step"), "normalized_score": r["eval/normalized_score"], "wall_seconds": r.get("wall_seconds")} for r in evals],
    "reference": "JAX-CORL README: about 9 minutes for 1M IQL updates on a GPU; goal <= 2 minutes",
}
(out / "iql_1m_gpu.json").write_text(json.dumps(record, indent=2) + "\n")
print(json.dumps({k: record[k] for k in ("device", "wall_seconds_command", "final_normalized_score")}))
EOF
