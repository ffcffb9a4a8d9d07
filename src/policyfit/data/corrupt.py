"""Data corruption following Yang et al. (ICLR 2024), "Towards Robust Offline RL under Diverse Data Corruption".

The protocol (Sec. 3 and the corruption appendix of the paper; reference code ``attack.py`` in
github.com/YangRui2015/RIQL):

* every transition is selected for corruption independently with probability ``c`` (``rate``);
* **random** corruption of a selected transition, with ``std`` the per-dimension standard deviation
  of the corrupted field over the whole dataset:

  ====================  ==========================  ============================================
  target                field changed               new value
  ====================  ==========================  ============================================
  ``observations``      ``observations`` (s only)   ``s + λ · std(s)``,   ``λ ~ U(-ε, ε)^d``
  ``actions``           ``actions``                 ``clip(a + λ · std(a))`` to the action space
  ``rewards``           ``rewards``                 ``r̂ ~ U(-30ε, 30ε)`` (replaced, not added)
  ``dynamics``          ``next_observations``       ``s' + λ · std(s')``
  ====================  ==========================  ============================================

* **adversarial** rewards are ``-ε · r`` (here, numpy only); adversarial observations, actions and
  dynamics need a critic and live in :mod:`policyfit.corruption` (layer 1).

Choices, and why:

* ``observations`` perturbs ``s`` only, never ``s'``: in the reference code the observation attack
  writes ``dataset["observations"]`` and the dynamics attack ``dataset["next_observations"]``; the two
  are separate attacks. A corrupted ``s_t`` therefore no longer equals ``s'_{t-1}`` (the Minari writer
  keeps the true ``s'`` in that case, so the corruption survives every format).
* ``std`` is the population standard deviation (``np.std``) of the field being corrupted, as in the
  reference code.
* Actions are clipped into the declared ``action_space`` box (or, without one, into the range the
  clean actions span) so the corrupted dataset stays valid; the paper did not clip (D4RL actions live
  in [-1, 1] and its learners squash with tanh). Clipping is the only place where the perturbation
  can be smaller than drawn.
* The mask ``metadata["extra_arrays"]["corrupted"]`` holds exactly the rows whose values changed: a
  selected row that came out identical (an action already at the bound pushed further out, a
  constant dimension) is not counted. ``metadata["corruption"]["n_selected"]`` counts the draws.
* Selection and noise use two independent streams spawned from ``seed``, so one seed selects the
  same transitions for every target and mode (random and adversarial runs are paired).

Example:
    >>> import numpy as np
    >>> from policyfit.data import Dataset
    >>> from policyfit.data.corrupt import random_corruption
    >>> rng = np.random.default_rng(0)
    >>> ds = Dataset(observations=rng.normal(size=(1000, 3)), actions=rng.uniform(-1, 1, (1000, 2)),
    ...              rewards=rng.normal(size=1000), terminals=np.arange(1000) % 100 == 99)
    >>> bad = random_corruption(ds, "observations", rate=0.3, scale=1.0, seed=0)
    >>> mask = bad.metadata["extra_arrays"]["corrupted"]
    >>> round(float(mask.mean()), 2), bool(np.all(bad.observations[~mask] == ds.observations[~mask]))
    (0.3, True)
    >>> bad.metadata["corruption"]["target"], bad.metadata["corruption"]["mode"]
    ('observations', 'random')
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from policyfit.common.checks import check_int
from policyfit.data.dataset import ARRAY_FIELDS, Dataset
from policyfit.errors import DatasetError, PolicyfitError

TARGETS = ("observations", "actions", "rewards", "dynamics")
MODES = ("random", "adversarial")
# The array each target changes.
TARGET_FIELD = {
    "observations": "observations",
    "actions": "actions",
    "rewards": "rewards",
    "dynamics": "next_observations",
}
# Random reward corruption draws r̂ ~ U(-REWARD_RANGE·ε, REWARD_RANGE·ε) (30 in the paper's code).
REWARD_RANGE = 30.0
PAPER = "Yang et al., ICLR 2024, 'Towards Robust Offline RL under Diverse Data Corruption'"


# ----------------------------------------------------------------------------- arguments
def check_rate_and_scale(rate: float, scale: float) -> None:
    """Raise :class:`PolicyfitError` unless ``0 <= rate <= 1`` and ``scale >= 0`` (both finite)."""
    if not (_is_number(rate) and np.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise PolicyfitError(
            f"corruption rate must lie in [0, 1] (a probability per transition), got {rate!r}",
            field="rate",
        )
    if not (_is_number(scale) and np.isfinite(scale) and scale >= 0.0):
        raise PolicyfitError(
            f"corruption scale ε must be a finite number >= 0, got {scale!r}", field="scale"
        )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def check_corruption_args(ds: Dataset, target: str, mode: str, rate: float, scale: float) -> None:
    """Raise :class:`PolicyfitError` (one line, names the flag) for anything that cannot be run."""
    if target not in TARGETS:
        raise PolicyfitError(
            f"unknown corruption target {target!r}; choose one of {', '.join(TARGETS)}",
            field="target",
        )
    if mode not in MODES:
        raise PolicyfitError(
            f"unknown corruption mode {mode!r}; choose one of {', '.join(MODES)}", field="mode"
        )
    check_rate_and_scale(rate, scale)
    if target == "actions" and ds.discrete:
        raise PolicyfitError(
            "action corruption needs continuous actions (x + U(-ε, ε)·std has no meaning for "
            "discrete actions); corrupt observations, rewards or dynamics instead",
            path=ds.source,
            field="actions",
        )


# ----------------------------------------------------------------------------- building blocks
def corruption_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: (selection, noise); the seed is an integer >= 0."""
    seed = check_int(seed, "seed", minimum=0)
    select_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(select_seq), np.random.default_rng(noise_seq)


