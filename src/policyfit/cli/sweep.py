"""``policyfit sweep | compare | ope | certify``: scale-out and honest evaluation.

* ``sweep SPEC.yaml --out DIR [--address ADDR]`` — a grid of trainings as Ray tasks;
* ``compare RUN ...`` — mean, median, IQM and optimality gap with stratified-bootstrap intervals;
* ``ope RUN --dataset D`` — Fitted Q Evaluation of the run's policy on logged data;
* ``certify RUN --sigma S --budget B`` — policy smoothing certificates under ℓ2 attacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from policyfit.errors import PolicyfitError


def register(group: click.Group) -> None:
    for command in (sweep_command, compare_command, ope_command, certify_command):
        group.add_command(command)


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file next to ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, default=_jsonable))


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


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
@click.option("--address", default=None, help="Join an existing Ray cluster (HOST:PORT or auto).")
@click.option("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def sweep_command(
    spec: str, out: str, address: str | None, num_cpus: int | None, as_json: bool
) -> None:
    """Train every algorithm x dataset x seed x override of SPEC as Ray tasks.

    Finished trials (with summary.json) are skipped on re-run; interrupted ones resume. Results go
    to OUT/results.md, results.csv, results.json and profiles.png.
    """
    from policyfit.sweep import read_spec, run_sweep

    parsed = read_spec(spec)
    log = None if as_json else click.echo
    result = run_sweep(parsed, out, address=address, num_cpus=num_cpus, log=log)
    if as_json:
        _echo_json(result)
        return
    click.echo("\n".join(_aggregate_lines(result)))
    failed = [r for r in result["rows"] if r.get("status") == "failed"]
    for r in failed:
        click.echo(f"failed: {r['trial_id']}: {r.get('error', '')}", err=True)
    click.echo(f"results: {Path(out) / 'results.md'}")


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


# --------------------------------------------------------------------------- ope
@click.command("ope")
@click.argument("run_dir")
@click.option("--dataset", "dataset", required=True, help="Logged data to evaluate the policy on.")
@click.option("--iterations", type=int, default=None, help="FQE gradient steps (default 30000).")
@click.option(
    "--bootstrap", type=int, default=None, help="Bootstrap fits for the interval (default 4)."
)
@click.option("--discount", type=float, default=None, help="gamma of FQE (default 0.99).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ope_command(
    run_dir: str,
    dataset: str,
    iterations: int | None,
    bootstrap: int | None,
    discount: float | None,
    seed: int,
    as_json: bool,
) -> None:
    """Estimate RUN_DIR's policy value from DATASET alone (Fitted Q Evaluation)."""
    import dataclasses

    import policyfit
    from policyfit.evaluation.ope import FQEConfig, fitted_q_evaluation, policy_act_fn

    changes = {
        k: v
        for k, v in {"iterations": iterations, "bootstrap": bootstrap, "discount": discount}.items()
        if v is not None
    }
    cfg = dataclasses.replace(FQEConfig(), **changes)
    if cfg.iterations % cfg.fuse:
        cfg = dataclasses.replace(cfg, fuse=_divisor_fuse(cfg.iterations))
    policy = policyfit.load_policy(run_dir)
    ds = policyfit.load_dataset(dataset)
    if ds.observation_dim != policy.observation_dim:
        raise PolicyfitError(
            f"the dataset has {ds.observation_dim}-dimensional observations, the policy expects "
            f"{policy.observation_dim}",
            path=dataset,
            field="observations",
        )
    res = fitted_q_evaluation(ds, policy_act_fn(policy), config=cfg, seed=seed)
    # Kept with the run (one entry per dataset, the latest wins) so `policyfit report RUN` shows
    # the off-policy estimate beside the simulator's score.
    store = Path(run_dir) / "ope.json"
    try:
        entries = json.loads(store.read_text())["estimates"] if store.is_file() else []
    except (ValueError, KeyError, TypeError):
        entries = []
    entry = {"dataset": dataset, "dataset_fingerprint": ds.fingerprint()[:16], **res.to_dict()}
    entries = [e for e in entries if e.get("dataset") != dataset] + [entry]
    _write_atomic(store, json.dumps({"estimates": entries}, default=_jsonable, indent=2).encode())
    if as_json:
        _echo_json({"run": run_dir, "dataset": dataset, **res.to_dict()})
        return
    from policyfit.evaluation.stats import format_interval

    click.echo(
        f"FQE (gamma={res.discount:g}, {len(res.fit_values)} fits) of {run_dir} on {dataset}:"
    )
    click.echo(f"  discounted value J: {format_interval(res.value, *res.value_ci, digits=2)}")
    click.echo(
        f"  return estimate:    {format_interval(res.return_estimate, *res.return_ci)} "
        f"(episode length ~{res.episode_length:.0f} of {res.horizon})"
    )
    if res.normalized_score is not None and res.normalized_ci is not None:
        click.echo(
            f"  normalized score:   {format_interval(res.normalized_score, *res.normalized_ci)}"
        )
    if not res.in_bounds:
        lo, hi = res.value_bounds
        click.echo(
            f"warning: J lies outside [{lo:.1f}, {hi:.1f}], the range any policy's value can take "
            "with these rewards: FQE is extrapolating (the policy likely acts outside the data)",
            err=True,
        )


