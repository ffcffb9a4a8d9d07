"""``policyfit steer POLICY_RUN --critic CRITIC_RUN --out RUN``: V-GPS, a trained policy steered
at test time by an offline critic (:mod:`policyfit.algos.vgps`, :mod:`policyfit.training.steer`)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    group.add_command(steer_command)


@click.command("steer")
@click.argument("policy_run", metavar="POLICY_RUN")
@click.option(
    "--critic",
    "critic_run",
    required=True,
    metavar="CRITIC_RUN",
    help="An iql/riql training run on the same data; its latest checkpoint's critic scores actions.",
)
@click.option(
    "--k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Candidate actions sampled from the policy per observation (V-GPS's K).",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=0.0,
    show_default=True,
    help="0: act the candidate with the highest Q; > 0: sample softmax(Q / temperature).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Key of deterministic calls.")
@click.option("--out", "-o", required=True, help="Run directory to write (must not hold a run).")
def steer_command(
    policy_run: str, critic_run: str, k: int, temperature: float, seed: int, out: str
) -> None:
    """Steer the policy of POLICY_RUN with the Q function of CRITIC_RUN (V-GPS).

    For each observation the steered policy samples K actions from the policy and acts the one
    the critic values most (or samples softmax(Q / temperature)). Steer a stochastic policy
    (e.g. `bc --set policy=gaussian`, IQL's actor): a deterministic one gives K equal actions.
    The output is a run directory that `policyfit eval`, `policyfit report` and
    `policyfit.load_policy` read like any other.

    \b
    Examples:
      policyfit train bc hopper-medium --set policy=gaussian --out runs/bc
      policyfit train iql hopper-medium --out runs/iql
      policyfit steer runs/bc --critic runs/iql --k 10 --out runs/bc-steered
      policyfit eval runs/bc-steered --episodes 20
      policyfit steer runs/bc --critic runs/iql --k 50 --temperature 1.0 --out runs/bc-soft
    """
    from policyfit.training.steer import steer

    path = steer(policy_run, critic_run, out, k=k, temperature=temperature, seed=seed)
    how = "argmax of Q" if temperature == 0 else f"softmax(Q / {temperature:g})"
    click.echo(f"wrote {path} (policy of {policy_run} steered by {critic_run}: K={k}, {how})")
    from policyfit.training.rundir import RunDir

    if not RunDir(path).read_config()["steered"]["same_dataset"]:
        click.echo(
            "note: the policy and the critic were trained on different data (or the policy run "
            "names none); the critic's Q is trustworthy only on its own data's distribution"
        )
