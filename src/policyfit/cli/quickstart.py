"""``policyfit quickstart``: the whole workflow on a small real task, in a few minutes.

data in (a real gymnasium MuJoCo rollout written as a Minari dataset) -> inspect.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np


def collect_random_dataset(env_id: str, size: int, seed: int):
    """Roll out a uniform-random policy in ``env_id`` for ``size`` transitions (real MuJoCo)."""
    from policyfit.data import Dataset
    from policyfit.data.spaces import space_from_gym
    from policyfit.envs.registry import ENVS, make_env

    env = make_env(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    arrays = {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "next_observations",
        )
    }
    for _ in range(size):
        action = env.action_space.sample()
        nxt, reward, term, trunc, _ = env.step(action)
        for key, value in zip(arrays, (obs, action, reward, term, trunc, nxt), strict=True):
            arrays[key].append(value)
        obs = env.reset()[0] if (term or trunc) else nxt
    spec = ENVS.get(env_id)
    metadata = {
        "env_id": env_id,
        "observation_space": space_from_gym(env.observation_space),
        "action_space": space_from_gym(env.action_space),
        "card": {
            "behavior": "uniform random",
            "size": size,
            "seed": seed,
            "recipe": "policyfit quickstart",
        },
    }
    if spec is not None:
        metadata.update(ref_min_score=spec.ref_min_score, ref_max_score=spec.ref_max_score)
    return Dataset(
        **{k: np.asarray(v) for k, v in arrays.items()},
        metadata=metadata,
        source=f"{env_id}-random",
    )


def register(group: click.Group) -> None:
    group.add_command(quickstart)


@click.command()
@click.option(
    "--env", "env_id", default="Hopper-v5", show_default=True, help="gymnasium MuJoCo environment."
)
@click.option("--size", type=int, default=5_000, show_default=True, help="Transitions to collect.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Where to write the dataset (default $POLICYFIT_HOME).",
)
def quickstart(env_id: str, size: int, seed: int, out: str | None) -> None:
    """Run the workflow end to end on a small real task: collect data, write it, inspect it."""
    from rich.console import Console

    from policyfit.cli.data import render_summary
    from policyfit.data.io import load_dataset, save_dataset
    from policyfit.paths import home

    console = Console()
    t0 = time.perf_counter()
    console.rule("[bold]policyfit quickstart")
    console.print(
        f"1/2 collecting {size:,} transitions of a random policy in {env_id} (real MuJoCo) ..."
    )
    ds = collect_random_dataset(env_id, size, seed)
    path = Path(out) if out else home() / "quickstart" / f"{env_id.lower()}-random-s{seed}"
    save_dataset(ds, path, "minari", dataset_id=f"policyfit/quickstart-{env_id.lower()}-random-v0")
    console.print(f"    wrote a Minari dataset to {path}")
    console.print("2/2 reading it back and inspecting it ...")
    loaded = load_dataset(path)
    assert loaded.fingerprint() == ds.fingerprint()
    render_summary(loaded.summary(), loaded.metadata.get("card"))
    console.print(f"[green]done in {time.perf_counter() - t0:.1f} s[/green]")
