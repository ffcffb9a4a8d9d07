"""``policyfit bandit simulate`` and ``policyfit bandit learn``: exploration and learning from logs."""

from __future__ import annotations

from pathlib import Path

import click

from policyfit.common.files import dumps


def _bandit_group(group: click.Group) -> click.Group:
    """The ``bandit`` group (made here when :mod:`policyfit.cli.bandit` has not made it)."""
    if "bandit" not in group.commands:

        @group.group("bandit")
        def bandit() -> None:
            """Contextual bandits: logged feedback, off-policy evaluation, learning, exploration."""

    return group.commands["bandit"]


def register(group: click.Group) -> None:
    bandit = _bandit_group(group)
    bandit.add_command(simulate_command)


def _csv_ints(value: str, field: str) -> list[int]:
    from policyfit.errors import ConfigError

    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"expected comma-separated integers, got {value!r}", field=field
        ) from None


@click.command("simulate")
@click.option("--generations", type=int, default=12, show_default=True)
@click.option(
    "--rounds", type=int, default=10_000, show_default=True, help="Decisions per generation."
)
@click.option(
    "--variants",
    default="naive,ipw,balanced,pooled,floor,uniform",
    show_default=True,
    help="Retraining variants (comma-separated).",
)
@click.option(
    "--gamma",
    type=float,
    default=1000.0,
    show_default=True,
    help="IGW exploitation: 0 = uniform play, large = greedy.",
)
@click.option(
    "--delay",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of a generation's rewards still missing at retraining time.",
)
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option(
    "--out", type=click.Path(), default=None, help="Folder for generations.{json,md,png}."
)
@click.option("--no-progress", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def simulate_command(generations, rounds, variants, gamma, delay, seeds, out, no_progress, as_json):
    """Deploy -> log (delayed rewards) -> retrain -> redeploy, for G generations.

    A payment-authorization-like environment with known truth (binary reward, class imbalance,
    per-payment action masks, an action introduced late and one retired). Each generation plays
    inverse-gap weighting over a ridge regression oracle refit on the logs; the variants differ in
    how it is refit. Prints the expected authorization rate per generation per variant.

    \b
    Examples:
      policyfit bandit simulate
      policyfit bandit simulate --gamma 10000 --variants naive,pooled,floor --out sim/
      policyfit bandit simulate --generations 20 --seeds 0,1,2,3,4 --json
    """
    from policyfit.bandit.simulate import PaymentEnv, simulate
    from policyfit.report.bandit import generations_png, generations_table

    names = [v.strip() for v in variants.split(",") if v.strip()]
    result = simulate(
        PaymentEnv(),
        names,
        generations=generations,
        rounds=rounds,
        delay=delay,
        gamma=gamma,
        seeds=_csv_ints(seeds, "seeds"),
        progress=not no_progress,
    )
    table = generations_table(result)
    if out is not None:
        from policyfit.common.files import atomic_write_text

        folder = Path(out)
        atomic_write_text(folder / "generations.json", dumps(result) + "\n")
        atomic_write_text(folder / "generations.md", table + "\n")
        generations_png({f"gamma = {gamma:g}": result}, folder / "generations.png")
    if as_json:
        click.echo(dumps(result, indent=None))
        return
    click.echo(f"expected authorization rate per generation (mean over seeds), gamma {gamma:g}:")
    click.echo(table)
    if out is not None:
        click.echo(f"written: {Path(out) / 'generations.json'}, .md, .png")
