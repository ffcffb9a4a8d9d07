"""``policyfit quickstart``: the whole workflow on a small real task in a few minutes.

data in (a built-in D4RL-style MuJoCo dataset, generated locally from a shipped behavior policy)
-> inspect -> learn (IQL) -> evaluate (vectorized MuJoCo rollouts, D4RL-normalized score).

The default task is ``halfcheetah-medium`` (50k transitions, 20k IQL updates): there IQL beats the
data within the budget (session 2: 31.0 vs the data's 24.7). On ``hopper-medium``, whose episode
returns are narrowly spread, the same budget gives 25.5 vs 30.2 — offline RL needs more updates
and more data there (100k updates on 1M transitions: 34.4 vs 30.1, ``benchmarks/scores.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import click


def register(group: click.Group) -> None:
    group.add_command(quickstart)


@click.command()
@click.option(
    "--dataset", default="halfcheetah-medium", show_default=True, help="Built-in dataset name."
)
@click.option(
    "--algo", default="iql", show_default=True, help="Algorithm to train (see `policyfit algos`)."
)
@click.option(
    "--size", type=int, default=50_000, show_default=True, help="Transitions to generate."
)
@click.option("--steps", type=int, default=20_000, show_default=True, help="Gradient updates.")
@click.option("--eval-episodes", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(), default=None, help="Run directory (default ./runs/quickstart-...)."
)
def quickstart(
    dataset: str, algo: str, size: int, steps: int, eval_episodes: int, seed: int, out: str | None
) -> None:
    """Build a small dataset, train a policy on it, evaluate it against the data.

    \b
    1. build DATASET (--size transitions) from its shipped behavior policy, cached in $POLICYFIT_HOME
    2. inspect it (returns, episodes, normalized score of the data)
    3. train ALGO for --steps updates (jitted JAX; progress bar)
    4. roll out the learned policy in the real MuJoCo environment and compare with the data
    """
    from rich.console import Console
    from rich.table import Table

    import policyfit
    from policyfit.cli.data import render_summary
    from policyfit.common.files import check_writable

    run_dir = Path(out) if out else Path("runs") / f"quickstart-{algo}-{dataset}-s{seed}"
    check_writable(run_dir)
    console = Console()
    t0 = time.perf_counter()
    console.rule("[bold]policyfit quickstart")
    console.print(
        f"[bold]1/4[/bold] building {dataset} ({size:,} transitions) from its behavior policy ..."
    )
    ds = policyfit.make_dataset(dataset, size=size, seed=seed)
    console.print(f"[bold]2/4[/bold] inspecting {dataset}")
    summary = ds.summary()
    render_summary(summary)
    console.print(f"[bold]3/4[/bold] training {algo} for {steps:,} steps ...")
    if out is None and (run_dir / "config.json").is_file():
        # the quickstart's own scratch run from an earlier `make quickstart`: start it afresh
        import shutil

        shutil.rmtree(run_dir)
    result = policyfit.train(
        algo,
        ds,
        steps=steps,
        seed=seed,
        out=run_dir,
        eval_every=0,
        eval_episodes=eval_episodes,
    )
    console.print(f"[bold]4/4[/bold] evaluating over {eval_episodes} episodes ...")
    s = result.summary
    data_score = summary.get("normalized_return_mean")
    table = Table(title=f"{algo} on {dataset}: learned policy vs the data", title_justify="left")
    table.add_column("")
    table.add_column("normalized score", justify="right")
    table.add_column("return", justify="right")
    table.add_row("data (behavior episodes)", f"{data_score:.1f}", f"{summary['return_mean']:.0f}")
    table.add_row(
        f"learned {algo} policy",
        f"{s['final_normalized_score']:.1f}",
        f"{s['final_return_mean']:.0f}",
    )
    console.print(table)
    delta = s["final_normalized_score"] - data_score
    verdict = "better than" if delta > 0 else "not yet better than"
    console.print(
        f"The learned policy is {verdict} the data by {abs(delta):.1f} points "
        f"({steps:,} updates at {s['steps_per_second']:.0f} updates/s). Run: {result.run_dir}"
    )
    console.print(
        f"Next: [cyan]policyfit eval {result.run_dir}[/cyan] · [cyan]policyfit report {result.run_dir}[/cyan] · "
        f"[cyan]policyfit train {algo} --dataset {dataset} --steps 1000000[/cyan]"
    )
    console.print(f"[green]done in {time.perf_counter() - t0:.0f} s[/green]")
