"""``policyfit data strip-actions`` and ``policyfit data relabel``: semi-supervised offline RL with
action-free trajectories (Zheng et al., ICML 2023). Registered on the ``data`` group by
:mod:`policyfit.cli.data`."""

from __future__ import annotations

from pathlib import Path

import click

FORMAT_HELP = (
    "Output format (default: by the extension of --out — .hdf5/.h5, .npz — else a Minari folder; "
    "d3rlpy: the layout of d3rlpy's MDPDataset.dump)."
)


def _load(src: str, *, allow_action_free: bool):
    """A file (action-free episodes allowed when asked) or a built-in / Minari name."""
    from policyfit.data.io import load_dataset as load_file
    from policyfit.envs.datasets import load_dataset

    if Path(src).expanduser().exists():
        return load_file(src, allow_action_free=allow_action_free)
    return load_dataset(src)


@click.command(name="strip-actions")
@click.argument("src")
@click.option(
    "--out", "dst", required=True, type=click.Path(), help="Where to write the action-free data."
)
@click.option(
    "--keep-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Share of ALL episodes that keep their actions (0 strips every episode).",
)
@click.option(
    "--threshold",
    type=float,
    default=0.5,
    show_default=True,
    help="The kept episodes are drawn from this lowest fraction of returns.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same split.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["minari", "hdf5", "npz", "d3rlpy"]),
    default=None,
    help=FORMAT_HELP,
)
def strip_actions(
    src: str, dst: str, keep_fraction: float, threshold: float, seed: int, fmt: str | None
) -> None:
    """Make action-free data from SRC: remove the actions of all but a low-return share.

    SS-ORL's split (Zheng et al., ICML 2023): episodes sorted by return; min(int(n * F),
    int(n * T)) of them, drawn at random from the lowest T fraction, keep their actions; every
    other episode's actions become NaN. The output marks them in the extra array
    "action_available" (Minari: infos/policyfit_extra/action_available) and records the split
    on its card. Training on it fails until `policyfit data relabel` labels it.

    \b
    Examples:
      policyfit data strip-actions hopper-medium --out hopper-free.hdf5
      policyfit data strip-actions logs.hdf5 --keep-fraction 0.25 --threshold 0.5 --seed 1 \\
          --out logs-free.npz
    """
    from policyfit.common.files import check_writable
    from policyfit.data.action_free import check_fraction
    from policyfit.data.action_free import strip_actions as strip
    from policyfit.data.io import save_dataset

    check_fraction(keep_fraction, "keep_fraction", allow_zero=True)  # before a slow load
    check_fraction(threshold, "threshold")
    check_writable(dst)
    ds = _load(src, allow_action_free=True)
    free = strip(ds, keep_fraction=keep_fraction, threshold=threshold, seed=seed)
    path = save_dataset(free, dst, fmt)
    info = free.metadata["action_free"]
    click.echo(
        f"stripped the actions of {info['action_free_episodes']:,} of {info['episodes']:,} "
        f"episodes ({info['action_free_transitions']:,} transitions); "
        f"{info['labelled_episodes']:,} keep theirs (from the lowest {threshold:g} of returns)"
    )
    click.echo(f"wrote {path} (fingerprint {free.fingerprint()})")


@click.command()
@click.argument("src")
@click.option(
    "--out", "dst", required=True, type=click.Path(), help="Where to write the labelled data."
)
@click.option(
    "--labelled",
    type=float,
    default=None,
    help="Fully labelled SRC only: share of ALL episodes kept as labelled [default 0.1].",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Fully labelled SRC only: draw them from this lowest fraction of returns [default 0.5].",
)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Adam steps of the inverse-dynamics model [default 1000; the official config: 100].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Split and model seed.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["minari", "hdf5", "npz", "d3rlpy"]),
    default=None,
    help=FORMAT_HELP,
)
def relabel(
    src: str,
    dst: str,
    labelled: float | None,
    threshold: float | None,
    steps: int | None,
    seed: int,
    fmt: str | None,
) -> None:
    """Label SRC's action-free episodes with an inverse-dynamics model and write the union.

    SS-ORL (Zheng et al., ICML 2023): a tanh-Gaussian p(a_t | s_{t-1}, s_t, s_{t+1}) (2x1024,
    dropout 0.1, Adam 1e-4, batch 1024) is fitted on the episodes with actions and predicts the
    others. If SRC has action-free episodes (from `policyfit data strip-actions`, or NaN actions
    of your own), those are labelled. If SRC is fully labelled, it is split first (--labelled
    of all episodes, drawn from the lowest --threshold of returns) and the rest relabelled, so
    the card also reports the proxy-label error against the true actions. Train any algorithm
    on the output; its extra array "proxy_action" marks the predicted actions.

    \b
    Examples:
      policyfit data relabel hopper-free.hdf5 --out hopper-labelled.hdf5
      policyfit data relabel hopper-medium --labelled 0.1 --threshold 0.5 --out hm-ss.hdf5
      policyfit train td3bc --dataset hm-ss.hdf5
    """
    from policyfit.common.files import check_writable
    from policyfit.data.action_free import check_fraction
    from policyfit.data.io import save_dataset
    from policyfit.training.relabel import InverseModelConfig
    from policyfit.training.relabel import relabel as run_relabel

    if labelled is not None:
        check_fraction(labelled, "labelled")
    if threshold is not None:
        check_fraction(threshold, "threshold")
    config = InverseModelConfig() if steps is None else InverseModelConfig(steps=steps)
    config.check()
    check_writable(dst)
    ds = _load(src, allow_action_free=True)
    out = run_relabel(
        ds,
        labelled=labelled,
        threshold=threshold,
        seed=seed,
        config=config,
        log=lambda line: click.echo(line, err=True),
    )
    path = save_dataset(out, dst, fmt)
    info = out.metadata["relabel"]
    error = info["proxy_label_error"]
    click.echo(
        f"labelled {info['proxy_labelled_transitions']:,} actions of "
        f"{info['proxy_labelled_episodes']:,} episodes from {info['split']['labelled_episodes']:,} "
        f"labelled ones; IDM validation NLL {info['idm']['validation_nll']:.4g}"
    )
    if isinstance(error, dict):
        click.echo(
            f"proxy-label error vs the true actions: MSE {error['mse']:.4g}, "
            f"mean |a - a_hat| {error['mean_abs']:.4g}"
        )
    else:
        click.echo("proxy-label error: unknown (SRC had no true actions for those episodes)")
    click.echo(f"wrote {path} (fingerprint {out.fingerprint()})")
