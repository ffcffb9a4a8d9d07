"""The shape-matched limit of a training update: its own matrix products, timed alone (issue 19).

An update's floor on a CPU is the time its matrix products take. This module reads them off the
compiled program (XLA's optimized HLO: every ``dot`` with its operand shapes, batch and
contracting dimensions), times each distinct product alone in XLA and in PyTorch (oneDNN/MKL) on
the same machine, and sums the faster of the two over the update:

    limit_seconds = sum over dots  weight * count * min(t_xla, t_torch)

A dot inside one branch of a ``conditional`` (TD3's delayed actor step: ``lax.cond`` with two
branches) gets weight 1 / number of branches, which is exactly right for a two-branch cond taken
every second update (``policy_freq = 2``, the only conds in the built-in updates); everything else
weight 1. Element-wise work, reductions, Adam and the sampling are not in the limit, so it is a
bound no real update reaches; an update's *fraction of the limit* is ``limit / measured``.

Timing: XLA runs each product ``--reps`` times inside one jitted ``fori_loop`` (no dispatch cost;
the operands pass through ``lax.optimization_barrier`` so the loop cannot hoist the product);
PyTorch calls ``torch.matmul(..., out=)`` in a Python loop, in a worker process of its own (the
d3rlpy venv: ``benchmarks/.venv-d3rlpy``), with 1 and 2 threads, best kept. Best of 3 trials each.

    python benchmarks/gemm_limit.py --algo td3bc         # prints the table for one algorithm
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

_HEADER = re.compile(r"^(?:ENTRY )?%([\w.\-]+) \(.*\) -> .* \{$")
_INSTR = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\w+)\[([\d,]*)\]")
_DOT = re.compile(
    r"^\s*(?:ROOT )?%[\w.\-]+ = (\w+)\[([\d,]*)\]\S* dot\(%([\w.\-]+), %([\w.\-]+)\)(.*)$"
)
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRUE_FALSE = re.compile(r"true_computation=%([\w.\-]+), false_computation=%([\w.\-]+)")


def _dims(text: str, key: str) -> tuple[int, ...]:
    m = re.search(key + r"=\{([\d,]*)\}", text)
    return tuple(int(x) for x in m.group(1).split(",") if x) if m else ()


@dataclass(frozen=True)
class Gemm:
    """One matrix product as XLA's ``dot_general``: operand shapes and dimension numbers."""

    dtype: str
    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    lhs_contracting: tuple[int, ...]
    rhs_contracting: tuple[int, ...]
    lhs_batch: tuple[int, ...]
    rhs_batch: tuple[int, ...]

    @property
    def flops(self) -> int:
        """2 * batch * M * K * N."""
        batch, m, k, n = _bmk(self)
        return 2 * batch * m * k * n

    def label(self) -> str:
        return (
            f"{'x'.join(map(str, self.lhs))} . {'x'.join(map(str, self.rhs))} "
            f"c{list(self.lhs_contracting)}{list(self.rhs_contracting)}"
            + (f" b{list(self.lhs_batch)}" if self.lhs_batch else "")
        )


def gemms_of(hlo_text: str) -> Counter:
    """``{Gemm: weighted count}`` of every dot in an optimized HLO module's text."""
    computations: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        m = _HEADER.match(line)
        if m:
            current = m.group(1)
            computations[current] = []
        elif line.startswith("}"):
            current = None
        elif current is not None:
            computations[current].append(line)
    weight = dict.fromkeys(computations, 1.0)
    for lines in computations.values():
        for line in lines:
            names: list[str] = []
            if m := _BRANCHES.search(line):
                names = [n.strip().lstrip("%") for n in m.group(1).split(",")]
            elif m := _TRUE_FALSE.search(line):
                names = list(m.groups())
            for name in names:
                if name in weight:
                    weight[name] = 1.0 / len(names)
    out: Counter = Counter()
    for comp, lines in computations.items():
        shapes = {}
        for line in lines:
            if m := _INSTR.match(line):
                shapes[m.group(1)] = tuple(int(x) for x in m.group(3).split(",") if x)
        for line in lines:
            m = _DOT.match(line)
            if not m:
                continue
            dtype, _, lhs, rhs, rest = m.groups()
            if lhs not in shapes or rhs not in shapes:
                raise ValueError(f"dot operand shape not found in {comp}: {line.strip()[:120]}")
            g = Gemm(
                dtype,
                shapes[lhs],
                shapes[rhs],
                _dims(rest, "lhs_contracting_dims"),
                _dims(rest, "rhs_contracting_dims"),
                _dims(rest, "lhs_batch_dims"),
                _dims(rest, "rhs_batch_dims"),
            )
            out[g] += weight[comp]
    return out


