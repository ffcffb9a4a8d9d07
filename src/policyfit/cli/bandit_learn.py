"""``policyfit bandit simulate`` and ``policyfit bandit learn``: exploration and learning from logs."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from policyfit.common.files import dumps


def register(group: click.Group) -> None:
    """Attach ``simulate`` and ``learn`` to the ``bandit`` group of :mod:`policyfit.cli.bandit`."""
    bandit = group.commands["bandit"]
    bandit.add_command(simulate_command)
    bandit.add_command(learn_command)


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

    if out is not None:
        from policyfit.common.files import check_writable

        check_writable(out)  # before the simulation, not after it
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


def _parse_rule(rule: str) -> tuple[str, float]:
    from policyfit.bandit.learn import RULES
    from policyfit.errors import ConfigError

    name, _, value = rule.partition(":")
    if name not in RULES or (name != "greedy" and not value):
        raise ConfigError(
            f"expected greedy, epsilon:E, igw:GAMMA or softmax:TEMPERATURE, got {rule!r}",
            field="rule",
        )
    try:
        return name, float(value) if value else 0.0
    except ValueError:
        raise ConfigError(f"not a number in {rule!r}", field="rule") from None


@click.command("learn")
@click.argument("logs")
@click.option(
    "--learner",
    type=click.Choice(["regression", "ipw", "dr"]),
    default="dr",
    show_default=True,
    help="regression: greedy on a ridge oracle; ipw: OBP's IPWLearner objective; dr: DR pseudo-rewards.",
)
@click.option(
    "--weighting",
    type=click.Choice(["none", "ipw", "balanced"]),
    default="none",
    show_default=True,
    help="Row weights of the regression learner.",
)
@click.option(
    "--rule",
    default="greedy",
    show_default=True,
    help="How the saved policy acts: greedy, epsilon:E, igw:GAMMA or softmax:TEMPERATURE.",
)
@click.option("--l2", type=float, default=1.0, show_default=True, help="Ridge / L2 strength.")
@click.option(
    "--features",
    type=click.Choice(["linear", "quadratic"]),
    default="linear",
    show_default=True,
    help="Context features of the linear scores.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the cross-fitting folds."
)
@click.option("--out", required=True, type=click.Path(), help="Where to write the policy (.npz).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def learn_command(logs, learner, weighting, rule, l2, features, seed, out, as_json):
    """Learn a policy from the bandit LOGS (.npz, OBP's keys) and save it.

    The policy scores each action linearly in the context and acts by --rule; its action
    distribution feeds `policyfit bandit ope --policy`, and `act` gives actions with their
    propensities for the next round of logging.

    \b
    Examples:
      policyfit bandit make-synthetic --n 20000 --n-actions 5 --beta -2 --out logs.npz
      policyfit bandit learn logs.npz --learner dr --out policy.npz
      policyfit bandit learn logs.npz --learner regression --weighting ipw --rule igw:100 \\
          --out explore.npz
      policyfit bandit ope logs.npz --policy policy.npz
    """
    from policyfit.bandit.feedback import load_feedback
    from policyfit.bandit.learn import learn_policy
    from policyfit.common.files import check_writable

    name, param = _parse_rule(rule)
    check_writable(out)
    fb = load_feedback(logs)
    if fb.position is not None and len(set(map(int, fb.position))) > 1:
        from policyfit.errors import ConfigError

        raise ConfigError(
            "logs with several positions (slates) are not supported by these learners",
            path=logs,
            field="position",
        )
    policy = learn_policy(
        fb.context,
        fb.action,
        fb.reward,
        fb.pscore,
        fb.n_actions,
        learner,
        weighting=weighting,
        l2=l2,
        features=features,
        seed=seed,
    ).with_rule(name, param)
    policy.info["logs"] = str(logs)
    path = policy.save(out)
    greedy = policy.act_greedy(fb.context)
    summary = {
        "policy": str(path),
        "learner": learner,
        "rule": rule,
        "rounds": fb.n_rounds,
        "n_actions": fb.n_actions,
        "greedy_action_shares": (np.bincount(greedy, minlength=fb.n_actions) / len(greedy))
        .round(4)
        .tolist(),
    }
    if as_json:
        click.echo(dumps(summary, indent=None))
        return
    click.echo(
        f"{learner} policy from {fb.n_rounds:,} rounds, {fb.n_actions} actions, acting {rule}: "
        f"{path}"
    )
    click.echo(f"evaluate it: policyfit bandit ope {logs} --policy {path}")
