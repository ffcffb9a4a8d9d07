"""Newer jax on this CPU: the update speed and the XLA hang, per jax version (issue 19).

Speed: each interpreter (a venv holding one jax version, ``PYTHONPATH=src`` so the same policyfit
sources run) times the fused training updates of ``--algos`` on ``throughput.py``'s data and three
of its matrix products alone; the reference interpreter (the pinned jax) runs right before each
one, so every version is compared with the pin under the same machine load (ratio in one pair).

Hang: ``pyproject.toml`` pins ``jax<0.7`` because jax/jaxlib 0.10.2 hung training on the CPU (README,
"Known issue"). Session 10 re-checked it on a quiet machine: it is not about load. A single
``policyfit train riql`` (or ``iql --set n_critics=5``) on an idle 2-core Intel Xeon hangs for good
at its first ``device_get``; the worker threads of XLA's Eigen pool all wait for work while the
main thread waits for a buffer that never becomes ready (gdb). The smallest program found that
does the same is :data:`PROGRAM`: the jitted init of policyfit's 5-member ``EnsembleCritic`` (a
flax ``nn.vmap`` of MLPs with orthogonal init), its optax Adam state and a second reference to the
same parameters (a target network). With 2 members, or without either the Adam state or the
target, it finishes; so does the same program with a plain flax critic of default init, and a
vmapped orthogonal init alone (with or without the aliasing).

Each given interpreter runs the program ``--tries`` times in a fresh process with a
``--timeout``; a run that times out counts as a hang.

Results accumulate in ``results/jax_versions[_hang]_<cpu kind>.{json,md}``: a run adds its
variants' rows to those already there, and a variant measured again replaces its own row.

    python benchmarks/jax_versions.py /work/venv-jax-0.7.2/bin/python /work/venv-jax-0.10.2/bin/python
    python benchmarks/jax_versions.py .venv/bin/python::--xla_cpu_use_onednn=true   # a flag
    # a venv per version: python3.11 -m venv V && V/bin/pip install jax==X jaxlib==X flax optax \
    #   scipy "gymnasium[mujoco]<1.4" h5py minari rich msgpack click pyyaml matplotlib
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROGRAM = """
import jax, jax.numpy as jnp, optax
from policyfit.nn.modules import EnsembleCritic  # flax nn.vmap of MLPs, orthogonal init

def init(key, n):
    params = EnsembleCritic((256, 256), n).init(key, jnp.zeros((1, 11)), jnp.zeros((1, 3)))
    return {"critic": params, "target": params, "opt": optax.adam(3e-4).init(params)}

