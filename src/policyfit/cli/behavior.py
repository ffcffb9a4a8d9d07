"""``policyfit behavior``: train the suite's SAC behavior policies and export them into the package."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("behavior")
def behavior() -> None:
    """Train behavior policies online with SAC (the built-in suite's data sources)."""


@behavior.command("train")
@click.argument("env_id")
@click.option("--steps", type=int, default=1_000_000, show_default=True, help="Environment steps.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
@click.option(
    "--stop-at", type=float, default=None, help="Stop once the normalized eval score reaches this."
)
@click.option(
    "--start-steps", type=int, default=None, help="Uniform-random warm-up steps (default 5000)."
)
@click.option(
    "--eval-every", type=int, default=None, help="Evaluation and snapshot cadence (default 10000)."
)
@click.option(
    "--checkpoint-every", type=int, default=None, help="Checkpoint cadence (default 25000)."
)
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
def train_cmd(
    env_id,
    steps,
    out,
    seed,
    resume,
    stop_at,
    start_steps,
    eval_every,
    checkpoint_every,
    no_progress,
):
    """Train SAC on ENV_ID, such as Hopper-v5, for --steps environment steps.

    \b
    policyfit behavior train Hopper-v5 --steps 1000000 --out runs/behavior/hopper
    policyfit behavior train Hopper-v5 --steps 1000000 --out runs/behavior/hopper --resume
    """
    from policyfit.training.behavior import train_behavior

    overrides = {}
    if stop_at is not None:
        overrides["stop_at_score"] = stop_at
    for key, value in (
        ("start_steps", start_steps),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
    ):
        if value is not None:
            overrides[key] = value
    summary = train_behavior(
        env_id,
        steps=steps,
        out=out,
        seed=seed,
        resume=resume,
        progress=not no_progress,
        **overrides,
    )
    click.echo(json.dumps(summary, indent=1))


@behavior.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(run_dir, as_json):
    """Steps trained, latest and best evaluation of a behavior-training RUN_DIR."""
    from policyfit.training.behavior_export import read_snapshots

    snaps = read_snapshots(run_dir)
    best = max(snaps, key=lambda r: r["return_mean"])
    info = {
        "run_dir": str(run_dir),
        "steps": snaps[-1]["step"],
        "latest": {k: snaps[-1].get(k) for k in ("step", "return_mean", "normalized_score")},
        "best": {k: best.get(k) for k in ("step", "return_mean", "normalized_score")},
        "snapshots": len(snaps),
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    for key in ("latest", "best"):
        rec = info[key]
        score = rec.get("normalized_score")
        click.echo(
            f"{key:>6}: step {rec['step']:>8}  return {rec['return_mean']:9.1f}"
            + (f"  normalized {score:6.1f}" if score is not None else "")
        )


def register(group: click.Group) -> None:
    """Attach ``policyfit behavior`` to the top-level command group."""
    group.add_command(behavior)


@behavior.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="Default: the package.")
@click.option("--medium-fraction", type=float, default=1 / 3, show_default=True)
@click.option("--replay-snapshots", type=int, default=10, show_default=True)
@click.option("--episodes", type=int, default=10, show_default=True, help="Evaluation episodes.")
@click.option(
    "--replay-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A re-run of the same training with denser snapshots, for medium-replay.",
)
def export_cmd(run_dir, dest, medium_fraction, replay_snapshots, episodes, replay_from):
    """Choose random/medium/expert/medium-replay snapshots of RUN_DIR and ship them.

    Writes the weights (msgpack) and their measured normalized scores (policies.json) into
    policyfit/envs/policies/ (or --dest).
    """
    from policyfit.training.behavior_export import export_policies

    entry = export_policies(
        run_dir,
        dest=dest,
        medium_fraction=medium_fraction,
        n_replay=replay_snapshots,
        eval_episodes=episodes,
        replay_from=replay_from,
    )
    for kind, rec in entry["policies"].items():
        click.echo(
            f"{entry['env_id']} {kind:>7}: step {rec['step']:>8}  return {rec['return_mean']:9.1f}"
            f"  normalized {rec['normalized_score']:6.1f}"
        )
    steps = [r["step"] for r in entry["medium_replay"]]
    click.echo(f"medium-replay: {len(steps)} snapshots {steps}, size {entry['medium_replay_size']}")
