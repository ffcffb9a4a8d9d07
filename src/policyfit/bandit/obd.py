"""The Open Bandit Dataset (ZOZOTOWN, Saito et al. 2021): its CSV layout as :class:`BanditFeedback`.

Layout (the full data and the 10,000-row samples that ship in the ``obp`` sdist,
``obp/dataset/obd/``): ``<root>/<behavior>/<campaign>/<campaign>.csv`` and
``<root>/<behavior>/<campaign>/item_context.csv``, with ``behavior`` ``random`` (uniform logger)
or ``bts`` (Bernoulli Thompson sampling) and ``campaign`` ``all``, ``men`` or ``women``. Columns
of the log: an unnamed index, ``timestamp``, ``item_id``, ``position`` (1-3), ``click``,
``propensity_score``, ``user_feature_0..3`` (hashed categories), ``user-item_affinity_*``; of
``item_context.csv``: an unnamed index, ``item_id``, ``item_feature_0`` (a number),
``item_feature_1..3`` (hashed categories).

:func:`read_obd` follows OBP 0.5.7's default preprocessing (``OpenBanditDataset.load_raw_data``
and ``pre_process``): rows sorted by timestamp (stably here); ``action = item_id``;
``position`` = dense rank of the position - 1; ``reward = click``; ``pscore =
propensity_score``; ``context`` = one-hot user features without each feature's first category
(pandas' ``get_dummies(drop_first=True)``: categories sorted, columns feature by feature);
``action_context`` = the label-encoded ``item_feature_1..3`` (sorted categories -> 0, 1, ...) then
``item_feature_0``, one row per item id; ``n_actions`` = the number of items. Standard library
``csv`` only (no pandas). Checked against OBP's own ``OpenBanditDataset`` (with its
``pre_process`` made to run on pandas 3) on the six samples: every array is equal, except that
OBP sorts with pandas' default, unstable quicksort, so rows with the same timestamp may come in
another order (``random/men``: rounds 7341 and 7342 swapped).

:func:`fetch_sample` puts the samples into ``$POLICYFIT_HOME/obd`` by downloading the ``obp``
sdist with pip (1.3 MB) and unpacking only the CSVs; nothing here downloads at import time.

Example:
    >>> fb = read_obd(sample_root(), behavior="random", campaign="all")  # doctest: +SKIP
    >>> fb.n_rounds, fb.n_actions, fb.len_list, fb.context.shape        # doctest: +SKIP
    (10000, 80, 3, (10000, 20))
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from policyfit.bandit.feedback import BanditFeedback
from policyfit.errors import DatasetError
from policyfit.paths import home

BEHAVIORS = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
OBP_SDIST = "obp==0.5.7"
SDIST_PREFIX = "obp-0.5.7/obp/dataset/obd/"
# the production Beta priors of ZOZOTOWN's Bernoulli TS (OBP's BernoulliTS(is_zozotown_prior=True))
BTS_PRIOR_MEMBER = "obp-0.5.7/obp/policy/conf/prior_bts.yaml"
BTS_PRIOR_FILE = "prior_bts.yaml"
LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
USER_FEATURES = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")


def _fail(path: Path | str, field: str, message: str) -> NoReturn:
    raise DatasetError(message, path=str(path), field=field)


def sample_root() -> Path:
    """Where :func:`fetch_sample` puts the samples: ``$POLICYFIT_HOME/obd``."""
    return home() / "obd"


def campaign_dir(root: str | os.PathLike, behavior: str, campaign: str) -> Path:
    """The folder holding ``<campaign>.csv``: ``root`` itself, ``root/<campaign>`` or
    ``root/<behavior>/<campaign>`` (whichever has the file)."""
    if behavior not in BEHAVIORS:
        _fail(
            "import-obd", "behavior", f"unknown behavior policy {behavior!r}; choose random or bts"
        )
    if campaign not in CAMPAIGNS:
        _fail("import-obd", "campaign", f"unknown campaign {campaign!r}; choose all, men or women")
    root = Path(root).expanduser()
    for candidate in (root, root / campaign, root / behavior / campaign):
        if (candidate / f"{campaign}.csv").is_file():
            return candidate
    _fail(
        root,
        "path",
        f"no {behavior}/{campaign}/{campaign}.csv under this folder; expected the Open Bandit "
        "Dataset layout <root>/<behavior>/<campaign>/<campaign>.csv (`policyfit bandit "
        "import-obd --fetch` fetches the 10,000-row samples)",
    )


def _read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        _fail(path, "file", f"cannot be read as CSV: {exc}")
    if not rows:
        _fail(path, "file", "is empty")
    header, body = rows[0], rows[1:]
    missing = [c for c in required if c not in header]
    if missing:
        _fail(path, missing[0], f"column is missing (the header has {len(header)} columns)")
    if not body:
        _fail(path, "file", "has a header but no rows")
    short = [i for i, r in enumerate(body) if len(r) != len(header)]
    if short:
        _fail(
            path,
            "file",
            f"line {short[0] + 2} has {len(body[short[0]])} fields, the header {len(header)}",
        )
    return header, body


def _numbers(
    path: Path, header: list[str], body: list[list[str]], name: str, kind: type
) -> np.ndarray:
    j = header.index(name)
    out = []
    for i, row in enumerate(body):
        try:
            value = kind(float(row[j])) if kind is int else float(row[j])
        except ValueError:
            _fail(path, name, f"line {i + 2}: {row[j]!r} is not a number")
        if kind is int and float(row[j]) != int(float(row[j])):
            _fail(path, name, f"line {i + 2}: {row[j]!r} is not a whole number")
        out.append(value)
    return np.asarray(out, dtype=np.int64 if kind is int else np.float64)


def _one_hot_drop_first(columns: list[list[str]]) -> np.ndarray:
    """``get_dummies(drop_first=True)``: per column, sorted categories, the first dropped."""
    blocks = []
    for values in columns:
        categories = sorted(set(values))[1:]
        index = {c: k for k, c in enumerate(categories)}
        block = np.zeros((len(values), len(categories)))
        for i, v in enumerate(values):
            if v in index:
                block[i, index[v]] = 1.0
        blocks.append(block)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((0, 0))


def _label_encode(values: list[str]) -> np.ndarray:
    index = {c: k for k, c in enumerate(sorted(set(values)))}
    return np.array([index[v] for v in values], dtype=np.float64)


def _item_context(path: Path, n_logged: int) -> np.ndarray:
    """``[n_items, 4]``: label-encoded ``item_feature_1..`` then ``item_feature_0``, row = item id
    (ids must be 0..n_items-1 and cover every logged item)."""
    header, body = _read_csv(path, ("item_id", "item_feature_0"))
    ids = _numbers(path, header, body, "item_id", int)
    if sorted(ids.tolist()) != list(range(len(ids))):
        _fail(path, "item_id", f"item ids must be 0..{len(ids) - 1}, each once")
    if len(ids) < n_logged:
        _fail(path, "item_id", f"lists {len(ids)} items but the log has item {n_logged - 1}")
    categorical = sorted(
        (c for c in header if c.startswith("item_feature_") and c != "item_feature_0"),
        key=lambda c: int(c.rsplit("_", 1)[1]) if c.rsplit("_", 1)[1].isdigit() else 0,
    )
    columns = [_label_encode([row[header.index(c)] for row in body]) for c in categorical]
    columns.append(_numbers(path, header, body, "item_feature_0", float))
    return np.stack(columns, axis=1)[np.argsort(ids, kind="stable")]


def read_obd(
    root: str | os.PathLike, behavior: str = "random", campaign: str = "all"
) -> BanditFeedback:
    """One behavior policy x campaign of the Open Bandit Dataset as :class:`BanditFeedback`
    (OBP's default preprocessing; see the module docstring).

    Raises:
        DatasetError: a missing folder or file, a missing column, a malformed line (one line
            naming the file, the column and the line).
    """
    folder = campaign_dir(root, behavior, campaign)
    path = folder / f"{campaign}.csv"
    header, body = _read_csv(path, (*LOG_COLUMNS, *USER_FEATURES))
    # parse in file order (errors name the file's line), then sort by timestamp (stably)
    action = _numbers(path, header, body, "item_id", int)
    raw_position = _numbers(path, header, body, "position", int)
    reward = _numbers(path, header, body, "click", float)
    pscore = _numbers(path, header, body, "propensity_score", float)
    user_cols = [c for c in header if "user_feature" in c]
    context = _one_hot_drop_first([[row[header.index(c)] for row in body] for c in user_cols])
    ts = header.index("timestamp")
    order = np.array(sorted(range(len(body)), key=lambda i: body[i][ts]), dtype=np.int64)
    action, raw_position, reward, pscore, context = (
        a[order] for a in (action, raw_position, reward, pscore, context)
    )
    position = np.unique(raw_position, return_inverse=True)[1].astype(np.int64)
    if action.min() < 0:
        _fail(path, "item_id", "item ids must be >= 0")
    n_actions = int(action.max()) + 1
    items = folder / "item_context.csv"
    action_context = _item_context(items, n_actions) if items.is_file() else None
    if action_context is not None:
        n_actions = int(action_context.shape[0])  # items never logged are actions too
    return BanditFeedback(
        context=context,
        action=action,
        reward=reward,
        pscore=pscore,
        position=position,
        n_actions=n_actions,
        action_context=action_context,
        source=str(path),
    )


def on_policy_value(root: str | os.PathLike, behavior: str, campaign: str) -> float:
    """The logged policy's click rate (OBP's ``calc_on_policy_policy_value_estimate`` without a
    split): the ground truth the OPE check of the OBP paper compares with."""
    return float(read_obd(root, behavior, campaign).reward.mean())


def fetch_sample(
    dest: str | os.PathLike | None = None, *, pip: Sequence[str] | None = None
) -> Path:
    """Download the ``obp`` 0.5.7 sdist with pip and unpack only its Open Bandit Dataset CSVs into
    ``dest`` (default :func:`sample_root`); returns ``dest``. Skips the download when the six logs
    are already there."""
    dest = Path(dest).expanduser() if dest is not None else sample_root()
    wanted = [dest / b / c / f"{c}.csv" for b in BEHAVIORS for c in CAMPAIGNS]
    wanted.append(dest / BTS_PRIOR_FILE)
    if all(p.is_file() for p in wanted):
        return dest
    pip = list(pip) if pip is not None else [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="pf-obd-") as tmp:
        cmd = [*pip, "download", OBP_SDIST, "--no-deps", "--ignore-requires-python",
               "--no-binary", ":all:", "-d", tmp, "-q"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("obp-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            _fail(OBP_SDIST, "download", f"pip download failed: {tail}")
        staging = Path(tmp) / "obd"
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                name = member.name
                if member.isfile() and name == BTS_PRIOR_MEMBER:
                    relative = Path(BTS_PRIOR_FILE)
                elif member.isfile() and name.startswith(SDIST_PREFIX) and name.endswith(".csv"):
                    relative = Path(name[len(SDIST_PREFIX) :])
                else:
                    continue
                if ".." in relative.parts or relative.is_absolute():
                    continue
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        dest.mkdir(parents=True, exist_ok=True)
        for path in [*staging.rglob("*.csv"), *staging.glob(BTS_PRIOR_FILE)]:
            target = dest / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
    return dest


def bts_prior(root: str | os.PathLike, campaign: str) -> tuple[np.ndarray, np.ndarray]:
    """ZOZOTOWN's production Beta prior ``(alpha, beta)`` per item for ``campaign``, from the
    ``prior_bts.yaml`` that :func:`fetch_sample` unpacks beside the logs."""
    import yaml

    path = Path(root).expanduser() / BTS_PRIOR_FILE
    if not path.is_file():
        _fail(path, "prior", "missing; run `policyfit bandit import-obd --fetch` (fetch_sample)")
    try:
        table = yaml.safe_load(path.read_text())[campaign]
        alpha = np.asarray(table["alpha"], dtype=np.float64)
        beta = np.asarray(table["beta"], dtype=np.float64)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        _fail(path, campaign, f"not OBP's prior table ({type(exc).__name__}: {exc})")
    if alpha.shape != beta.shape or alpha.ndim != 1 or (alpha <= 0).any() or (beta <= 0).any():
        _fail(path, campaign, "alpha and beta must be positive vectors of one length")
    return alpha, beta


def bts_action_dist(
    alpha: np.ndarray,
    beta: np.ndarray,
    n_rounds: int,
    len_list: int = 3,
    n_sim: int = 100_000,
    seed: int = 12345,
) -> np.ndarray:
    """Bernoulli Thompson sampling's slate distribution ``[n_rounds, K, len_list]`` under the
    prior: the share of ``n_sim`` posterior draws (``Beta(alpha, beta)`` per item, before any
    update) that put item ``a`` in slot ``k`` of the top-``len_list`` ranking — what OBP's
    ``BernoulliTS.compute_batch_action_dist`` computes, vectorized. Context-free, so every round
    gets the same distribution."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), len_list))
    for start in range(0, n_sim, 10_000):
        draws = rng.beta(alpha, beta, size=(min(10_000, n_sim - start), len(alpha)))
        top = np.argsort(-draws, axis=1)[:, :len_list]
        for k in range(len_list):
            counts[:, k] += np.bincount(top[:, k], minlength=len(alpha))
    dist = counts / n_sim
    return np.broadcast_to(dist, (n_rounds, *dist.shape)).copy()