def select_transitions(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``[n]`` bool: each transition independently selected with probability ``rate``."""
    return rng.random(n) < rate


def feature_std(x: np.ndarray) -> np.ndarray:
    """Per-dimension population standard deviation over the dataset, float64 ``[dim]``."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1).std(axis=0)


def action_bounds(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float64 ``[act_dim]``: the declared box, finite parts only; else the data's range."""
    lo_data = ds.actions.min(axis=0).astype(np.float64)
    hi_data = ds.actions.max(axis=0).astype(np.float64)
    space = ds.metadata.get("action_space") or {}
    if isinstance(space, dict) and space.get("type") == "box":
        low, high = (_box_bound(ds, space, key) for key in ("low", "high"))
        return np.where(np.isfinite(low), low, lo_data), np.where(np.isfinite(high), high, hi_data)
    return lo_data, hi_data


def _box_bound(ds: Dataset, space: dict[str, Any], key: str) -> np.ndarray:
    """``action_space[key]`` as float64 ``[act_dim]`` (a scalar is broadcast), or a DatasetError."""
    try:
        bound = np.asarray(space[key], dtype=np.float64)
        return np.broadcast_to(bound, ds.actions.shape[1:]).copy()
    except (KeyError, TypeError, ValueError):
        raise DatasetError(
            f"the box action space needs '{key}' with one number per action dimension "
            f"({ds.actions.shape[1:]}), got {space.get(key)!r}; fix or remove the action_space",
            path=ds.source,
            field=f"action_space.{key}",
        ) from None


def clip_actions(actions: np.ndarray, ds: Dataset) -> np.ndarray:
    """Clip continuous actions into :func:`action_bounds` of ``ds``."""
    low, high = action_bounds(ds)
    return np.clip(actions, low, high)


# ----------------------------------------------------------------------------- random / reward modes
def random_corruption(
    ds: Dataset, target: str, *, rate: float = 0.3, scale: float = 1.0, seed: int = 0
) -> Dataset:
    """Random corruption of ``target`` (see the module docstring for the protocol).

    Args:
        ds: the clean dataset (not modified).
        target: ``observations``, ``actions``, ``rewards`` or ``dynamics``.
        rate: ``c``, the probability that a transition is corrupted (paper default 0.3).
        scale: ``ε``, the corruption range in units of the field's std (paper default 1.0).
        seed: same seed, same data ⇒ the same corruption.

    Returns:
        A new :class:`Dataset` with the mask and parameters in its metadata.

    Example:
        >>> bad = random_corruption(ds, "rewards", rate=0.3, scale=1.0)   # doctest: +SKIP
        >>> abs(bad.rewards[bad.metadata["extra_arrays"]["corrupted"]]).max() <= 30.0   # doctest: +SKIP
        True
    """
    check_corruption_args(ds, target, "random", rate, scale)
    select_rng, noise_rng = corruption_streams(seed)
    selected = select_transitions(len(ds), rate, select_rng)
    field = TARGET_FIELD[target]
    original = getattr(ds, field)
    rows = original[selected].astype(np.float64)
    info: dict[str, Any] = {}
    if target == "rewards":
        # The reward is replaced, not perturbed: r̂ ~ U(-30ε, 30ε) (reference code: corrupt_rew).
        new_rows = noise_rng.uniform(-scale, scale, size=rows.shape) * REWARD_RANGE
        info["reward_range"] = [-REWARD_RANGE * scale, REWARD_RANGE * scale]
    else:
        std = feature_std(original)
        lam = noise_rng.uniform(-scale, scale, size=rows.shape)
        new_rows = rows + lam * std
        info["std"] = std.tolist()
        if target == "actions":
            new_rows = clip_actions(new_rows, ds)
            info["clipped_to"] = [b.tolist() for b in action_bounds(ds)]
    return apply_corruption(
        ds,
        target=target,
        mode="random",
        rate=rate,
        scale=scale,
        seed=seed,
        selected=selected,
        new_rows=new_rows,
        info=info,
    )


def adversarial_reward_corruption(
    ds: Dataset, *, rate: float = 0.3, scale: float = 1.0, seed: int = 0
) -> Dataset:
    """Adversarial reward corruption: selected rewards become ``-ε · r`` (Yang et al. 2024).

    Example:
        >>> bad = adversarial_reward_corruption(ds, rate=0.3, scale=1.0)   # doctest: +SKIP
        >>> m = bad.metadata["extra_arrays"]["corrupted"]                   # doctest: +SKIP
        >>> np.allclose(bad.rewards[m], -ds.rewards[m])                     # doctest: +SKIP
        True
    """
    check_corruption_args(ds, "rewards", "adversarial", rate, scale)
    select_rng, _ = corruption_streams(seed)
    selected = select_transitions(len(ds), rate, select_rng)
    new_rows = -scale * ds.rewards[selected].astype(np.float64)
    return apply_corruption(
        ds,
        target="rewards",
        mode="adversarial",
        rate=rate,
        scale=scale,
        seed=seed,
        selected=selected,
        new_rows=new_rows,
        info={"rule": "r -> -ε·r"},
    )


# ----------------------------------------------------------------------------- assembling the output
def apply_corruption(
    ds: Dataset,
    *,
    target: str,
    mode: str,
    rate: float,
    scale: float,
    seed: int,
    selected: np.ndarray,
    new_rows: np.ndarray,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """A copy of ``ds`` with ``new_rows`` written into the selected rows of the target's field.

    Shared by every mode (the adversarial attacks in :mod:`policyfit.corruption` call it too). It
    records the mask of rows that actually changed, the parameters, measured rate and scale, and a
    sentence on the data card. Corrupting an already corrupted dataset stacks: ``corrupted`` is the
    union of all masks, ``corrupted_<target>`` this step's mask, and earlier parameters move to
    ``metadata["corruption"]["previous"]``.
    """
    field = TARGET_FIELD[target]
    original = getattr(ds, field)
    arrays = {name: getattr(ds, name).copy() for name in ARRAY_FIELDS}
    column = arrays[field]
    column[selected] = np.asarray(new_rows).reshape(column[selected].shape).astype(column.dtype)
    diff = column != original
    changed = diff.reshape(len(diff), -1).any(axis=1)

    md = copy.deepcopy({k: v for k, v in ds.metadata.items() if k != "extra_arrays"})
    if field == "next_observations":  # s' is no longer the s_{t+1} it may have been derived from
        md.pop("derived_next_observations", None)
    extra = {k: np.asarray(v).copy() for k, v in (ds.metadata.get("extra_arrays") or {}).items()}
    previous_mask = extra.get("corrupted")
    if previous_mask is not None and previous_mask.shape != (len(ds),):
        raise DatasetError(
            f"the stored corruption mask has shape {previous_mask.shape}, expected "
            f"({len(ds)},) (one flag per transition); drop or repair extra array 'corrupted'",
            path=ds.source,
            field="extra_arrays.corrupted",
        )
    union = changed if previous_mask is None else (np.asarray(previous_mask, bool) | changed)
    extra["corrupted"] = union
    extra[f"corrupted_{target}"] = changed
    md["extra_arrays"] = extra

    measured: dict[str, Any] = {"rate": float(changed.mean())}
    width = int(np.prod(original.shape[1:], dtype=np.int64))
    delta = column[changed].astype(np.float64) - original[changed].astype(np.float64)
    delta = delta.reshape(int(changed.sum()), width)
    if target == "rewards":
        values = column[changed].astype(np.float64)
        measured["reward_min"] = float(values.min()) if values.size else None
        measured["reward_max"] = float(values.max()) if values.size else None
    else:
        std = feature_std(original)
        safe = np.where(std > 0, std, 1.0)
        rel = np.abs(delta) / safe
        measured["max_abs_delta_over_std"] = float(rel.max()) if rel.size else 0.0
        measured["mean_abs_delta_over_std"] = float(rel.mean()) if rel.size else 0.0

    record: dict[str, Any] = {
        "target": target,
        "field": field,
        "mode": mode,
        "rate": float(rate),
        "scale": float(scale),
        "seed": int(seed),
        "n_transitions": len(ds),
        "n_selected": int(selected.sum()),
        "n_corrupted": int(changed.sum()),
        "measured": measured,
        "source": ds.source,
        "source_fingerprint": ds.fingerprint(),
        "protocol": PAPER,
        **(info or {}),
    }
    if isinstance(ds.metadata.get("corruption"), dict):
        prior = copy.deepcopy(ds.metadata["corruption"])
        record["previous"] = [*prior.pop("previous", []), prior]
    md["corruption"] = record

    card = dict(md.get("card") or {})
    card["corruption"] = describe_corruption(record)
    md["card"] = card
    return Dataset(**arrays, metadata=md, source=ds.source, _warn_truncated=False)


def describe_corruption(record: dict[str, Any]) -> str:
    """One sentence for the data card, e.g. "random corruption of observations: 301 of 1,000 ..."."""
    target, mode, eps = record["target"], record["mode"], record["scale"]
    n, k = record["n_transitions"], record["n_corrupted"]
    if target == "rewards":
        how = (
            f"replaced by U(-{REWARD_RANGE * eps:g}, {REWARD_RANGE * eps:g})"
            if mode == "random"
            else f"set to -{eps:g}·r"
        )
    elif mode == "random":
        how = f"{record['field']} perturbed by U(-{eps:g}, {eps:g})·std per dimension"
    else:
        how = (
            f"{record['field']} perturbed by δ = p·std, |p| <= {eps:g}, chosen to minimize a critic "
            "ensemble's Q-values"
        )
    text = (
        f"{mode} corruption of {target}: {k:,} of {n:,} transitions ({100.0 * k / max(n, 1):.1f}%, "
        f"c={record['rate']:g}) {how}; seed {record['seed']}; protocol of {PAPER}; the mask is "
        "metadata extra_arrays['corrupted']"
    )
    if target == "actions":
        text += "; actions clipped to the action space"
    critic = record.get("critic")
    if isinstance(critic, dict) and critic.get("description"):
        text += f"; {critic['description']}"
    return text
