"""``policyfit data ...``: inspect, convert, make and list datasets (``strip-actions`` and
``relabel`` live in :mod:`policyfit.cli.relabel`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

DATASET_HELP = (
    "Path (Minari folder, HDF5 (D4RL or d3rlpy layout), .npz), local Minari id, or built-in name "
    "such as hopper-medium."
)


def _console():
    from rich.console import Console

    return Console()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _behavior_score(score: Any) -> str:
    """``31.7``; ``5.8 -> 23.0`` (medium-replay: first and last snapshot); ``31.7 + 96.2``."""
    if isinstance(score, dict):
        if "first" in score:
            return f"{score['first']:.1f} -> {score['last']:.1f}"
        return " + ".join(f"{v:.1f}" for v in score.values())
    return f"{score:.1f}" if isinstance(score, int | float) else "-"


def render_summary(summary: dict[str, Any], card: dict[str, Any] | None = None) -> None:
    """Print a dataset summary (and its card, when it has one) as rich tables."""
    from rich.table import Table

    from policyfit.common.files import dumps

    console = _console()
    table = Table(
        title=f"dataset: {summary.get('source')}", show_header=False, title_justify="left"
    )
    table.add_column("field", style="bold cyan")
    table.add_column("value")
    for key, value in summary.items():
        if key == "source":
            continue
        table.add_row(key, _fmt(value))
    console.print(table)
    if card:
        card_table = Table(title="dataset card", show_header=False, title_justify="left")
        card_table.add_column("field", style="bold magenta")
        card_table.add_column("value", overflow="fold")
        for key, value in card.items():
            card_table.add_row(key, value if isinstance(value, str) else dumps(value, indent=None))
        console.print(card_table)


def register(group: click.Group) -> None:
    from policyfit.cli.relabel import relabel, strip_actions

    data.add_command(strip_actions)
    data.add_command(relabel)
    group.add_command(data)


@click.group()
def data() -> None:
    """Load, inspect, convert and build datasets."""


@data.command()
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--full", is_flag=True, help="Also run the diagnostics (TQ, SACo, consistency, anomalies)."
)
@click.option(
    "--clip-actions", is_flag=True, help="Clip actions into the action space instead of failing."
)
@click.option(
    "--size", type=int, default=None, help="Size of a built-in dataset (default: D4RL's)."
)
@click.option("--seed", type=int, default=None, help="Seed of a built-in dataset (default 0).")
def inspect(
    dataset: str, as_json: bool, full: bool, clip_actions: bool, size: int | None, seed: int | None
) -> None:
    """Summarize DATASET: sizes, returns, episode lengths, flags, fingerprint.

    DATASET is a path (Minari folder, HDF5 in D4RL's or d3rlpy's layout, .npz), a local Minari
    id, or a built-in name.

    \b
    Examples:
      policyfit data inspect hopper-medium
      policyfit data inspect logs.hdf5 --json
    """
    from policyfit.common.files import dumps
    from policyfit.envs.datasets import load_dataset

    if not full and size is None and seed is None and Path(dataset).expanduser().exists():
        # a file may hold action-free episodes (NaN actions): summarized, not refused
        from policyfit.data.io import load_dataset as load_file

        ds = load_file(dataset, clip_actions=clip_actions, allow_action_free=True)
    else:
        ds = load_dataset(dataset, size=size, seed=seed, clip_actions=clip_actions)
    summary = ds.summary()
    card = ds.metadata.get("card") or None
    diagnosis = None
    if full:
        from policyfit.diagnostics.card import diagnose
        from policyfit.envs.datasets import suite_reference

        diagnosis = diagnose(ds, reference_resolver=suite_reference)
    if as_json:
        out = dict(summary)
        if card:
            out["card"] = card
        if diagnosis is not None:
            out["diagnostics"] = diagnosis.to_dict()
        click.echo(dumps(out, indent=None))
        return
    render_summary(summary, card)
    if diagnosis is not None:
        diagnosis.render(_console())


@data.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["minari", "hdf5", "npz", "d3rlpy"]),
    default=None,
    help="Output format (default: by DST's extension — .hdf5/.h5, .npz — else a Minari folder; "
    "d3rlpy: the layout of d3rlpy's MDPDataset.dump).",
)
@click.option(
    "--dataset-id", default=None, help="Minari dataset id to record (default policyfit/<name>-v0)."
)
@click.option(
    "--clip-actions", is_flag=True, help="Clip actions into the action space instead of failing."
)
def convert(
    src: str, dst: str, fmt: str | None, dataset_id: str | None, clip_actions: bool
) -> None:
    """Convert SRC to DST (Minari <-> HDF5 <-> npz <-> d3rlpy); every array and the fingerprint
    are kept. A d3rlpy file (MDPDataset.dump) is recognized by its keys.

    \b
    Examples:
      policyfit data convert logs.hdf5 logs.npz
      policyfit data convert logs.npz ./logs-minari --format minari
      policyfit data convert d3rlpy_dataset.h5 logs.hdf5
      policyfit data convert logs.npz for_d3rlpy.h5 --format d3rlpy
    """
    from policyfit.common.files import check_writable
    from policyfit.data.io import load_dataset as load_file
    from policyfit.data.io import save_dataset
    from policyfit.envs.datasets import load_dataset

    check_writable(dst)
    if Path(src).expanduser().exists():  # action-free episodes (NaN actions) convert as they are
        ds = load_file(src, clip_actions=clip_actions, allow_action_free=True)
    else:
        ds = load_dataset(src, clip_actions=clip_actions)
    path = save_dataset(ds, dst, fmt, dataset_id=dataset_id)
    click.echo(
        f"wrote {path} ({len(ds):,} transitions, {ds.num_episodes:,} episodes, fingerprint {ds.fingerprint()})"
    )


@data.command()
@click.argument("name")
@click.option(
    "--size",
    type=int,
    default=None,
    help="Transitions (default: the paper's: MuJoCo 1M, medium-expert 2M; discrete classic "
    "control 100k, MinAtar 1M; pointmaze 1M, pointmaze-stitch 200k).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(), default=None, help="Write here instead of $POLICYFIT_HOME."
)
def make(name: str, size: int | None, seed: int, out: str | None) -> None:
    """Build the built-in dataset NAME (e.g. hopper-medium) from its shipped behavior policy.

    Same NAME, --size and --seed give the identical dataset (same fingerprint). Two suites: the
    D4RL-style MuJoCo one ({hopper,halfcheetah,walker2d}-{random,medium,expert,medium-replay,
    medium-expert}, minutes of rollouts) and the discrete one of Schweighofer et al. 2022
    ({cartpole,acrobot,mountaincar,breakout,...}-{random,mixed,replay,noisy,expert}, seconds,
    jitted). The maze suite (needs gymnasium-robotics): Minari's pointmaze-{umaze,medium,large}
    and their -dense variants from a waypoint controller (minutes; a maze's sparse and dense
    datasets are built together), and MBRCSL's stitching maze pointmaze-stitch. All are cached
    under $POLICYFIT_HOME. cartpole-medium (a fixed controller) is collected in seconds and
    written only with --out.

    \b
    Examples:
      policyfit data make hopper-medium --size 100000
      policyfit data make cartpole-replay
      policyfit data make breakout-noisy --size 200000 --seed 1
      policyfit data make pointmaze-umaze
      policyfit data make cartpole-medium --out cartpole.npz
    """
    from policyfit.common.files import check_writable
    from policyfit.envs import datasets

    if out is not None:
        check_writable(out)
    ds = datasets.make_dataset(name, size=size, seed=seed, out=out)
    click.echo(
        f"{name}: {len(ds):,} transitions, {ds.num_episodes:,} episodes, fingerprint {ds.fingerprint()}"
    )


@data.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--paths", is_flag=True, help="Add the cache path of each dataset.")
def list_(as_json: bool, paths: bool) -> None:
    """List the built-in datasets, whether each is cached, and its behavior policy's score.

    The score is the behavior policy's normalized score (deterministic, 10 episodes):
    medium-replay shows its first and last snapshot, medium-expert both halves. Discrete suite:
    the paper's scale (0 = random policy, 100 = the online DQN run's best greedy evaluation);
    expert is the run's final greedy policy (100 episodes), replay the run's first and last
    evaluation, mixed both parts; noisy is not measured (its data's score is in its card).
    """
    from rich.table import Table

    from policyfit.common.files import dumps
    from policyfit.envs import datasets

    rows = datasets.list_datasets()
    if as_json:
        click.echo(dumps(rows, indent=None))
        return
    table = Table(title="built-in datasets (policyfit data make NAME builds one)")
    for col, justify in (
        ("name", "left"),
        ("environment", "left"),
        ("transitions", "right"),
        ("behavior score", "right"),
        ("cached", "center"),
    ):
        table.add_column(col, justify=justify, no_wrap=col == "name")
    if paths:
        table.add_column("path", overflow="fold")
    for row in rows:
        cells = [
            row["name"],
            row["env_id"],
            _fmt(row["size"]),
            _behavior_score(row.get("behavior_normalized_score")),
            "yes" if row["cached"] else "-" if row["available"] else "no policy",
        ]
        table.add_row(*cells, *([str(row["path"])] if paths else []))
    _console().print(table)
