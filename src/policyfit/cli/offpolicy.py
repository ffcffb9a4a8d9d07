"""``policyfit ope | certify``: off-policy estimates and robustness certificates of a trained run.

* ``ope RUN --dataset D`` — Fitted Q Evaluation of the run's policy on logged data, kept with the
  run (``ope.json``, one entry per dataset) so ``policyfit report RUN`` shows it;
* ``certify RUN --sigma S --budget B`` — policy smoothing certificates under ℓ2 observation
  attacks, kept with the run (``certificate.json`` and ``certificate.png``).

Both read and write the run's files through :class:`policyfit.training.rundir.RunDir`.
"""

from __future__ import annotations

from typing import Any

import click

from policyfit.common.files import atomic_write_bytes, check_writable, dumps
from policyfit.errors import PolicyfitError
from policyfit.training.rundir import RunDir


def register(group: click.Group) -> None:
    for command in (ope_command, certify_command):
        group.add_command(command)


def _echo_json(value: Any) -> None:
    click.echo(dumps(value, indent=None))


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
    from policyfit.evaluation.ope import FQEConfig, fitted_q_evaluation

    changes = {
        k: v
        for k, v in {"iterations": iterations, "bootstrap": bootstrap, "discount": discount}.items()
        if v is not None
    }
    cfg = dataclasses.replace(FQEConfig(), **changes)
    if cfg.iterations % cfg.fuse:
        cfg = dataclasses.replace(cfg, fuse=_divisor_fuse(cfg.iterations))
    policy = policyfit.load_policy(run_dir)
    check_writable(run_dir, "run")  # ope.json goes there, after minutes of FQE
    ds = policyfit.load_dataset(dataset)
    if ds.observation_dim != policy.observation_dim:
        raise PolicyfitError(
            f"the dataset has {ds.observation_dim}-dimensional observations, the policy expects "
            f"{policy.observation_dim}",
            path=dataset,
            field="observations",
        )
    res = fitted_q_evaluation(ds, policy, config=cfg, seed=seed)
    # Kept with the run (one entry per dataset, the latest wins) so `policyfit report RUN` shows
    # the off-policy estimate beside the simulator's score.
    entry = {"dataset": dataset, "dataset_fingerprint": ds.fingerprint()[:16], **res.to_dict()}
    RunDir(run_dir).write_ope(entry)
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
    check_writable(run_dir, "run")  # certificate.json goes there, after the rollouts
    if plot:
        check_writable(plot)
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
        atomic_write_bytes(plot, png)
    # Kept with the run so `policyfit report RUN` shows the certificate next to the learning curves.
    RunDir(run_dir).write_certificate(report.to_dict(), png)
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
