"""``policyfit sweep | compare``: many trainings at once, and their aggregate scores.

* ``sweep SPEC.yaml --out DIR [--jobs N] [--engine ray] [--address ADDR]`` — a grid of trainings
  in a local process pool (default) or as Ray tasks;
* ``compare RUN ...`` — mean, median, IQM and optimality gap with stratified-bootstrap intervals.

(``ope`` and ``certify`` live in :mod:`policyfit.cli.offpolicy`.)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from policyfit.common.files import dumps


def register(group: click.Group) -> None:
    for command in (sweep_command, compare_command):
        group.add_command(command)


def _echo_json(value: Any) -> None:
    click.echo(dumps(value, indent=None))


def _aggregate_lines(result: dict[str, Any]) -> list[str]:
    from policyfit.evaluation.stats import format_interval

    lines = [
        f"score: {result['score']} ({result['runs']} runs); 95% stratified-bootstrap intervals",
        "| variant | datasets | mean | median | IQM | optimality gap |",
        "|---|---|---|---|---|---|",
    ]
    for variant, agg in result["aggregates"].items():
        cells = [
            format_interval(agg[m]["estimate"], agg[m]["ci_low"], agg[m]["ci_high"])
            for m in ("mean", "median", "iqm", "optimality_gap")
        ]
        lines.append(f"| {variant} | {result['tasks'][variant]} | " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------- sweep
@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Sweep directory.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Trials side by side (default: one per CPU, at most one per trial).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="local: a process pool on this machine (default); ray: Ray tasks (default with --address).",
)
@click.option("--address", default=None, help="Join an existing Ray cluster (HOST:PORT or auto).")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, hidden=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def sweep_command(
    spec: str,
    out: str,
    jobs: int | None,
    engine: str | None,
    address: str | None,
    num_cpus: int | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Train every algorithm x dataset x override x seed of SPEC, JOBS trials at a time.

    Trials run in worker processes on this machine (no Ray needed), or as Ray tasks with
    --engine ray / --address. A failed trial is reported at the end (exit code 1); the others go
    on. Finished trials (summary.json with the same algorithm, seed, config and steps) are
    skipped on re-run; interrupted ones resume from their checkpoints. Results go to
    OUT/results.md, results.csv, results.json and profiles.png; trial T to OUT/trials/T/.

    \b
    Example SPEC.yaml:
      algorithms: [iql, td3bc]
      datasets: [hopper-medium, data/walker.hdf5]   # names or paths
      seeds: [0, 1, 2]
      steps: 100000
      eval_episodes: 10
      eval_every: 0                                 # 0: evaluate at the end only
      overrides: {iql: {expectile: [0.7, 0.9]}}     # a grid per algorithm
      config: {td3bc: {alpha: 2.5}}                 # fixed values per algorithm

    \b
      policyfit sweep sweep.yaml --out sweeps/demo --jobs 4
      policyfit sweep sweep.yaml --out sweeps/demo --engine ray --address auto
    """
    from policyfit.sweep import read_spec, run_sweep

    parsed = read_spec(spec)
    log = None if as_json else click.echo
    progress = not (no_progress or as_json) and sys.stderr.isatty()
    result = run_sweep(
        parsed,
        out,
        engine=engine,
        jobs=jobs if jobs is not None else num_cpus,
        address=address,
        log=log,
        progress=progress,
    )
    failed = [r for r in result["rows"] if r.get("status") == "failed"]
    if as_json:
        _echo_json(result)
    else:
        click.echo("\n".join(_aggregate_lines(result)))
        for r in failed:
            click.echo(f"failed: {r['trial_id']}: {r.get('error', '')}", err=True)
        click.echo(f"results: {Path(out) / 'results.md'}")
    if failed:
        click.echo(
            f"{len(failed)} of {result['trials']} trials failed (OUT/trials/<trial>/error.txt "
            "has the traceback); rerun to retry them",
            err=True,
        )
        click.get_current_context().exit(1)


# --------------------------------------------------------------------------- compare
@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--out", default=None, type=click.Path(file_okay=False), help="Also write results files here."
)
@click.option("--reps", type=int, default=2000, show_default=True, help="Bootstrap replicates.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare_command(runs: tuple[str, ...], out: str | None, reps: int, as_json: bool) -> None:
    """Aggregate finished RUNS (run directories or sweep outputs) by algorithm over datasets."""
    from policyfit.sweep.results import compare_runs, write_results

    result = compare_runs(runs, reps=reps)
    if out:
        write_results(out, result["rows"], reps=reps)
    if as_json:
        _echo_json(result)
        return
    click.echo("\n".join(_aggregate_lines(result)))
