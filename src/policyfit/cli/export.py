"""``policyfit export RUN --format onnx --out FILE``: a trained policy as an ONNX model, optionally
checked with onnxruntime against :func:`policyfit.load_policy`."""

from __future__ import annotations

import click

FORMATS = ("onnx",)
DEFAULT_CHECK = 10_000


def register(group: click.Group) -> None:
    group.add_command(export_command)


class _Batch(click.ParamType):
    name = "batch"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).strip().lower() == "dynamic":
            return value if isinstance(value, int) else "dynamic"
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            self.fail(f"expected 'dynamic' or a positive integer, got {value!r}", param, ctx)
        return number


@click.command("export")
@click.argument("run", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="onnx",
    show_default=True,
    help="Model format.",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write, e.g. policy.onnx (a carry-aware policy also gets "
    "<name>.observe_reward.onnx next to it).",
)
@click.option(
    "--batch",
    type=_Batch(),
    default="dynamic",
    metavar="dynamic|N",
    show_default=True,
    help="Batch dimension of the model: 'dynamic' or a fixed size such as 1.",
)
@click.option(
    "--target-return",
    type=float,
    default=None,
    help="RvS-R: the return target in the initial carry recorded in the model (default: the run's).",
)
@click.option(
    "--check",
    type=click.IntRange(min=1),
    is_flag=False,
    flag_value=DEFAULT_CHECK,
    default=None,
    metavar="[N]",
    help=f"Run the model with onnxruntime on N observations (alone: {DEFAULT_CHECK}) from the "
    "run's dataset (random ones if it is not available) and print the max abs difference "
    "from load_policy; a difference above 1e-5 (discrete: any differing action) is an error.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --check sample.")
def export_command(
    run: str,
    fmt: str,
    out: str,
    batch: int | str,
    target_return: float | None,
    check: int | None,
    seed: int,
) -> None:
    """Export the deterministic policy of RUN (a run directory or a policy/ folder).

    The model takes 'obs' (float32 [B, obs_dim]) and returns 'action' (float32
    [B, action_dim], or int64 [B] for discrete actions). A policy with a carry (rvs_r) is
    exported as its step function (inputs 'obs' and the carry, outputs 'action' and
    'next_<carry>') plus <name>.observe_reward.onnx (carry and 'reward' in, next carry out).
    The model's metadata hold the algorithm, sizes, action space, carry (with its initial
    values) and the policy fingerprint (sha256 of params.msgpack). Give --check after RUN.

    \b
    Examples:
      policyfit export runs/iql-hopper-medium-s0 --format onnx --out iql.onnx
      policyfit export runs/iql-hopper-medium-s0 --out iql.onnx --check
      policyfit export runs/dqn-cartpole-replay-s0 --out dqn.onnx --batch 1 --check 2000
      policyfit export runs/rvs_r-hopper-medium-s0 --out rvs.onnx --target-return 3000
    """
    from policyfit.errors import PolicyfitError
    from policyfit.export.onnx import (
        check_observations,
        check_onnx,
        export_onnx,
        observe_reward_path,
        read_metadata,
    )
    from policyfit.training.rundir import load_policy

    path = export_onnx(run, out, batch=batch, target_return=target_return)
    meta = read_metadata(path)
    kind = meta["action_space"]
    line = f"wrote {path} ({meta['algorithm']}, {kind} actions, batch {meta['batch']}"
    if meta["carry"]:
        names = ", ".join(c["name"] for c in meta["carry"])
        line += f"; carry: {names}; observe_reward: {observe_reward_path(path)}"
    click.echo(line + ")")
    if check is None:
        return
    overrides = {} if target_return is None else {"target_return": target_return}
    policy = load_policy(run, **overrides)
    obs, source = check_observations(run, check, seed=seed)
    result = check_onnx(path, policy, obs, seed=seed)
    summary = f"check: {source}: max abs difference {result.max_abs_diff:.3g} vs load_policy"
    if result.discrete:
        same = result.observations - result.action_mismatches
        summary += f"; identical actions on {same}/{result.observations}"
    click.echo(summary)
    if not result.ok:
        raise PolicyfitError(
            f"the exported model disagrees with the policy ({summary}); please report it",
            path=str(path),
            field="check",
        )