def _divisor_fuse(iterations: int) -> int:
    for fuse in (500, 250, 200, 100, 50, 25, 20, 10, 5, 4, 2, 1):
        if iterations % fuse == 0:
            return fuse
    return 1


# --------------------------------------------------------------------------- certify
@click.command("certify")
@click.argument("run_dir")
@click.option(
    "--sigma",
    "sigmas",
    type=float,
    multiple=True,
    required=True,
    help="Smoothing noise std (repeatable).",
)
@click.option(
    "--budget", type=float, required=True, help="Total ℓ2 attack budget B over an episode."
)
@click.option(
    "--episodes", type=int, default=100, show_default=True, help="Clean smoothed episodes m."
)
@click.option("--attack-episodes", type=int, default=None, help="Attacked episodes (default m/2).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="1 - confidence.")
@click.option(
    "--floor",
    type=float,
    default=None,
    help="A lower bound of every episode's return (default: the smallest clean return; see docs).",
)
@click.option(
    "--env", "env_id", default=None, help="Environment id (default: the run's dataset's)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", "plot", default=None, type=click.Path(dir_okay=False), help="Write the plot (PNG)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def certify_command(
    run_dir: str,
    sigmas: tuple[float, ...],
    budget: float,
    episodes: int,
    attack_episodes: int | None,
    alpha: float,
    floor: float | None,
    env_id: str | None,
    seed: int,
    plot: str | None,
    as_json: bool,
) -> None:
    """Certified lower bound on RUN_DIR's smoothed-policy return under ℓ2 observation attacks."""
    import policyfit
    from policyfit.training.rundir import RunDir
    from policyfit.evaluation.certify import (
        certify_policy,
        format_certificate_table,
        plot_certificate,
    )
    from policyfit.evaluation.stats import figure_png_bytes

    if any(s <= 0 for s in sigmas):
        raise PolicyfitError("every --sigma must be > 0", field="sigma")
    if not 0 < alpha < 1:
        raise PolicyfitError("must be in (0, 1)", field="alpha")
    env_id = env_id or RunDir(run_dir).read_config().get("dataset", {}).get("env_id")
    if not env_id:
        raise PolicyfitError("the run's dataset names no environment; pass --env", field="env")
    policy = policyfit.load_policy(run_dir)
    report = certify_policy(
        policy,
        env_id,
        list(sigmas),
        budget,
        episodes=episodes,
        attack_episodes=attack_episodes,
        alpha=alpha,
        floor=floor,
        seed=seed,
    )
    png = figure_png_bytes(plot_certificate(report))
    if plot:
        Path(plot).parent.mkdir(parents=True, exist_ok=True)
        Path(plot).write_bytes(png)
    # Kept with the run so `policyfit report RUN` shows the certificate next to the learning curves.
    _write_atomic(Path(run_dir) / "certificate.png", png)
    _write_atomic(
        Path(run_dir) / "certificate.json",
        json.dumps(report.to_dict(), default=_jsonable).encode(),
    )
    if as_json:
        _echo_json({"run": run_dir, **report.to_dict(), "plot": plot})
        return
    what = "E[R]" if report.floor_kind == "given" else "E[max(R, smallest clean return)]"
    click.echo(
        f"{env_id}: certified lower bound on {what} under any ℓ2 attack of total budget B "
        f"(confidence {1 - alpha:g}, m={episodes})"
    )
    click.echo(format_certificate_table(report))
    for row in report.rows:
        if not row["bound_below_attack"]:
            click.echo(
                f"warning: sigma={row['sigma']:g}: bound above the attacked return", err=True
            )
    if plot:
        click.echo(f"plot: {plot}")
