#!/usr/bin/env bash
# The corruption benchmark's CQL column on one lent GPU machine, trials side by side.
#
# A 30k-update CQL trial takes about 70 min on the 2-core CI machine (about 18 CPU-hours for the
# column), so the CQL trials of benchmarks/results/corruption.json were trained on a GPU with
# this script, and so were seeds 2 and 3 of every algorithm; seeds 0 and 1 of the others ran on
# the CPU. Same code, budget and config; each trial's summary.json records the device
# ("gpu: NVIDIA H200"). JAX's default float32 matmul precision on that GPU uses TF32 tensor
# cores; the CPU computes in full float32.
#
# The GPU machine has no network. It needs, in the repository root:
#   .whl/                          wheels (cp312) of what its image lacks: gymnasium,
#                                  farama-notifications, mujoco, mujoco-core, glfw, pyopengl, minari
#   .carry/policyfit_home.tar.xz   a POLICYFIT_HOME holding the three clean medium-replay datasets
#                                  and the cached adversarial critic, made here with
#     tar cf - -C ~/.cache/policyfit datasets/policyfit/{walker2d,hopper,halfcheetah}-medium-replay-v0 \
#       critics | xz -6 > .carry/policyfit_home.tar.xz
# Results: $OUT/gpu_runs.tgz (each trial's summary, config and metrics; policies with POLICIES=1),
# unpacked into benchmarks/work/corruption/ here and tabulated with --table-only.
# Session 4 ran `MINUTES=6 LIMIT=520 JOBS=16 benchmarks/corruption_gpu.sh` on an H200: the 32 CQL
# trials (seeds 0-1) in 6 min, 16 side by side, about 180 s each; then seeds 2 and 3 of all five
# algorithms (seed 3 in a second call on the same machine; 4 of its 80 trials did not finish).
#
# Env: MINUTES (start no CQL trial after this many minutes, default 5), JOBS (default 16),
#      LIMIT (seconds for all training, default 480), EXTRA (more corruption.py arguments for the
#      CQL column), EXTRA_SEEDS (seeds of every algorithm for the time left, default "2 3"),
#      POLICIES (1: also bring back the trained policies).
set -u
OUT=${OUT:-/tmp/policyfit-gpu-out}
MINUTES=${MINUTES:-5}
JOBS=${JOBS:-16}
LIMIT=${LIMIT:-480}
mkdir -p "$OUT"
t0=$(date +%s)

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export POLICYFIT_HOME=/tmp/policyfit-home
mkdir -p "$POLICYFIT_HOME" && tar xJf .carry/policyfit_home.tar.xz -C "$POLICYFIT_HOME" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax, gymnasium, mujoco; \
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())" \
  || exit 1

# MPS lets the trials' small kernels run side by side; without it they take turns.
if nvidia-cuda-mps-control -d 2>/dev/null; then
  if timeout 60 python3 -c "import jax.numpy as j; print('MPS on:', float(j.ones(3).sum()))"; then
    :
  else
    echo quit | nvidia-cuda-mps-control
    echo "MPS off: a client could not start"
  fi
fi
echo "setup took $(($(date +%s) - t0)) s"

grid() {  # grid SECONDS MINUTES ARGS...: one corruption.py run on the GPU workdir
  local seconds=$1 minutes=$2
  shift 2
  timeout "$seconds" python3 benchmarks/corruption.py \
    --datasets walker2d-medium-replay hopper-medium-replay halfcheetah-medium-replay \
    --adversarial walker2d-medium-replay --steps 30000 --set cql.bc_steps=3000 \
    --save-every 10000 --jobs "$JOBS" --stop-after "$minutes" \
    --workdir benchmarks/work/corruption-gpu --name corruption-gpu "$@" 2>&1 \
    | grep --line-buffered -v "^\s*$" | tee -a "$OUT/grid.log"
}
t_grid=$(date +%s)
grid "$LIMIT" "$MINUTES" --algos cql --seeds 0 1 ${EXTRA:-}
# Time left: more seeds of every algorithm (CQL first), one seed at a time.
for seed in ${EXTRA_SEEDS:-2 3}; do
  left=$((LIMIT - ($(date +%s) - t_grid)))
  [ "$left" -gt 150 ] || break
  echo "seed $seed of every algorithm: ${left} s left"
  grid "$left" "$(awk "BEGIN {print ($left - 120) / 60}")" --algos cql riql iql td3bc bc --seeds "$seed"
done

# What comes back is at most 8 files of 16 MB, 64 MB in all: the runs' records in one archive
# (what the table needs); with POLICIES=1 also their policies in 12 MB parts
# (cat gpu_policies.tgz.part* | tar xzf -), about 0.4 MB a trial, so about 90 trials at most.
# Checkpoints stay behind.
cd benchmarks/work/corruption-gpu || exit 1
find runs \( -name summary.json -o -name config.json -o -name metrics.jsonl \) \
  | tar czf "$OUT/gpu_runs.tgz" -T -
if [ "${POLICIES:-0}" = 1 ]; then
  find runs -path '*/policy/*' | tar cf - -T - | gzip -1 | split -b 12m -d - "$OUT/gpu_policies.tgz.part"
fi
cp ../../results/corruption-gpu.md "$OUT/" 2>/dev/null
echo "finished trials: $(tar tzf "$OUT/gpu_runs.tgz" | grep -c summary.json); total $(($(date +%s) - t0)) s"
