"""``policyfit bandit ...``: off-policy evaluation of logged bandit feedback, synthetic logs.

* ``ope LOGS --action-dist FILE.npy`` — OBP's estimators with bootstrap intervals
  (:func:`policyfit.bandit.evaluate`);
* ``import-obd [ROOT] --out FILE`` — the Open Bandit Dataset as bandit logs;
* ``make-synthetic --n N --n-actions K --out FILE`` — synthetic logs with known ground truth
  (:class:`policyfit.bandit.SyntheticBanditDataset`), optionally a target policy's
  ``action_dist`` (``--policy-out``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import numpy as np

from policyfit.errors import ConfigError, DatasetError, PolicyfitError


def register(group: click.Group) -> None:
    group.add_command(bandit)


@click.group()
def bandit() -> None:
    """Contextual bandits: evaluate a target policy on logged feedback, import or make logs.

    Logs are .npz files with Open Bandit Pipeline's bandit_feedback keys (context, action,
    reward, pscore, position, action_context, n_rounds, n_actions; optional expected_reward,
    pi_b), as written by `make-synthetic` and `policyfit data import-log --format bandit`.
    """


def load_array(path: str, field: str) -> np.ndarray:
    """A numeric array from a ``.npy`` file, or from a ``.npz`` holding one array (or one named
    ``field``); DatasetError naming the file otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError("no such file", path=str(p), field=field)
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = loaded.files
                key = field if field in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise DatasetError(
                        f"an .npz with {len(keys)} arrays ({', '.join(keys[:5])}); give a .npy "
                        f"or an .npz with one array or one named {field}",
                        path=str(p),
                        field=field,
                    )
                loaded = loaded[key]
    except DatasetError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DatasetError(
                "holds Python objects (pickled), which policyfit never loads; save a numeric array",
                path=str(p),
                field=field,
            ) from None
        raise DatasetError(f"cannot be read as .npy: {exc}", path=str(p), field=field) from None
    except Exception as exc:  # truncated or corrupt files fail in many ways
        raise DatasetError(
            f"cannot be read as .npy ({type(exc).__name__}: {exc})", path=str(p), field=field
        ) from None
    if not isinstance(loaded, np.ndarray):
        raise DatasetError("cannot be read as .npy", path=str(p), field=field)
    return loaded


