"""``policyfit serve RUN``: the policy as an HTTP service that logs its decisions; and
``policyfit data import-log``: those logs plus rewards back into data."""

from __future__ import annotations

import json

import click

from policyfit.errors import PolicyfitError


def register(group: click.Group) -> None:
    """Add ``serve``, and ``import-log`` to the ``data`` group of :mod:`policyfit.cli.data`."""
    group.add_command(serve)
    group.commands["data"].add_command(import_log)


def _require_serve_extra() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise PolicyfitError(
            f"{' and '.join(missing)} not installed; install the serve extra: "
            "pip install 'policyfit[serve]'",
            field="serve",
        )


@click.command()
@click.argument("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=int, default=8000, show_default=True, help="TCP port (0: any free port)."
)
@click.option(
    "--log",
    "log_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Append every decision to DIR/decisions-<start>-<pid>.jsonl (fsync before answering).",
)
@click.option(
    "--explore",
    default="greedy",
    show_default=True,
    metavar="MODE",
    help="greedy | sample | epsilon:E (discrete) | gaussian:SIGMA (continuous).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the server's RNG.")
@click.option(
    "--max-batch",
    type=int,
    default=1024,
    show_default=True,
    help="Most observations one request may carry.",
)
@click.option(
    "--log-sync",
    type=click.Choice(["group", "each"]),
    default="group",
    show_default=True,
    help="group: one fsync for all requests that arrive together; each: one fsync per request.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a config field of the policy when acting (e.g. RvS-R's target_return=3000).",
)
def serve(
    run: str,
    host: str,
    port: int,
    log_dir: str | None,
    explore: str,
    seed: int,
    max_batch: int,
    log_sync: str,
    overrides: tuple[str, ...],
) -> None:
    """Serve the policy of RUN (a run directory or a policy/ folder) over HTTP.

    POST /act with {"obs": [...]} (one observation) or {"obs": [[...], ...]} (a batch), optionally
    "request_id", "episode_id", "step"; the answer is {"request_id", "action", "propensity",
    "policy"}. GET /health and GET /metadata describe the server. A bad request gets a 4xx and
    {"error": "..."}.

    The propensity is the probability of the returned action (discrete), or its density in the
    action box (continuous, --explore sample or gaussian:SIGMA): greedy gives 1.0; epsilon:E gives
    (1-E)+E/K for the greedy action and E/K for the others; gaussian:SIGMA adds noise of standard
    deviation SIGMA x half the box width, truncated to the box.

    With --log DIR every decision (request id, time, observation, action, propensity, policy
    fingerprint) is written and fsync-ed before the answer is sent; turn the log into data with
    `policyfit data import-log`.

    \b
    Examples:
      policyfit serve runs/iql-hopper-medium-s0
      policyfit serve runs/crr-cartpole-s0 --explore epsilon:0.1 --log logs/ --port 8080
      curl -s localhost:8080/act -d '{"obs": [0.01, 0.2, -0.03, 0.1]}'
    """
    _require_serve_extra()
    from policyfit.cli.train import parse_overrides
    from policyfit.serving.app import PolicyServer
    from policyfit.serving.app import serve as run_server

    server = PolicyServer.from_path(
        run,
        explore,
        seed=seed,
        log_dir=log_dir,
        max_batch=max_batch,
        log_sync=log_sync,
        overrides=parse_overrides(overrides),
    )
    run_server(server, host, port, announce=lambda line: click.echo(line))


@click.command("import-log")
@click.argument("log_dir", metavar="DIR")
@click.option(
    "--rewards",
    "rewards_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV (request_id,reward[,index][,terminal]) or JSON lines with the same keys.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Where to write: .npz / .hdf5 / Minari folder (dataset), .npz (bandit).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dataset", "bandit"]),
    default="dataset",
    show_default=True,
    help="dataset: a policyfit Dataset; bandit: Open Bandit Pipeline's bandit_feedback keys.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def import_log(log_dir: str, rewards_path: str, out: str, fmt: str, as_json: bool) -> None:
    """Join the decision logs of `policyfit serve --log DIR` with rewards that came later.

    Rewards are matched by request id (and index, the row of a batch request; default 0).
    Decisions without a reward are dropped and counted. --format dataset groups decisions into
    episodes by episode_id (ordered by step; one-step terminal episodes without one) and keeps the
    propensities as the extra array "propensities"; --format bandit (discrete actions) writes
    n_rounds, n_actions, context, action, reward, pscore, position, action_context.

    \b
    Examples:
      policyfit data import-log logs/ --rewards rewards.csv --out feedback.npz --format bandit
      policyfit data import-log logs/ --rewards rewards.jsonl --out logged.hdf5
      policyfit train iql --dataset logged.hdf5
    """
    from policyfit.serving.import_log import import_log as run_import

    summary = run_import(log_dir, rewards_path, out, fmt=fmt)
    if as_json:
        click.echo(json.dumps(summary))
        return
    made = (
        f"{summary['rounds']:,} rounds, {summary['n_actions']} actions"
        if fmt == "bandit"
        else f"{summary['transitions']:,} transitions in {summary['episodes']:,} episodes"
    )
    click.echo(
        f"read {summary['decisions']:,} decisions from {summary['log_files']} log file(s); "
        f"{summary['with_reward']:,} with a reward, {summary['dropped_without_reward']:,} dropped "
        f"without one; {summary['rewards_unmatched']:,} of {summary['rewards']:,} rewards matched "
        "no decision"
    )
    if summary["torn_lines"]:
        click.echo(
            f"skipped {summary['torn_lines']} torn last line(s) (a crash mid-write; never answered)"
        )
    if summary.get("unknown_next_observations"):
        click.echo(
            f"{summary['unknown_next_observations']:,} cut episode end(s) without a logged next "
            "observation (next_observations repeats the observation there)"
        )
    click.echo(f"wrote {summary['out']} ({fmt}: {made})")
