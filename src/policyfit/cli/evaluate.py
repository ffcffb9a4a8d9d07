"""``policyfit eval RUN_DIR``: roll out a trained policy; mean, std and a 95% bootstrap interval
of the return and the normalized score."""

from __future__ import annotations

import json

import click


def register(group: click.Group) -> None:
    group.add_command(eval_command)


@click.command("eval")
@click.argument("run_dir")
@click.option("--episodes", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--env", "env_id", default=None, help="Environment id (default: the dataset's).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a config field of the policy when acting (e.g. RvS-R's target_return=3000).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_command(
    run_dir: str,
    episodes: int,
    seed: int,
    env_id: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Evaluate the deterministic policy of RUN_DIR in its environment.

    Reports mean and std over episodes and a 95% percentile-bootstrap confidence interval of the
    mean (return and D4RL-normalized score).

    \b
    Examples:
      policyfit eval runs/iql-hopper-medium-s0 --episodes 20
      policyfit eval runs/rvs_r-hopper-medium-s0 --set target_return=3000
    """
    import policyfit
    from policyfit.cli.train import parse_overrides
    from policyfit.evaluation.stats import return_summary

    result = policyfit.evaluate(
        run_dir, env_id, episodes=episodes, seed=seed, **parse_overrides(overrides)
    )
    refs = result["reference_scores"]
    stats = return_summary(
        result["returns"],
        result["env_id"],
        ref_scores=tuple(refs) if refs else None,
        seed=seed,
    )
    result.update({k: v for k, v in stats.items() if "ci_" in k or k == "confidence"})
    if as_json:
        click.echo(json.dumps(result))
        return
    line = (
        f"{result['env_id']}: return {result['return_mean']:.1f} +- {result['return_std']:.1f} "
        f"(95% CI {result['return_ci_low']:.1f} to {result['return_ci_high']:.1f}) "
        f"over {result['episodes']} episodes"
    )
    if result["normalized_score"] is not None:
        line += (
            f"; normalized score {result['normalized_score']:.1f} +- {result['normalized_score_std']:.1f} "
            f"(95% CI {result['normalized_score_ci_low']:.1f} to {result['normalized_score_ci_high']:.1f})"
        )
    click.echo(line)