def _parse_lambdas(items: tuple[str, ...]) -> dict[str, float] | float | None:
    """``("dr-os=100", "sg-dr=0.1")`` -> dict; one bare number applies to every estimator."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        try:
            return float(items[0])
        except ValueError:
            raise ConfigError(
                f"expected NAME=VALUE or a number, got {items[0]!r}",
                path="--lambda",
                field="lambda_",
            ) from None
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip().lower()] = float(value)
        except ValueError:
            raise ConfigError(
                f"expected NAME=VALUE such as dr-os=100, got {item!r}",
                path="--lambda",
                field="lambda_",
            ) from None
    return out


def _format_table(result: dict[str, dict[str, float]], alpha: float) -> str:
    label = f"{100 * (1.0 - alpha)}% CI"
    rows = [("estimator", "estimate", f"{label} (bootstrap)")]
    for name, entry in result.items():
        rows.append(
            (
                name,
                f"{entry['estimate']:.6g}",
                f"[{entry[f'{label} (lower)']:.6g}, {entry[f'{label} (upper)']:.6g}]",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


@bandit.command("ope")
@click.argument("logs")
@click.option(
    "--action-dist",
    "action_dist_path",
    default=None,
    help="The target policy: pi_e(a | x_i) as .npy, shape [n, K, len_list] (or [n, K]).",
)
@click.option(
    "--policy",
    "policy_path",
    default=None,
    help="The target policy as a file from `policyfit bandit learn` (instead of --action-dist).",
)
@click.option(
    "--reward-model",
    "reward_model_path",
    default=None,
    help="q^(x_i, a) as .npy with action_dist's shape, for dm and the dr family "
    "(default: fit one, see --fit-reward-model).",
)
@click.option(
    "--fit-reward-model",
    "fit_model",
    type=click.Choice(["auto", "ridge", "logistic", "none"]),
    default="auto",
    show_default=True,
    help="Without --reward-model: fit q^ with cross-fitting (auto: logistic for 0/1 rewards, "
    "else ridge); none: only the model-free estimators.",
)
@click.option("--folds", type=int, default=2, show_default=True, help="Cross-fitting folds.")
@click.option(
    "--estimators",
    default=None,
    help="Comma-separated: ipw, snipw, dm, dr, sndr, switch-dr, dr-os, sg-ipw, sg-dr "
    "(default: all that the reward model allows).",
)
@click.option(
    "--lambda",
    "lambdas",
    multiple=True,
    help="NAME=VALUE, repeatable (e.g. --lambda dr-os=100 --lambda switch-dr=50); "
    "default: OBP's (inf; 0 for dr-os, sg-ipw, sg-dr).",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="1 - confidence level.")
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=int,
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the intervals.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of folds and resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def ope(
    logs: str,
    action_dist_path: str | None,
    policy_path: str | None,
    reward_model_path: str | None,
    fit_model: str,
    folds: int,
    estimators: str | None,
    lambdas: tuple[str, ...],
    alpha: float,
    n_bootstrap: int,
    seed: int,
    as_json: bool,
) -> None:
    """Estimate the value of a target policy from the bandit LOGS (.npz) alone.

    Prints, for each estimator, the estimate and its percentile-bootstrap interval (OBP's
    estimate_intervals); --json prints {estimator: {"estimate", "mean", "95.0% CI (lower)",
    "95.0% CI (upper)"}}.

    \b
    Examples:
      policyfit bandit make-synthetic --n 10000 --n-actions 10 --out logs.npz \\
          --policy-out pi_e.npy --policy epsilon_greedy
      policyfit bandit ope logs.npz --action-dist pi_e.npy
      policyfit bandit ope logs.npz --action-dist pi_e.npy --estimators ipw,dr,dr-os \\
          --lambda dr-os=100 --json
      policyfit bandit ope logs.npz --action-dist pi_e.npy --reward-model q_hat.npy
      policyfit bandit learn logs.npz --learner dr --out policy.npz
      policyfit bandit ope logs.npz --policy policy.npz --json
    """
    from policyfit.bandit import evaluate, fit_reward_model, load_feedback
    from policyfit.bandit.ope import check_action_dist, check_reward_model
    from policyfit.common.files import dumps

    if seed < 0:
        raise ConfigError(f"must be an integer >= 0, got {seed}", path="--seed", field="seed")
    if (action_dist_path is None) == (policy_path is None):
        raise ConfigError("give the target policy as --action-dist or as --policy", field="policy")
    fb = load_feedback(logs)
    if policy_path is not None:
        from policyfit.bandit.learn import load_bandit_policy

        policy = load_bandit_policy(policy_path)
        if policy.n_actions != fb.n_actions:
            raise ConfigError(
                f"the policy has {policy.n_actions} actions, the logs {fb.n_actions}",
                path=policy_path,
                field="policy",
            )
        action_dist = check_action_dist(policy.action_dist(fb.context), fb, policy_path)
    else:
        action_dist = check_action_dist(
            load_array(action_dist_path, "action_dist"), fb, action_dist_path
        )
    q_hat = None
    described = "none (model-free estimators only)"
    if reward_model_path is not None:
        q_hat = check_reward_model(
            load_array(reward_model_path, "estimated_rewards_by_reg_model"),
            action_dist,
            reward_model_path,
        )
        described = reward_model_path
    elif fit_model != "none":
        q_hat = fit_reward_model(
            fb,
            model=fit_model,
            n_folds=folds,
            random_state=seed,
            len_list=action_dist.shape[2],
        )
        described = f"{fit_model}, {folds}-fold cross-fitted" if folds > 1 else fit_model
    result = evaluate(
        fb,
        action_dist,
        estimators,
        q_hat,
        alpha=alpha,
        n_bootstrap_samples=n_bootstrap,
        random_state=seed,
        lambda_=_parse_lambdas(lambdas),
    )
    if as_json:
        click.echo(dumps(result, indent=None))
        return
    click.echo(
        f"logs: {logs} ({fb.n_rounds:,} rounds, {fb.n_actions} actions, len_list "
        f"{action_dist.shape[2]}); logged reward mean {fb.reward.mean():.6g}; reward model: "
        f"{described}"
    )
    click.echo(_format_table(result, alpha))
    if fb.expected_reward is not None:  # synthetic logs know the truth
        truth = float((fb.expected_reward * action_dist[:, :, 0]).sum(axis=1).mean())
        click.echo(f"ground truth (the logs' expected_reward): {truth:.6g}")


def _write(path: str, write: Any) -> Path:
    """Run ``write(path)``; an OSError (unwritable folder, no space) becomes one line."""
    try:
        return write(path)
    except OSError as exc:
        raise PolicyfitError(
            f"cannot write: {exc.strerror or exc}", path=os.fspath(path), field="out"
        ) from None


def _save_npy(path: str, array: np.ndarray) -> Path:
    from policyfit.common.files import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(Path(path).expanduser(), write)


@bandit.command("make-synthetic")
@click.option("--n", "n_rounds", type=int, required=True, help="Number of logged rounds.")
@click.option("--n-actions", type=int, required=True, help="Number of actions K (>= 2).")
@click.option("--dim-context", type=int, default=5, show_default=True, help="Context dimension.")
@click.option(
    "--reward-type",
    type=click.Choice(["binary", "continuous"]),
    default="binary",
    show_default=True,
)
@click.option(
    "--reward-function",
    type=click.Choice(
        [
            "logistic",
            "logistic_polynomial",
            "logistic_sparse",
            "linear",
            "polynomial",
            "sparse",
            "none",
        ]
    ),
    default="logistic",
    show_default=True,
    help="q(x, a) family (OBP's names; none: context-free q ~ U(0, 1)).",
)
@click.option(
    "--reward-std", type=float, default=1.0, show_default=True, help="Noise of continuous rewards."
)
@click.option(
    "--behavior-policy",
    type=click.Choice(["softmax-q", "linear", "polynomial"]),
    default="softmax-q",
    show_default=True,
    help="Logits of the logger: q itself, or a linear / polynomial function of the context.",
)
@click.option(
    "--beta",
    type=float,
    default=-2.0,
    show_default=True,
    help="Inverse temperature of the logger's softmax (negative: worse than uniform).",
)
@click.option(
    "--n-deficient-actions",
    type=int,
    default=0,
    show_default=True,
    help="Actions with zero logging probability in each round (deficient support).",
)
@click.option("--seed", type=int, default=12345, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Where to write the logs (.npz).")
@click.option(
    "--policy-out",
    type=click.Path(),
    default=None,
    help="Also write a target policy's action_dist [n, K, 1] (.npy) built from the true q.",
)
@click.option(
    "--policy",
    type=click.Choice(["epsilon_greedy", "greedy", "softmax", "uniform"]),
    default="epsilon_greedy",
    show_default=True,
    help="The target policy written by --policy-out.",
)
@click.option("--epsilon", type=float, default=0.1, show_default=True, help="For epsilon_greedy.")
@click.option("--policy-beta", type=float, default=1.0, show_default=True, help="For softmax.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def make_synthetic(
    n_rounds: int,
    n_actions: int,
    dim_context: int,
    reward_type: str,
    reward_function: str,
    reward_std: float,
    behavior_policy: str,
    beta: float,
    n_deficient_actions: int,
    seed: int,
    out: str,
    policy_out: str | None,
    policy: str,
    epsilon: float,
    policy_beta: float,
    as_json: bool,
) -> None:
    """Write synthetic bandit logs with known ground truth (OBP's SyntheticBanditDataset knobs).

    The logs hold expected_reward (the true q) and pi_b. With --policy-out, a target policy's
    action_dist is written too and its true value printed, to check `policyfit bandit ope`.

    \b
    Examples:
      policyfit bandit make-synthetic --n 10000 --n-actions 10 --out logs.npz
      policyfit bandit make-synthetic --n 5000 --n-actions 5 --beta 3 --n-deficient-actions 2 \\
          --out logs.npz --policy-out pi_e.npy --policy softmax --policy-beta 5
    """
    from policyfit.bandit import (
        SyntheticBanditDataset,
        action_dist_from_scores,
        ground_truth_policy_value,
        save_feedback,
    )
    from policyfit.common.files import dumps

    if seed < 0:
        raise ConfigError(f"must be an integer >= 0, got {seed}", path="--seed", field="seed")
    gen = SyntheticBanditDataset(
        n_actions=n_actions,
        dim_context=dim_context,
        reward_type=reward_type,
        reward_function=None if reward_function == "none" else reward_function,
        reward_std=reward_std,
        behavior_policy_function=None if behavior_policy == "softmax-q" else behavior_policy,
        beta=beta,
        n_deficient_actions=n_deficient_actions,
        random_state=seed,
    )
    fb = gen.obtain_batch_bandit_feedback(n_rounds)
    summary: dict[str, Any] = {
        "out": str(_write(out, lambda p: save_feedback(fb, p))),
        "n_rounds": fb.n_rounds,
        "n_actions": fb.n_actions,
        "dim_context": fb.dim_context,
        "logged_reward_mean": float(fb.reward.mean()),
        "behavior_policy_value": ground_truth_policy_value(fb, fb.pi_b),
    }
    if policy_out is not None:
        pi_e = action_dist_from_scores(
            fb.expected_reward, policy, epsilon=epsilon, beta=policy_beta
        )
        summary["policy_out"] = str(_write(policy_out, lambda p: _save_npy(p, pi_e)))
        summary["policy"] = policy
        summary["policy_value"] = ground_truth_policy_value(fb, pi_e)
    if as_json:
        click.echo(dumps(summary, indent=None))
        return
    for key, value in summary.items():
        click.echo(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")


@bandit.command("import-obd")
@click.argument("root", required=False)
@click.option(
    "--behavior",
    type=click.Choice(["random", "bts"]),
    default="random",
    show_default=True,
    help="The logging policy: uniform random or Bernoulli Thompson sampling.",
)
@click.option(
    "--campaign",
    type=click.Choice(["all", "men", "women"]),
    default="all",
    show_default=True,
)
@click.option("--out", required=True, type=click.Path(), help="Where to write the logs (.npz).")
@click.option(
    "--fetch",
    is_flag=True,
    help="Without ROOT: download the 10,000-row samples (the obp 0.5.7 sdist, 1.3 MB, via pip) "
    "into $POLICYFIT_HOME/obd first, unless they are there.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def import_obd(
    root: str | None, behavior: str, campaign: str, out: str, fetch: bool, as_json: bool
) -> None:
    """Convert the Open Bandit Dataset (ZOZOTOWN) to bandit logs (.npz).

    ROOT holds <behavior>/<campaign>/<campaign>.csv and item_context.csv (the full dataset or
    the samples of the obp package); default: $POLICYFIT_HOME/obd. OBP's preprocessing: one-hot
    user features as the context, label-encoded item features as the action context, three
    positions.

    \b
    Examples:
      policyfit bandit import-obd --fetch --behavior random --campaign all --out obd_random.npz
      policyfit bandit import-obd ~/data/open_bandit_dataset --behavior bts --out obd_bts.npz
    """
    from policyfit.bandit import save_feedback
    from policyfit.bandit.obd import fetch_sample, read_obd, sample_root
    from policyfit.common.files import dumps

    if root is None:
        root = str(fetch_sample() if fetch else sample_root())
    fb = read_obd(root, behavior, campaign)
    summary = {
        "out": str(_write(out, lambda p: save_feedback(fb, p))),
        "source": fb.source,
        "n_rounds": fb.n_rounds,
        "n_actions": fb.n_actions,
        "len_list": fb.len_list,
        "dim_context": fb.dim_context,
        "click_rate": float(fb.reward.mean()),
    }
    if as_json:
        click.echo(dumps(summary, indent=None))
        return
    for key, value in summary.items():
        click.echo(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
