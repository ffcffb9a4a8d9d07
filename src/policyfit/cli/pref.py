"""``policyfit pref ...``: preference fine-tuning of tiny sequence policies (the ``pref`` extra).

* ``tasks`` — the four tasks;
* ``objectives`` — the objectives and the trainer that runs each;
* ``data make TASK --n N --out DIR`` — preference rows as a ``datasets`` dataset on disk;
* ``train OBJECTIVE --task TASK [--steps N] [--json]`` — train through TRL, print expected reward,
  KL and (where exact) the distance to pi*.

Nothing here imports torch until a command runs, and a missing extra is one line that says to
run ``make install-pref``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from policyfit.errors import ConfigError, PolicyfitError

INSTALL_HINT = (
    "the preference extra is not installed; run `make install-pref` (pip install -e .[pref])"
)

# The task names and objectives, for --help and choices without importing torch.
TASK_NAMES = ("token-bandit-aligned", "token-bandit-unaligned", "enumerable", "unseen-response")
OBJECTIVE_NAMES = (
    "dpo",
    "ipo",
    "rpo",
    "online-dpo",
    "copg",
    "c-rlft",
    "superhf",
    "hypo",
    "nash-md",
    "drpo-rollin",
    "dpo-ours",
)


def register(group: click.Group) -> None:
    group.add_command(pref)


def require_extra() -> None:
    """A PolicyfitError naming the first missing distribution of the ``pref`` extra."""
    for name in ("torch", "transformers", "trl", "datasets", "tokenizers"):
        if importlib.util.find_spec(name) is None:
            raise PolicyfitError(INSTALL_HINT, path=name, field="pref")


def check_task(name: str, where: str) -> None:
    """A one-line ConfigError for an unknown task name (before torch is imported)."""
    if name not in TASK_NAMES:
        raise ConfigError(
            f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}",
            path=where,
            field="task",
        )


@click.group()
def pref() -> None:
    """Preference fine-tuning (DPO, IPO, RPO, CoPG, HyPO, ...) of tiny sequence policies, measured exactly.

    PyTorch + Hugging Face (TRL 1.16), independent of the JAX core; install with
    `make install-pref`. Models and tokenizers are built locally; nothing is downloaded.

    \b
    Examples:
      policyfit pref tasks
      policyfit pref objectives
      policyfit pref data make enumerable --n 1000 --out prefs/enumerable
      policyfit pref train dpo --task enumerable --steps 40 --json
    """


@pref.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tasks_command(as_json: bool) -> None:
    """List the tasks: name, whether evaluation is exact, default beta, summary.

    \b
    Example:
      policyfit pref tasks
    """
    require_extra()
    from policyfit.pref.tasks import TASKS

    if as_json:
        click.echo(
            json.dumps(
                {
                    name: {"exact": t.exact, "default_beta": t.default_beta, "summary": t.summary}
                    for name, t in TASKS.items()
                },
                indent=2,
            )
        )
        return
    width = max(len(n) for n in TASKS)
    for name, task in TASKS.items():
        kind = "exact" if task.exact else "Monte Carlo"
        click.echo(f"{name.ljust(width)}  {kind:<11}  beta={task.default_beta:g}  {task.summary}")


@pref.command("objectives")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def objectives_command(as_json: bool) -> None:
    """List the objectives `policyfit pref train` runs, and the trainer behind each.

    \b
    Example:
      policyfit pref objectives
    """
    require_extra()
    from policyfit.pref.train import OBJECTIVES

    if as_json:
        click.echo(
            json.dumps(
                {n: {"trainer": o.trainer, "summary": o.summary} for n, o in OBJECTIVES.items()},
                indent=2,
            )
        )
        return
    width = max(len(n) for n in OBJECTIVES)
    for name, spec in OBJECTIVES.items():
        click.echo(f"{name.ljust(width)}  {spec.trainer:<18}  {spec.summary}")


def _parse_options(items: tuple[str, ...]) -> dict:
    """``("lam=0.2", "num_samples=4")`` -> ``{"lam": 0.2, "num_samples": 4}`` (JSON values)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", path="--option", field="option")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@pref.group("data")
def data_group() -> None:
    """Preference datasets of the tasks."""


