"""``policyfit report``: one self-contained HTML report for datasets and training runs."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(report)


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="RUN_OR_DATASET...")
@click.option(
    "--out",
    "-o",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write.",
)
@click.option(
    "--reference",
    default="auto",
    show_default=True,
    help="Reference dataset for SACo (path or built-in name); 'auto' uses the suite's "
    "<env>-medium-replay when built, 'none' skips SACo.",
)
@click.option(
    "--ref-scores",
    nargs=2,
    type=float,
    default=None,
    metavar="RANDOM EXPERT",
    help="Random and expert episode returns for TQ (default: the dataset's reference scores).",
)
@click.option("--title", default=None, help="Page title.")
def report(
    targets: tuple[str, ...],
    out: str,
    reference: str,
    ref_scores: tuple[float, float] | None,
    title: str | None,
) -> None:
    """Write an HTML report for run directories and/or datasets.

    A run directory (config.json, metrics.jsonl, summary.json) gives learning curves; several runs
    also a comparison table and plot. A dataset (path or built-in name) gives its data card with
    plots: returns, episode lengths, coverage, marginals and anomaly flags. Bandit logs (.npz of
    OBP-shaped feedback) give propensity and per-action summaries; a `bandit simulate` result
    (generations.json) gives the generations figure and table.

    \b
    Examples:
      policyfit report hopper-medium --out hopper-medium.html
      policyfit report runs/iql-hopper-medium-s0 runs/bc-hopper-medium-s0 -o compare.html
      policyfit report logs.npz sim/generations.json -o bandit.html
    """
    from policyfit.common.files import check_writable
    from policyfit.report import write_report

    check_writable(out)
    ref = None if reference.lower() == "none" else reference
    path = write_report(list(targets), out, reference=ref, ref_scores=ref_scores, title=title)
    click.echo(f"wrote {path}")
