"""OBP parity: policyfit.bandit's estimators against Open Bandit Pipeline 0.5.7 on the same inputs
(issue 17).

For each of several synthetic logs (``DATASETS``: good and bad loggers, binary and continuous
rewards, deficient support, a deterministic target, three slots with positions), policyfit makes
the inputs once — the feedback (:class:`policyfit.bandit.SyntheticBanditDataset`, or positions
drawn here), a target ``action_dist`` and a cross-fitted reward model
(:func:`policyfit.bandit.fit_reward_model`) — and writes them to ``.npz``. A worker process in
OBP's own virtual environment reads them back, builds OBP's ``bandit_feedback`` dict and runs
``OffPolicyEvaluation(bandit_feedback, ope_estimators).estimate_policy_values(action_dist,
estimated_rewards_by_reg_model)`` and ``.estimate_intervals(..., n_bootstrap_samples,
random_state)`` with every estimator, at OBP's default hyperparameters and at others
(``VARIANTS``). policyfit computes the same with :func:`policyfit.bandit.estimate_policy_values`
and :func:`~policyfit.bandit.estimate_intervals`; a value agrees when the two differ by at most
``1e-6``. Where OBP returns NaN (its 0/0 for rounds with a zero importance weight: DR-os with
``lambda_=0`` and SG with ``lambda_=1``) and policyfit the limit, the row says so and does not
count as a disagreement. The same rows show OBP's surprising defaults: DR-os at ``lambda_=0`` is
DM, SG-IPW/SG-DR at ``lambda_=0`` are IPW/DR, Switch-DR at ``lambda_=inf`` is DR.

With the Open Bandit Dataset samples in ``$POLICYFIT_HOME/obd`` (``--obd fetch`` downloads them
with :func:`policyfit.bandit.obd.fetch_sample`), two more checks: the uniform-random ``all``
sample joins the datasets (real logs, 80 items, three slots; a context-free target per slot), and
policyfit's :func:`~policyfit.bandit.obd.read_obd` is compared array by array with OBP's
``OpenBanditDataset`` on all six samples.

OBP's environment (obp 0.5.7 is an sdist pinned to Python < 3.11 and old numpy/scikit-learn; it
runs with current ones; torch 2.13.0 CPU is on this machine's disk, other versions would download
gigabytes — never install another)::

    python3.11 -m venv benchmarks/.venv-obp
    benchmarks/.venv-obp/bin/pip install torch==2.13.0 scikit-learn pandas scipy tqdm \\
        matplotlib seaborn pyyaml
    benchmarks/.venv-obp/bin/pip install --no-deps --ignore-requires-python obp==0.5.7

Run with our environment (about a minute on the shared 2-core CPU)::

    python benchmarks/obp_parity.py [--obp-python benchmarks/.venv-obp/bin/python]
        [--bootstrap 1000] [--obd auto|fetch|skip] [--quick]

Results: ``benchmarks/results/obp_parity_<cpu kind>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-6
INTERVAL_SEED = 12345
OBD_TARGET_BETA = 50.0  # inverse temperature of the OBD target over smoothed click rates

# name -> generator knobs, target policy, n_rounds
DATASETS: dict[str, dict[str, Any]] = {
    "logistic-bad-logger": {
        "n_rounds": 5000,
        "knobs": dict(
            n_actions=10, dim_context=5, reward_function="logistic", beta=-2.0, random_state=1
        ),
        "policy": dict(kind="epsilon_greedy", epsilon=0.3),
    },
    "polynomial-good-logger": {
        "n_rounds": 3000,
        "knobs": dict(
            n_actions=5,
            dim_context=3,
            reward_function="logistic_polynomial",
            beta=3.0,
            random_state=2,
        ),
        "policy": dict(kind="softmax", beta=2.0),
    },
    "continuous-deficient-greedy": {
        "n_rounds": 4000,
        "knobs": dict(
            n_actions=8,
            dim_context=4,
            reward_type="continuous",
            reward_function="linear",
            behavior_policy_function="linear",
            n_deficient_actions=3,
            random_state=3,
        ),
        "policy": dict(kind="greedy"),
    },
    "sparse-uniform-logger": {
        "n_rounds": 2000,
        "knobs": dict(
            n_actions=4, dim_context=3, reward_function="logistic_sparse", beta=0.0, random_state=4
        ),
        "policy": dict(kind="epsilon_greedy", epsilon=0.05),
    },
    "three-slots": {"n_rounds": 3000, "slots": 3, "n_actions": 6, "random_state": 5},
}

# (label, OBP class name, policyfit estimator, lambda_ or None for OBP's default)
VARIANTS: list[tuple[str, str, str, float | None]] = [
    ("ipw", "InverseProbabilityWeighting", "ipw", None),
    ("snipw", "SelfNormalizedInverseProbabilityWeighting", "snipw", None),
    ("dm", "DirectMethod", "dm", None),
    ("dr", "DoublyRobust", "dr", None),
    ("sndr", "SelfNormalizedDoublyRobust", "sndr", None),
    ("switch-dr", "SwitchDoublyRobust", "switch-dr", None),
    ("dr-os", "DoublyRobustWithShrinkage", "dr-os", None),
    ("sg-ipw", "SubGaussianInverseProbabilityWeighting", "sg-ipw", None),
    ("sg-dr", "SubGaussianDoublyRobust", "sg-dr", None),
    ("ipw(lambda=5)", "InverseProbabilityWeighting", "ipw", 5.0),
    ("dr(lambda=5)", "DoublyRobust", "dr", 5.0),
    ("switch-dr(lambda=5)", "SwitchDoublyRobust", "switch-dr", 5.0),
    ("dr-os(lambda=1)", "DoublyRobustWithShrinkage", "dr-os", 1.0),
    ("dr-os(lambda=100)", "DoublyRobustWithShrinkage", "dr-os", 100.0),
    ("sg-ipw(lambda=0.1)", "SubGaussianInverseProbabilityWeighting", "sg-ipw", 0.1),
    ("sg-dr(lambda=0.1)", "SubGaussianDoublyRobust", "sg-dr", 0.1),
    ("sg-dr(lambda=1)", "SubGaussianDoublyRobust", "sg-dr", 1.0),
]


# --------------------------------------------------------------------------- OBP side
def obp_worker(job_path: str) -> dict[str, Any]:
    """Runs in OBP's environment: every variant on every dataset of the job, OBP's own API."""
    import warnings

    warnings.filterwarnings("ignore")
    import obp
    import obp.ope as ope

    job = json.loads(Path(job_path).read_text())
    import pandas
    import scipy
    import sklearn
    import torch

    out: dict[str, Any] = {
        "obp_version": obp.__version__,
        "obp_env": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
            "pandas": pandas.__version__,
            "torch": torch.__version__,
        },
        "datasets": {},
    }
    for name, spec in job["datasets"].items():
        with np.load(spec["inputs"], allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        position = arrays["position"] if spec["slots"] > 1 else None
        feedback = {
            "n_rounds": int(arrays["n_rounds"]),
            "n_actions": int(arrays["n_actions"]),
            "context": arrays["context"],
            "action": arrays["action"],
            "reward": arrays["reward"],
            "pscore": arrays["pscore"],
            "position": position,
            "action_context": arrays["action_context"],
        }
        estimators = []
        for label, cls, _, lam in job["variants"]:
            kwargs = {"estimator_name": label}
            if lam is not None:
                kwargs["lambda_"] = lam
            estimators.append(getattr(ope, cls)(**kwargs))
        t0 = time.perf_counter()
        runner = ope.OffPolicyEvaluation(bandit_feedback=feedback, ope_estimators=estimators)
        values = runner.estimate_policy_values(
            action_dist=arrays["action_dist"],
            estimated_rewards_by_reg_model=arrays["q_hat"],
        )
        seconds = time.perf_counter() - t0
        intervals = runner.estimate_intervals(
            action_dist=arrays["action_dist"],
            estimated_rewards_by_reg_model=arrays["q_hat"],
            n_bootstrap_samples=job["bootstrap"],
            random_state=job["seed"],
        )
        out["datasets"][name] = {
            "values": {k: float(v) for k, v in values.items()},
            "intervals": {k: {kk: float(vv) for kk, vv in v.items()} for k, v in intervals.items()},
            "seconds": seconds,
            "ground_truth": (
                None
                if "expected_reward" not in arrays
                else float(
                    obp.dataset.SyntheticBanditDataset(n_actions=2).calc_ground_truth_policy_value(
                        arrays["expected_reward"], arrays["action_dist"]
                    )
                )
            ),
        }
    if job.get("obd_root"):
        out["obd_parse"] = obp_read_obd(job["obd_root"], job["obd_arrays"])
    return out


def obp_read_obd(root: str, dest: str) -> list[str]:
    """Runs in OBP's environment: ``OpenBanditDataset`` on the six samples, arrays to ``dest``.

    OBP 0.5.7's ``pre_process`` calls ``DataFrame.drop(columns=..., axis=1)``, which pandas 3
    rejects; this subclass makes the same call without ``axis`` and changes nothing else.
    """
    import pandas as pd
    from obp.dataset import OpenBanditDataset
    from sklearn.preprocessing import LabelEncoder

    class PandasThreeOBD(OpenBanditDataset):
        def pre_process(self) -> None:
            user_cols = self.data.columns.str.contains("user_feature")
            self.context = pd.get_dummies(self.data.loc[:, user_cols], drop_first=True).values
            item_feature_0 = self.item_context["item_feature_0"].to_frame()
            item_feature_cat = self.item_context.drop(columns=["item_id", "item_feature_0"]).apply(
                LabelEncoder().fit_transform
            )
            self.action_context = pd.concat(objs=[item_feature_cat, item_feature_0], axis=1).values

    arrays, names = {}, []
    for behavior in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            data = PandasThreeOBD(
                behavior_policy=behavior, campaign=campaign, data_path=Path(root)
            ).obtain_batch_bandit_feedback()
            for key in ("context", "action", "reward", "pscore", "position", "action_context"):
                arrays[f"{behavior}/{campaign}/{key}"] = np.asarray(data[key], dtype=np.float64)
            arrays[f"{behavior}/{campaign}/n_actions"] = np.array(data["n_actions"])
            names.append(f"{behavior}/{campaign}")
    np.savez(dest, **arrays)
    return names


def compare_obd_parse(root: str, obp_arrays: str) -> dict[str, Any]:
    """policyfit's ``read_obd`` against OBP's arrays: per sample, which arrays are equal, and the
    rounds where they differ."""
    from policyfit.bandit.obd import read_obd

    out = {}
    with np.load(obp_arrays) as z:
        for behavior in ("random", "bts"):
            for campaign in ("all", "men", "women"):
                fb = read_obd(root, behavior, campaign)
                entry: dict[str, Any] = {
                    "n_rounds": fb.n_rounds,
                    "n_actions": [fb.n_actions, int(z[f"{behavior}/{campaign}/n_actions"])],
                }
                for key in ("context", "action", "reward", "pscore", "position", "action_context"):
                    ours = np.asarray(getattr(fb, key), dtype=np.float64)
                    theirs = z[f"{behavior}/{campaign}/{key}"]
                    if ours.shape != theirs.shape:
                        entry[key] = f"shape {ours.shape} vs OBP {theirs.shape}"
                        continue
                    rows = np.flatnonzero((ours != theirs).reshape(len(ours), -1).any(axis=1))
                    entry[key] = (
                        "equal" if rows.size == 0 else f"rounds {rows.tolist()[:10]} differ"
                    )
                out[f"{behavior}/{campaign}"] = entry
    return out


# --------------------------------------------------------------------------- policyfit side
def three_slot_feedback(spec: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """Logs with three slots: a uniform logger per slot, rewards from a slot-dependent click
    model, and a target that prefers low actions more strongly in the first slot."""
    from policyfit.bandit import BanditFeedback

    rng = np.random.default_rng(spec["random_state"])
    n, k, slots = spec["n_rounds"], spec["n_actions"], spec["slots"]
    context = rng.normal(size=(n, 3))
    position = rng.integers(0, slots, size=n)
    action = rng.integers(0, k, size=n)
    attractiveness = 1 / (1 + np.exp(-(context[:, :1] - np.arange(k) / k)))  # [n, k]
    examination = np.array([0.9, 0.6, 0.3])[position]
    click = rng.binomial(1, examination * attractiveness[np.arange(n), action])
    logits = -np.arange(k)[None, :, None] * np.array([1.0, 0.5, 0.1])[None, None, :]
    action_dist = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    action_dist = np.repeat(action_dist, n, axis=0)
    fb = BanditFeedback(
        context=context,
        action=action,
        reward=click.astype(float),
        pscore=np.full(n, 1.0 / k),
        position=position,
        n_actions=k,
    )
    return fb, action_dist


def obd_feedback(spec: dict[str, Any]) -> tuple[Any, np.ndarray]:
    """The Open Bandit Dataset sample (uniform-random logger, campaign all) and a context-free
    target per slot: softmax of each item's smoothed logged click rate in that slot."""
    from policyfit.bandit.obd import read_obd

    fb = read_obd(spec["obd"], "random", "all")
    k, slots = fb.n_actions, fb.len_list
    scores = np.zeros((k, slots))
    for slot in range(slots):
        rows = fb.position == slot
        clicks = np.bincount(fb.action[rows], weights=fb.reward[rows], minlength=k)
        shown = np.bincount(fb.action[rows], minlength=k)
        scores[:, slot] = (clicks + 1) / (shown + 100)
    logits = spec["beta"] * scores
    pi = np.exp(logits - logits.max(axis=0)) / np.exp(logits - logits.max(axis=0)).sum(axis=0)
    return fb, np.repeat(pi[None], fb.n_rounds, axis=0)


