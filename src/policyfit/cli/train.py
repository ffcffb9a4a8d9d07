"""``policyfit train ALGO --dataset NAME_OR_PATH`` and ``policyfit algos``."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from policyfit.common.files import dumps


def register(group: click.Group) -> None:
    group.add_command(train_command)
    group.add_command(algos)


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, str]:
    """``("key=value", ...)`` -> dict; values stay strings (the config converts and checks them)."""
    from policyfit import ConfigError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {pair!r}", field="--set")
        out[key.strip()] = value
    return out


@click.command("train")
@click.argument("algo", required=False)
@click.option(
    "--dataset", "dataset", default=None, help="Path, Minari id or built-in name (hopper-medium)."
)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Gradient updates in total [default: 1000000; a resumed run: its own].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field (repeatable); see `policyfit algos`.",
)
@click.option(
    "--paper-settings",
    is_flag=True,
    help="Use the per-environment config of the algorithm's paper/official code for this "
    "dataset (e.g. PRDC's alpha=40 on halfcheetah); --set still wins.",
)
@click.option(
    "--eval-every",
    type=int,
    default=None,
    help="Evaluate every N steps (0: only at the end) [default: 10000; a resumed run: its own].",
)
@click.option(
    "--eval-episodes",
    type=int,
    default=None,
    help="Episodes per evaluation, reset seeds seed+i [default: 10; a resumed run: its own].",
)
@click.option(
    "--save-every",
    type=int,
    default=None,
    help="Checkpoint every N steps (0: only at the end) [default: 50000; a resumed run: its own].",
)
@click.option(
    "--resume",
    "resume",
    default=None,
    metavar="RUN_DIR",
    help="Continue a killed run exactly from its last checkpoint.",
)
@click.option(
    "--out",
    default=None,
    metavar="DIR",
    help="Run directory (default ./runs/<algo>-<dataset>-s<seed>).",
)
@click.option(
    "--tensorboard",
    is_flag=True,
    default=None,
    help="Also write TensorBoard event files into RUN/tensorboard/ (needs policyfit[tensorboard]).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def train_command(
    algo: str | None,
    dataset: str | None,
    steps: int | None,
    seed: int,
    overrides: tuple[str, ...],
    paper_settings: bool,
    eval_every: int | None,
    eval_episodes: int | None,
    save_every: int | None,
    resume: str | None,
    out: str | None,
    tensorboard: bool | None,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Train ALGO on a dataset; writes a run directory with config, metrics, checkpoints, policy.

    \b
    policyfit train iql --dataset hopper-medium --steps 100000
    policyfit train td3bc --dataset data.hdf5 --set alpha=5 --set batch_size=512
    policyfit train prdc --dataset halfcheetah-medium --paper-settings   # alpha=40
    policyfit train iql --dataset hopper-medium --tensorboard   # then: tensorboard --logdir runs
    policyfit train --resume runs/iql-hopper-medium-s0          # continue to its own --steps
    """
    import policyfit

    if algo is None and resume is None:
        raise policyfit.ConfigError(
            f"name an algorithm: {', '.join(sorted(policyfit.ALGORITHMS))}", field="ALGO"
        )
    config = parse_overrides(overrides)
    if paper_settings:
        config = _with_paper_settings(algo, dataset, config)
    if algo is not None:
        # Validate the algorithm and every --set key before any data is loaded.
        cls = policyfit.get_algorithm(algo)
        cls.Config.from_dict(config, algo=cls.name)
    result = policyfit.train(
        algo,
        dataset,
        steps=steps,
        seed=seed,
        config=config or None,
        out=out,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        save_every=save_every,
        resume=resume,
        progress=not no_progress,
        tensorboard=tensorboard,
    )
    if as_json:
        click.echo(dumps(result.summary, indent=None))
        return
    s = result.summary
    score = s["final_normalized_score"]
    click.echo(
        f"{s['algorithm']} on {s['dataset']} (seed {s['seed']}): {s['steps']:,} steps in "
        f"{s['wall_seconds']:.0f}s ({s['steps_per_second']:,.0f} steps/s)"
    )
    if s["final_return_mean"] is not None:
        shown = (
            f", normalized score {score:.1f} (best {s['best_normalized_score']:.1f})"
            if score is not None
            else ""
        )
        click.echo(
            f"final return {s['final_return_mean']:.1f} +- {s['final_return_std']:.1f}{shown}"
        )
    click.echo(f"run directory: {result.run_dir}")


def _with_paper_settings(
    algo: str | None, dataset: str | None, config: dict[str, Any]
) -> dict[str, Any]:
    """``config`` over the paper's per-environment settings; says which were applied."""
    from policyfit import ConfigError
    from policyfit.algos.registry import paper_settings

    if algo is None or dataset is None:
        raise ConfigError(
            "needs ALGO and --dataset (a resumed run keeps its own config)",
            field="--paper-settings",
        )
    settings = paper_settings(algo, dataset)
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k not in config)
    click.echo(
        f"paper settings for {dataset}: {shown or 'none recorded (the defaults)'}",
        err=True,
    )
    return {**{k: str(v) for k, v in settings.items()}, **config}


def field_comments(config_cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each config field in the source (base classes first).

    These comments say what a field is and where its default comes from (paper, CORL).
    """
    import inspect
    import re

    out: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        above: list[str] = []  # a comment block right above a field describes it too
        for line in source.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                above.append(stripped.lstrip("# "))
                continue
            match = re.match(r"^\s+(\w+)\s*:[^#=]*=[^#]*(?:#\s*(.+))?$", line)
            if match:
                text = match.group(2) or " ".join(above)
                if text:
                    out[match.group(1)] = text.strip()
            above = []
    return out


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def algos(as_json: bool) -> None:
    """List the algorithms and their config fields with defaults (set them with --set key=value)."""
    import policyfit
    from policyfit.algos.base import Algorithm

    listing = {}
    for name, cls in sorted(policyfit.ALGORITHMS.items()):
        cfg = cls.Config()
        listing[name] = {
            "doc": (sys.modules[cls.__module__].__doc__ or name).strip().splitlines()[0],
            "action_spaces": cls.action_spaces(),
            "stateful_policy": cls.initial_carry is not Algorithm.initial_carry,
            "config": {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)},
            "help": field_comments(cls.Config),
        }
    if as_json:
        click.echo(dumps(listing, indent=None))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name, info in listing.items():
        memory = "; acts with a carry" if info["stateful_policy"] else ""
        title = f"{name} ({info['action_spaces']} actions{memory}): {info['doc']}"
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column("field", style="bold cyan", no_wrap=True)
        table.add_column("default")
        table.add_column("meaning and source", style="dim")
        for key, value in info["config"].items():
            table.add_row(key, str(value), info["help"].get(key, ""))
        console.print(table)