@data_group.command("make")
@click.argument("task", metavar="TASK")
@click.option("--n", "n_rows", type=int, default=1000, show_default=True, help="Rows to make.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling.")
@click.option("--ref-seed", type=int, default=0, show_default=True, help="Seed of the reference.")
@click.option("--out", required=True, help="Directory to write (`datasets` save_to_disk).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def data_make(task: str, n_rows: int, seed: int, ref_seed: int, out: str, force: bool) -> None:
    """Write N preference rows of TASK (one of `policyfit pref tasks`) to the directory --out.

    Columns: prompt, chosen, rejected (TRL's explicit-prompt format) and chosen_reward,
    rejected_reward. Load with `datasets.load_from_disk(DIR)`. The directory is written to a
    temporary sibling and renamed into place, so an interrupted run leaves nothing half-written.

    \b
    Examples:
      policyfit pref data make enumerable --n 1000 --out prefs/enumerable
      policyfit pref data make token-bandit-unaligned --n 5000 --seed 1 --out prefs/bandit70
    """
    check_task(task, "TASK")
    require_extra()
    from policyfit.common.files import ensure_dir
    from policyfit.pref.tasks import get_task

    target = Path(out).expanduser()
    if n_rows < 1:
        raise ConfigError(f"need at least one row, got {n_rows}", path="--n", field="n")
    if target.exists() and not force:
        raise PolicyfitError(
            "already exists; choose another --out or pass --force", path=str(target), field="out"
        )
    parent = ensure_dir(target.parent if str(target.parent) else Path("."))
    dataset = get_task(task).make_dataset(n_rows, seed=seed, ref=get_task(task).reference(ref_seed))
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    try:
        dataset.save_to_disk(str(tmp / "data"))
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp / "data", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    click.echo(f"wrote {len(dataset)} rows of {task} to {target}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@pref.command("train")
@click.argument("objective", metavar="OBJECTIVE")
@click.option("--task", "task", required=True, help=f"One of: {', '.join(TASK_NAMES)}.")
@click.option("--steps", type=int, default=100, show_default=True, help="Optimizer steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of data and training.")
@click.option("--beta", type=float, default=None, help="KL strength (default: the task's).")
@click.option("--lr", "learning_rate", type=float, default=None, help="Learning rate.")
@click.option("--batch-size", type=int, default=None, help="Pairs per step.")
@click.option("--out", default=None, help="Save the trained policy (save_pretrained) here.")
@click.option(
    "--option",
    "options",
    multiple=True,
    help="KEY=VALUE: a field of the objective's config (e.g. rpo_alpha=0.5, lam=0.2); repeat.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train_command(
    objective: str,
    task: str,
    steps: int,
    seed: int,
    beta: float | None,
    learning_rate: float | None,
    batch_size: int | None,
    out: str | None,
    options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Fine-tune TASK's reference with OBJECTIVE (see `policyfit pref objectives`), measure it.

    Prints the expected reward, KL(pi || pi_ref), KL(pi_ref || pi) and, on the exact tasks, the
    total variation and KL to pi* = pi_ref exp(R / beta) / Z, before and after training.

    \b
    Examples:
      policyfit pref train dpo --task enumerable --steps 40
      policyfit pref train ipo --task unseen-response --steps 50 --json
      policyfit pref train hypo --task enumerable --steps 40 --option lam=0.2
    """
    objective = objective.lower()
    if objective not in OBJECTIVE_NAMES:
        raise ConfigError(
            f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVE_NAMES)}",
            path="OBJECTIVE",
            field="objective",
        )
    check_task(task, "--task")
    parsed = _parse_options(options)
    require_extra()
    from policyfit.common.files import json_default
    from policyfit.pref.train import train

    if steps < 1:
        raise ConfigError(f"need at least one step, got {steps}", path="--steps", field="steps")
    result = train(
        objective,
        task,
        steps=steps,
        seed=seed,
        beta=beta,
        learning_rate=learning_rate,
        batch_size=batch_size,
        out=out,
        options=parsed,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2, default=json_default))
        return
    before = result["before"]
    click.echo(
        f"{objective} on {task}: {steps} steps, beta={result['beta']:g}, "
        f"lr={result['learning_rate']:g} ({result['train_seconds']:.1f} s training)"
    )
    rows = [
        ("expected reward", "expected_reward"),
        ("KL(pi || pi_ref)", "kl_policy_ref"),
        ("KL(pi_ref || pi)", "kl_ref_policy"),
        ("TV(pi, pi*)", "tv_to_optimum"),
        ("KL(pi || pi*)", "kl_policy_optimum"),
    ]
    click.echo(f"{'':<18}{'reference':>12}{'trained':>12}")
    for label, key in rows:
        click.echo(f"{label:<18}{_fmt(before.get(key)):>12}{_fmt(result.get(key)):>12}")
    if result.get("exact"):
        click.echo(f"pi* expected reward {result['optimum_expected_reward']:.4f}")
    else:
        click.echo(f"Monte Carlo: {result['samples']}; pi* not computed for this task")
    if "mass_on_unseen" in result:
        click.echo(
            f"mass on the unseen response: {result['ref_mass_on_unseen']:.4f} -> "
            f"{result['mass_on_unseen']:.4f}"
        )
