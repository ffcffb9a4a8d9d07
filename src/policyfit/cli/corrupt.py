"""``policyfit data corrupt``: corrupt a dataset as in Yang et al. (ICLR 2024) and write it out."""

from __future__ import annotations

import click

from policyfit.data.corrupt import MODES, TARGETS


def register(group: click.Group) -> None:
    """Attach ``corrupt`` to the ``data`` group registered by :mod:`policyfit.cli.data`."""
    group.commands["data"].add_command(corrupt)


@click.command()
@click.argument("src")
@click.option("--target", type=click.Choice(TARGETS), required=True, help="What to corrupt.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="random",
    show_default=True,
    help="Random noise or a gradient attack on a clean critic.",
)
@click.option(
    "--rate",
    type=float,
    default=0.3,
    show_default=True,
    help="c: probability that a transition is corrupted.",
)
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="ε: corruption range in units of the per-dimension std.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same corruption.")
@click.option(
    "--out", "dst", required=True, type=click.Path(), help="Where to write the corrupted dataset."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["minari", "hdf5", "npz", "d3rlpy"]),
    default=None,
    help="Output format (default: by the extension of --out — .hdf5/.h5, .npz — else Minari; "
    "d3rlpy: the layout of d3rlpy's MDPDataset.dump).",
)
@click.option(
    "--critic-steps",
    type=int,
    default=None,
    help="Adversarial mode: training steps of the clean critic (default 5000; cached per dataset).",
)
def corrupt(
    src: str,
    target: str,
    mode: str,
    rate: float,
    scale: float,
    seed: int,
    dst: str,
    fmt: str | None,
    critic_steps: int | None,
) -> None:
    """Corrupt a fraction of SRC's transitions (Yang et al., ICLR 2024) and write the result.

    Each transition is corrupted independently with probability c (--rate). random: observations,
    actions or next observations (--target dynamics) get x + U(-ε, ε)·std per dimension; rewards
    are replaced by U(-30ε, 30ε). adversarial: x + p·std with |p| <= ε chosen by 100 projected Adam
    steps to minimize a Q-ensemble fitted on SRC (cached under $POLICYFIT_HOME/critics); rewards
    become -ε·r. The output keeps the mask of corrupted transitions (extra array "corrupted") and
    the parameters in its metadata.

    \b
    Examples:
      policyfit data corrupt hopper-medium-replay --target dynamics --out hmr-dyn.hdf5
      policyfit data corrupt logs.hdf5 --target observations --mode adversarial \\
          --rate 0.3 --scale 1.0 --seed 1 --out logs-adv.npz
    """
    from policyfit.common.files import check_writable
    from policyfit.corruption import corrupt_dataset
    from policyfit.data.corrupt import check_rate_and_scale
    from policyfit.data.io import save_dataset
    from policyfit.envs.datasets import load_dataset

    check_rate_and_scale(rate, scale)  # fail before a possibly slow load
    check_writable(dst)
    ds = load_dataset(src)
    options = {}
    if mode == "adversarial" and target != "rewards":
        from policyfit.corruption.critic import CriticConfig

        if critic_steps is not None:
            options["critic_config"] = CriticConfig(steps=critic_steps)
        click.echo(
            "adversarial: fitting (or loading) the clean critic, then 100 gradient steps per "
            "corrupted transition; this can take minutes on a CPU",
            err=True,
        )
    bad = corrupt_dataset(ds, target, mode=mode, rate=rate, scale=scale, seed=seed, **options)
    info = bad.metadata["corruption"]
    path = save_dataset(bad, dst, fmt)
    n, k = info["n_transitions"], info["n_corrupted"]
    click.echo(
        f"corrupted {k:,} of {n:,} transitions ({100.0 * k / n:.1f}%; asked c={rate:g}) — "
        f"{mode} {target} ({info['field']}), ε={scale:g}, seed {seed}"
    )
    attack = info.get("attack") or {}
    if "q_clean_mean" in attack:
        click.echo(
            f"clean critic's mean Q on the corrupted transitions: {attack['q_clean_mean']:.4g} -> "
            f"{attack['q_attacked_mean']:.4g} ({100.0 * attack['rows_lowered']:.1f}% lowered)"
        )
    click.echo(f"wrote {path} (fingerprint {bad.fingerprint()}; mask: extra array 'corrupted')")