out = jax.jit(init, static_argnums=1)(jax.random.PRNGKey(0), N)
jax.block_until_ready(out)
print(jax.__version__)
"""


def split_variant(variant: str) -> tuple[str, str]:
    """``PYTHON`` or ``PYTHON::XLA_FLAGS`` -> (python, flags)."""
    python, _, flags = variant.partition("::")
    return python, flags


def _env(flags: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), "PYTHONWARNINGS": "ignore"}
    env["XLA_FLAGS"] = flags if flags else env.get("XLA_FLAGS", "")
    return env


def run(variant: str, members: int, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [split_variant(variant)[0], "-c", PROGRAM.replace("N)", f"{members})")],
            env=_env(split_variant(variant)[1]),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"hang": True, "seconds": timeout}
    return {
        "hang": False,
        "seconds": time.perf_counter() - t0,
        "jax": proc.stdout.strip() or None,
        "error": None if proc.returncode == 0 else proc.stderr.strip().splitlines()[-1:],
    }


UPDATES = {"td3bc": 2000, "iql": 2000, "cql": 300}


def speed_worker(algos: list[str]) -> dict:
    """Inside one interpreter: updates/s of each algorithm, GFLOP/s of three products alone."""
    sys.path.insert(0, str(HERE))
    import jax
    from gemm_limit import Gemm, time_xla
    from throughput import hopper_dataset, policyfit_throughput

    gemms = {
        "256x256x256": Gemm("f32", (256, 256), (256, 256), (1,), (0,), (), ()),
        "2x(256x256x256)": Gemm("f32", (2, 256, 256), (2, 256, 256), (2,), (1,), (0,), (0,)),
        "2x(7680x256x256)": Gemm("f32", (2, 7680, 256), (2, 256, 256), (2,), (1,), (0,), (0,)),
    }
    out = {
        "jax": jax.__version__,
        "gflops": {k: g.flops / time_xla(g, reps=50) / 1e9 for k, g in gemms.items()},
    }
    ds = hopper_dataset()
    for algo in algos:
        fuse = min(250, UPDATES.get(algo, 1000))
        r = policyfit_throughput(ds, algo, UPDATES.get(algo, 1000), fuse)
        out[algo] = {"updates_per_second": r["updates_per_second"], "compile": r["compile_seconds"]}
    return out


def speed(variant: str, algos: list[str]) -> dict:
    python, flags = split_variant(variant)
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--speed-worker", ",".join(algos)],
        capture_output=True,
        text=True,
        env=_env(flags),
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(payload: dict) -> str:
    # rows accumulate over runs that may have timed different algorithms: the union, "—" if absent
    algos = list(dict.fromkeys(a for row in payload["rows"] for a in _row_algos(row)))
    lines = [
        f"# jax versions on this CPU ({payload['machine']['cpu']}, "
        f"{payload['machine']['cpu_count']} cores)",
        "",
        "Each row: that version's fused-update speed and matrix-product GFLOP/s, and in brackets "
        "the ratio to the pinned jax measured right before it (same load). The hang is checked "
        "separately (`--no-speed`, the reproduction in `PROGRAM`): "
        "`jax_versions_hang_<cpu kind>.{json,md}`.",
        "",
        "| jax | "
        + " | ".join(f"{a} upd/s (× pin)" for a in algos)
        + " | "
        + " | ".join(f"{g} GFLOP/s" for g in payload["gemm_names"])
        + " | load |",
        "|---|" + "---|" * (len(algos) + len(payload["gemm_names"]) + 1),
    ]
    for row in payload["rows"]:
        new, ref = row["speed"], row["reference_speed"]
        if "error" in new or "error" in ref:
            lines.append(f"| {row['jax']} | error: {new.get('error') or ref.get('error')} |")
            continue
        cells = [
            f"{new[a]['updates_per_second']:.1f} ({new[a]['updates_per_second'] / ref[a]['updates_per_second']:.2f}×)"
            if a in new and a in ref
            else "—"
            for a in algos
        ]
        cells += [
            f"{new['gflops'][g]:.0f} (pin {ref['gflops'][g]:.0f})" for g in payload["gemm_names"]
        ]
        lines.append(f"| {row['jax']} | " + " | ".join(cells) + f" | {row['load']:.1f} |")
    dates = sorted({row["date"] for row in payload["rows"] if "date" in row})
    if dates:
        lines += ["", f"Measured on {', '.join(dates)}; a rerun of a variant replaces its row."]
    return "\n".join(lines) + "\n"


def _row_algos(row: dict) -> list[str]:
    speed = row.get("speed", {})
    return [a for a in speed if a != "gflops" and isinstance(speed[a], dict)]


def merged_rows(path: Path, rows: list[dict]) -> list[dict]:
    """The rows already in ``path`` (earlier runs, other variants) followed by ``rows``; a variant
    measured again (same ``jax`` label) keeps only its new row."""
    old = json.loads(path.read_text()).get("rows", []) if path.is_file() else []
    labels = {r["jax"] for r in rows}
    return [r for r in old if r["jax"] not in labels] + rows


def hang_markdown(payload: dict) -> str:
    lines = [
        f"# The XLA CPU hang, per jax version ({payload['machine']['cpu']})",
        "",
        f"`PROGRAM` ({payload['members']}-member `EnsembleCritic` init with its Adam state and a "
        "target reference), each try a fresh process; a try that outlives its timeout is a hang.",
        "",
        "| jax | hangs / tries | seconds per finished try |",
        "|---|---|---|",
    ]
    for row in payload["rows"]:
        done = [r["seconds"] for r in row["runs"] if not r["hang"]]
        secs = ", ".join(f"{x:.1f}" for x in done) or "—"
        lines.append(f"| {row['jax']} | {row['hangs']} / {row['tries']} | {secs} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "pythons",
        nargs="*",
        help="interpreters, one per jax version; PYTHON::XLA_FLAGS runs it with those flags",
    )
    parser.add_argument("--reference", default=sys.executable, help="the pinned jax's python")
    parser.add_argument("--algos", default="td3bc,iql,cql")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--no-speed", action="store_true", help="only the hang reproduction")
    parser.add_argument(
        "--table-only", action="store_true", help="rewrite the markdown from the results JSON"
    )
    parser.add_argument("--speed-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_worker:
        print(json.dumps(speed_worker(args.speed_worker.split(","))))
        return
    sys.path.insert(0, str(HERE))
    from common import cpu_kind, machine, write_result, write_text

    if args.table_only:
        for name in (f"jax_versions_{cpu_kind()}", f"jax_versions_hang_{cpu_kind()}"):
            path = HERE / "results" / f"{name}.json"
            if path.exists():
                payload = json.loads(path.read_text())
                text = hang_markdown(payload) if "hang" in name else markdown(payload)
                write_text(HERE / "results" / f"{name}.md", text)
        return
    algos = args.algos.split(",")
    rows = []
    for python in [args.reference, *args.pythons]:
        version = subprocess.run(
            [split_variant(python)[0], "-c", "import jax; print(jax.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip() + (f" {split_variant(python)[1]}" if split_variant(python)[1] else "")
        runs = [run(python, args.members, args.timeout) for _ in range(args.tries)]
        row = {
            "python": python,
            "jax": version,
            "date": time.strftime("%Y-%m-%d"),
            "tries": args.tries,
            "hangs": sum(r["hang"] for r in runs),
            "runs": runs,
        }
        if not args.no_speed and python != args.reference:
            row["reference_speed"] = speed(args.reference, algos)
            row["speed"] = speed(python, algos)
            row["load"] = os.getloadavg()[0]
        print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
        rows.append(row)
    name = f"jax_versions{'_hang' if args.no_speed else ''}_{cpu_kind()}"
    kept = [r for r in rows if "speed" in r] if not args.no_speed else rows
    payload = {
        "algos": algos,
        "members": args.members,
        "gemm_names": ["256x256x256", "2x(256x256x256)", "2x(7680x256x256)"],
        "machine": machine(),
        "rows": merged_rows(HERE / "results" / f"{name}.json", kept),
        "hang_only": [r for r in rows if "speed" not in r],
    }
    write_result(name, payload)
    text = hang_markdown(payload) if args.no_speed else markdown(payload)
    write_text(HERE / "results" / f"{name}.md", text)


if __name__ == "__main__":
    main()
