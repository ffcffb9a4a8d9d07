"""``policyfit behavior``: train the suites' behavior policies and ship them into the package.

SAC for the continuous suite (``train``, ``status``, ``export``); the paper's online DQN for the
discrete suite (``dqn``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("behavior")
def behavior() -> None:
    """Train behavior policies online (the built-in suites' data sources).

    \b
    SAC (continuous suite): policyfit behavior train / status / export
    DQN (discrete suite):   policyfit behavior dqn KEY
    """


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
    from policyfit.common.files import check_writable
    from policyfit.training.behavior import train_behavior

    if out is not None:
        check_writable(out)
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
    from policyfit.common.files import check_writable
    from policyfit.envs.shipped import POLICIES_DIR
    from policyfit.training.behavior_export import export_policies

    check_writable(dest if dest is not None else POLICIES_DIR, "dest")
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


@behavior.command("dqn")
@click.argument("key", metavar="KEY")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Environment steps [default: the environment's online_steps: 100000 classic control, "
    "2000000 MinAtar].",
)
@click.option(
    "--snapshots",
    type=int,
    default=10,
    show_default=True,
    help="K: ship the network after k * steps / K steps, k = 0..K.",
)
@click.option(
    "--evaluations",
    type=int,
    default=None,
    help="Greedy evaluations during the run [default: 500 classic control (the paper), "
    "100 MinAtar].",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="How the shipped weights are stored.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for KEY.msgpack and index.json [default: the package's envs/policies/discrete].",
)
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
def dqn_cmd(key, seed, steps, snapshots, evaluations, dtype, out, no_progress):
    """Train the paper's online DQN on KEY and ship its Q-network snapshots.

    KEY is a discrete-suite environment: cartpole, acrobot, mountaincar, breakout, asterix,
    freeway, spaceinvaders, seaquest. The run (Schweighofer et al. 2022: one environment,
    replay buffer, Double DQN, Huber loss, Adam 1e-4, batch 32, epsilon 1 -> 0.01 over 1000
    updates) is jitted; its snapshots, measured returns and provenance are written atomically to
    KEY.msgpack and KEY's record of index.json (other environments' records are kept).

    \b
    policyfit behavior dqn cartpole
    policyfit behavior dqn breakout --steps 1000000 --seed 1 --out /tmp/discrete
    """
    from policyfit.common.files import check_writable
    from policyfit.envs.dqn_behavior import policies_dir
    from policyfit.training.online_dqn import OnlineDQNConfig, ship_online_dqn

    check_writable(policies_dir(out))  # written after the whole run
    config = OnlineDQNConfig(evaluations=evaluations) if evaluations is not None else None
    record = ship_online_dqn(
        key,
        seed=seed,
        steps=steps,
        out=out,
        snapshots=snapshots,
        progress=not no_progress,
        dtype=dtype,
        config=config,
        log=lambda line: click.echo(line, err=True),
    )
    summary = {
        k: record[k]
        for k in (
            "key",
            "online_steps",
            "train_seconds",
            "steps_per_second",
            "random_return",
            "online_best_return",
            "final_greedy_return",
            "bytes",
            "sha256",
        )
    }
    click.echo(json.dumps(summary, indent=1))