def make_inputs(name: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Write one dataset's OPE inputs; return what policyfit needs to evaluate them."""
    from policyfit.bandit import (
        SyntheticBanditDataset,
        action_dist_from_scores,
        fit_reward_model,
        ground_truth_policy_value,
    )

    if "obd" in spec:
        fb, action_dist = obd_feedback(spec)
        truth = None
    elif "slots" in spec:
        fb, action_dist = three_slot_feedback(spec)
        truth = None
    else:
        fb = SyntheticBanditDataset(**spec["knobs"]).obtain_batch_bandit_feedback(spec["n_rounds"])
        policy = dict(spec["policy"])
        action_dist = action_dist_from_scores(fb.expected_reward, policy.pop("kind"), **policy)
        truth = ground_truth_policy_value(fb, action_dist)
    q_hat = fit_reward_model(
        fb, n_folds=3, random_state=0, len_list=action_dist.shape[2], **spec.get("reward_model", {})
    )
    arrays = {**fb.to_obp_dict(), "action_dist": action_dist, "q_hat": q_hat}
    path = work / f"{name}.npz"
    np.savez(path, **arrays)
    w = action_dist[np.arange(fb.n_rounds), fb.action, fb.position] / fb.pscore
    return {
        "feedback": fb,
        "action_dist": action_dist,
        "q_hat": q_hat,
        "inputs": str(path),
        "slots": int(action_dist.shape[2]),
        "truth": truth,
        "describe": {
            "n_rounds": fb.n_rounds,
            "n_actions": fb.n_actions,
            "len_list": int(action_dist.shape[2]),
            "spec": {k: v for k, v in spec.items() if k != "n_rounds"},
            "zero_weight_rounds": int((w == 0).sum()),
            "max_weight": float(w.max()),
        },
    }


def policyfit_side(made: dict[str, Any], bootstrap: int, seed: int) -> dict[str, Any]:
    from policyfit.bandit import estimate_intervals, estimate_policy_values

    values, intervals = {}, {}
    t0 = time.perf_counter()
    for label, _, estimator, lam in VARIANTS:
        options = {} if lam is None else {"lambda_": {estimator: lam}}
        values[label] = estimate_policy_values(
            made["feedback"], made["action_dist"], [estimator], made["q_hat"], **options
        )[estimator]
    seconds = time.perf_counter() - t0
    for label, _, estimator, lam in VARIANTS:
        options = {} if lam is None else {"lambda_": {estimator: lam}}
        intervals[label] = estimate_intervals(
            made["feedback"],
            made["action_dist"],
            [estimator],
            made["q_hat"],
            n_bootstrap_samples=bootstrap,
            random_state=seed,
            **options,
        )[estimator]
    return {"values": values, "intervals": intervals, "seconds": seconds}


def find_obd(mode: str) -> Path | None:
    """The OBD samples' root, fetched first with ``mode="fetch"``; None when absent or skipped."""
    from policyfit.bandit.obd import fetch_sample, sample_root

    if mode == "skip":
        return None
    if mode == "fetch":
        return fetch_sample()
    root = sample_root()
    return root if (root / "random" / "all" / "all.csv").is_file() else None


def run_obp(python: str, job: dict[str, Any], work: Path) -> dict[str, Any]:
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job))
    cmd = [python, str(Path(__file__).resolve()), "--obp-worker", str(job_path)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if proc.returncode != 0:
        raise SystemExit(f"the OBP worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- comparison
def compare(ours: float, theirs: float) -> dict[str, Any]:
    if math.isnan(theirs) and not math.isnan(ours):
        return {"policyfit": ours, "obp": None, "diff": None, "status": "obp-nan"}
    diff = abs(ours - theirs)
    return {
        "policyfit": ours,
        "obp": theirs,
        "diff": diff,
        "status": "equal" if diff <= TOLERANCE else "DIFFERENT",
    }


def compare_all(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for label, *_ in VARIANTS:
        row = {"value": compare(ours["values"][label], theirs["values"][label])}
        for key, value in ours["intervals"][label].items():
            row[key] = compare(value, theirs["intervals"][label][key])
        rows[label] = row
    return rows


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    cells = [
        cell
        for data in results.values()
        for row in data["comparison"].values()
        for cell in row.values()
    ]
    diffs = [c["diff"] for c in cells if c["diff"] is not None]
    return {
        "compared": len(cells),
        "equal": sum(c["status"] == "equal" for c in cells),
        "different": sum(c["status"] == "DIFFERENT" for c in cells),
        "obp_nan": sum(c["status"] == "obp-nan" for c in cells),
        "max_abs_diff": max(diffs) if diffs else None,
        "tolerance": TOLERANCE,
    }


def surprises(results: dict[str, Any]) -> list[str]:
    """OBP's defaults that make one estimator another, read off OBP's own numbers."""
    notes = []
    for name, data in results.items():
        obp_values = data["obp"]["values"]
        for alias, same in (
            ("dr-os", "dm"),
            ("sg-ipw", "ipw"),
            ("sg-dr", "dr"),
            ("switch-dr", "dr"),
        ):
            a, b = obp_values[alias], obp_values[same]
            if math.isnan(a):
                notes.append(
                    f"{name}: OBP's default {alias} is NaN ({data['describe']['zero_weight_rounds']} "
                    f"rounds with importance weight 0 make lambda w / (w^2 + lambda) = 0/0); "
                    f"policyfit gives {data['policyfit']['values'][alias]:.6f} = its {same}"
                )
            elif abs(a - b) <= 1e-12:
                notes.append(f"{name}: OBP's default {alias} equals its {same} ({a:.6f})")
    return notes


def obd_markdown(parse: dict[str, Any] | None) -> list[str]:
    if not parse:
        return ["The Open Bandit Dataset samples were not there (`--obd fetch` gets them).", ""]
    keys = ("context", "action", "reward", "pscore", "position", "action_context")
    lines = [
        "Reading the Open Bandit Dataset samples: policyfit's `read_obd` against OBP's "
        "`OpenBanditDataset` (its `pre_process` given pandas 3's `drop` call, nothing else "
        "changed), array by array:",
        "",
        "| sample | rounds | n_actions (policyfit, OBP) | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for name, entry in parse.items():
        lines.append(
            f"| {name} | {entry['n_rounds']} | {entry['n_actions'][0]}, {entry['n_actions'][1]} | "
            + " | ".join(entry[k] for k in keys)
            + " |"
        )
    lines += [
        "",
        "Where rounds differ, they share a timestamp: OBP sorts with pandas' default (unstable) "
        "quicksort, policyfit stably, so tied rows may come in another order.",
        "",
    ]
    return lines


def markdown(payload: dict[str, Any]) -> str:
    s, setup = payload["summary"], payload["setup"]
    n_real = sum(name.startswith("obd") for name in payload["datasets"])
    lines = [
        "# OBP parity: policyfit.bandit vs Open Bandit Pipeline on the same inputs (issue 17)",
        "",
        f"obp {setup['obp_version']} in its own environment "
        f"({', '.join(f'{k} {v}' for k, v in setup['obp_env'].items())}); "
        f"{len(payload['datasets'])} logs ({n_real} of them real: the Open Bandit Dataset); "
        f"{len(VARIANTS)} estimator settings each; bootstrap intervals with "
        f"{setup['bootstrap']} resamples, random_state {setup['seed']}. A value agrees when "
        f"|policyfit - OBP| <= {TOLERANCE:g}.",
        "",
        f"**{s['equal']} of {s['compared']} values equal** (point estimates, bootstrap means and "
        f"both interval ends); {s['different']} different; {s['obp_nan']} where OBP returns NaN "
        f"and policyfit the limit; largest difference {s['max_abs_diff']:.2e}.",
        "",
        "| dataset | n | K | slots | rounds with w = 0 | max w | truth | OBP s (17 estimates) | policyfit s (17 estimates) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, data in payload["datasets"].items():
        d = data["describe"]
        truth = "-" if data["truth"] is None else f"{data['truth']:.4f}"
        lines.append(
            f"| {name} | {d['n_rounds']} | {d['n_actions']} | {d['len_list']} | "
            f"{d['zero_weight_rounds']} | {d['max_weight']:.1f} | {truth} | "
            f"{data['obp']['seconds']:.3f} | {data['policyfit']['seconds']:.3f} |"
        )
    lines += [
        "",
        "Point estimates (policyfit; OBP where it differs by more than the tolerance):",
        "",
    ]
    names = list(payload["datasets"])
    lines.append("| estimator | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for label, *_ in VARIANTS:
        cells = []
        for name in names:
            cell = payload["datasets"][name]["comparison"][label]["value"]
            text = f"{cell['policyfit']:.6f}"
            if cell["status"] == "obp-nan":
                text += " (OBP: NaN)"
            elif cell["status"] == "DIFFERENT":
                text += f" (OBP: {cell['obp']:.6f})"
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "What OBP's defaults do (from OBP's own numbers above):",
        "",
        *[f"- {note}" for note in payload["surprises"]],
        "",
        "The truth column is the target's value on the logged contexts (from the true q). It "
        "is no part of the parity check, but it shows what deficient support does: on "
        "continuous-deficient-greedy most rounds log an action the greedy target never takes "
        "and the target often takes an action the logger cannot, so IPW is far off in both "
        "libraries.",
        "",
        *obd_markdown(payload.get("obd_parse")),
        "Reward model: policyfit's `fit_reward_model` (logistic for 0/1 rewards, else ridge; "
        "interaction features; 3-fold cross-fitting; l2 = 1, 100 on the Open Bandit Dataset's "
        "rare clicks), the same array given to both libraries. "
        "The three-slot logs have a uniform logger per slot and a slot-dependent target, so each "
        "round's weight and DM term come from its own slot.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obp-python", default=str(HERE / ".venv-obp" / "bin" / "python"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=INTERVAL_SEED)
    parser.add_argument("--quick", action="store_true", help="two datasets, 100 resamples")
    parser.add_argument("--out", default=None, help="default: obp_parity_<cpu kind>")
    parser.add_argument(
        "--obd",
        choices=("auto", "fetch", "skip"),
        default="auto",
        help="the Open Bandit Dataset samples: use them when in $POLICYFIT_HOME/obd (auto), "
        "download them first (fetch), or leave them out",
    )
    parser.add_argument("--obp-worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.obp_worker:
        print(json.dumps(obp_worker(args.obp_worker)))
        return
    sys.path.insert(0, str(HERE))
    from common import cpu_kind, write_result, write_text

    if not Path(args.obp_python).exists():
        raise SystemExit(
            f"no OBP environment at {args.obp_python}; create it as the docstring says"
        )
    datasets = dict(list(DATASETS.items())[:2]) if args.quick else dict(DATASETS)
    bootstrap = 100 if args.quick else args.bootstrap
    work = Path(tempfile.mkdtemp(prefix="pf-obp-parity-"))
    t0 = time.perf_counter()
    obd_root = find_obd(args.obd)
    if obd_root is not None and not args.quick:
        datasets["obd-random-all"] = {
            "obd": str(obd_root),
            "beta": OBD_TARGET_BETA,
            # 0.4% clicks: with the default l2 = 1 the cross-fitted logistic model overfits and
            # predicts a 0.14% click rate; l2 = 100 predicts the logged 0.38%
            "reward_model": {"l2": 100.0},
        }
    made = {name: make_inputs(name, spec, work) for name, spec in datasets.items()}
    job = {
        "datasets": {n: {"inputs": m["inputs"], "slots": m["slots"]} for n, m in made.items()},
        "variants": VARIANTS,
        "bootstrap": bootstrap,
        "seed": args.seed,
        "obd_root": None if obd_root is None else str(obd_root),
        "obd_arrays": str(work / "obd_obp.npz"),
    }
    theirs = run_obp(args.obp_python, job, work)
    obd_parse = None if obd_root is None else compare_obd_parse(str(obd_root), job["obd_arrays"])
    results = {}
    for name, m in made.items():
        ours = policyfit_side(m, bootstrap, args.seed)
        results[name] = {
            "describe": m["describe"],
            "truth": m["truth"],
            "obp_truth": theirs["datasets"][name]["ground_truth"],
            "policyfit": ours,
            "obp": theirs["datasets"][name],
            "comparison": compare_all(ours, theirs["datasets"][name]),
        }
        print(f"{name}: compared", flush=True)
    payload = {
        "setup": {
            "obp_version": theirs["obp_version"],
            "obp_env": theirs["obp_env"],
            "obp_python": args.obp_python,
            "bootstrap": bootstrap,
            "seed": args.seed,
            "tolerance": TOLERANCE,
            "variants": [list(v) for v in VARIANTS],
            "quick": args.quick,
            "obd_root": None if obd_root is None else str(obd_root),
            "load_average_end": list(os.getloadavg()),
            "wall_seconds": time.perf_counter() - t0,
        },
        "summary": summarize(results),
        "surprises": surprises(results),
        "datasets": results,
        "obd_parse": obd_parse,
    }
    name = args.out or f"obp_parity_{cpu_kind()}"
    path = write_result(name, payload)
    text = markdown(payload)
    write_text(HERE / "results" / f"{name}.md", text)
    print(text)
    print(f"wrote {path} ({payload['setup']['wall_seconds']:.0f} s)")
    if payload["summary"]["different"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