# --------------------------------------------------------------------------- timing: XLA
def time_xla(g: Gemm, reps: int = 200, trials: int = 3) -> float:
    """Seconds per product, ``reps`` of them in one jitted loop (best of ``trials``)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    dims = ((g.lhs_contracting, g.rhs_contracting), (g.lhs_batch, g.rhs_batch))
    a = jax.random.normal(jax.random.PRNGKey(0), g.lhs, jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), g.rhs, jnp.float32)

    @jax.jit
    def loop(a, b):
        def body(_, carry):
            x, y, _ = carry
            x, y = lax.optimization_barrier((x, y))
            return x, y, lax.dot_general(x, y, dims)

        out = lax.dot_general(a, b, dims)
        return lax.fori_loop(0, reps, body, (a, b, out))[2]

    loop(a, b).block_until_ready()
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        loop(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return best / reps


# --------------------------------------------------------------------------- timing: PyTorch
def _bmk(g: Gemm) -> tuple[int, int, int, int]:
    """(batch, M, K, N) of a product."""

    def prod(shape: tuple[int, ...], idx) -> int:
        return math.prod(shape[i] for i in idx)

    free_a = [i for i in range(len(g.lhs)) if i not in g.lhs_contracting + g.lhs_batch]
    free_b = [i for i in range(len(g.rhs)) if i not in g.rhs_contracting + g.rhs_batch]
    return (
        prod(g.lhs, g.lhs_batch),
        prod(g.lhs, free_a),
        prod(g.lhs, g.lhs_contracting),
        prod(g.rhs, free_b),
    )


def _torch_operands(torch, g: Gemm):
    """Contiguous ``[M, K] @ [K, N]`` (``[B, M, K] @ [B, K, N]`` when batched): PyTorch gets the
    product's shape in its preferred layout; XLA's own layout is what XLA is timed with."""
    batch, m, k, n = _bmk(g)
    if g.lhs_batch:
        return torch.randn(batch, m, k), torch.randn(batch, k, n)
    return torch.randn(m, k), torch.randn(k, n)


def torch_worker(gemms: list[dict], reps: int, trials: int, threads: int) -> list[float]:
    import torch

    torch.set_num_threads(threads)
    out = []
    with torch.no_grad():
        for d in gemms:
            g = Gemm(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
            a, b = _torch_operands(torch, g)
            res = torch.matmul(a, b)
            for _ in range(10):
                torch.matmul(a, b, out=res)
            best = float("inf")
            for _ in range(trials):
                t0 = time.perf_counter()
                for _ in range(reps):
                    torch.matmul(a, b, out=res)
                best = min(best, time.perf_counter() - t0)
            out.append(best / reps)
    return out


def time_torch(gemms: list[Gemm], python: str, reps: int = 200, trials: int = 3) -> dict:
    """``{"seconds": [per gemm, best over 1 and 2 threads], "threads": [...], "torch": version}``."""
    per_threads = {}
    version = None
    for threads in (1, 2):
        proc = subprocess.run(
            [
                python,
                str(Path(__file__).resolve()),
                "--torch-worker",
                str(threads),
                "--reps",
                str(reps),
                "--trials",
                str(trials),
            ],
            input=json.dumps([asdict(g) for g in gemms]),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        reply = json.loads(proc.stdout.strip().splitlines()[-1])
        per_threads[threads] = reply["seconds"]
        version = reply["torch"]
    best = [min(per_threads[1][i], per_threads[2][i]) for i in range(len(gemms))]
    pick = [1 if per_threads[1][i] <= per_threads[2][i] else 2 for i in range(len(gemms))]
    return {"seconds": best, "threads": pick, "torch": version}


def shape_matched_limit(hlo_text: str, torch_python: str | None, reps: int = 200) -> dict:
    """Per-update limit from a compiled update's HLO text (see the module docstring)."""
    gemms = gemms_of(hlo_text)
    order = sorted(gemms, key=lambda g: -g.flops * gemms[g])
    xla = [time_xla(g, reps) for g in order]
    torch = (
        time_torch(order, torch_python, reps)
        if torch_python and Path(torch_python).exists()
        else {"error": "no torch python"}
    )
    rows = []
    for i, g in enumerate(order):
        t_torch = torch["seconds"][i] if "seconds" in torch else None
        best = min(xla[i], t_torch) if t_torch is not None else xla[i]
        rows.append(
            {
                "gemm": g.label(),
                "count": gemms[g],
                "flops": g.flops,
                "xla_seconds": xla[i],
                "torch_seconds": t_torch,
                "xla_gflops": g.flops / xla[i] / 1e9,
                "torch_gflops": None if t_torch is None else g.flops / t_torch / 1e9,
                "best_seconds": best,
            }
        )
    total = sum(r["count"] * r["best_seconds"] for r in rows)
    return {
        "limit_seconds_per_update": total,
        "limit_updates_per_second": 1.0 / total,
        "gemm_flops_per_update": sum(r["count"] * r["flops"] for r in rows),
        "xla_only_seconds": sum(r["count"] * r["xla_seconds"] for r in rows),
        "torch_only_seconds": (
            sum(r["count"] * r["torch_seconds"] for r in rows) if "seconds" in torch else None
        ),
        "torch": torch.get("torch"),
        "torch_error": torch.get("error"),
        "gemms": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="td3bc")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--torch-python", default=str(HERE / ".venv-d3rlpy" / "bin" / "python"))
    parser.add_argument("--torch-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker is not None:
        import torch

        gemms = json.loads(sys.stdin.read())
        seconds = torch_worker(gemms, args.reps, args.trials, args.torch_worker)
        print(json.dumps({"seconds": seconds, "torch": torch.__version__}))
        return
    sys.path.insert(0, str(HERE))
    from throughput import compiled_update_text, hopper_dataset

    limit = shape_matched_limit(
        compiled_update_text(hopper_dataset(), args.algo), args.torch_python, args.reps
    )
    print(
        f"{args.algo}: limit {limit['limit_updates_per_second']:.0f} upd/s "
        f"({1e3 * limit['limit_seconds_per_update']:.2f} ms; GEMM "
        f"{limit['gemm_flops_per_update'] / 1e9:.2f} GFLOP)"
    )
    for r in limit["gemms"]:
        tt = "n/a" if r["torch_gflops"] is None else f"{r['torch_gflops']:.0f}"
        print(
            f"  {r['count']:4.1f} x {r['gemm']:40s} XLA {r['xla_gflops']:6.0f}  torch {tt:>6s} GFLOP/s"
        )


if __name__ == "__main__":
    main()
