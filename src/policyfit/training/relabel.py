"""Proxy labels for action-free episodes: SS-ORL's inverse-dynamics model (Zheng et al., ICML 2023).

Semi-supervised offline RL with action-free trajectories: fit an inverse-dynamics model (IDM)
``p(a_t | s_{t-k}, ..., s_t, s_{t+1})`` on the episodes that carry their actions, label the others
with its mean action, and train any offline algorithm on the union. :func:`relabel` does the first
two steps and returns the union; ``policyfit data relabel`` is its CLI. The data side (the
representation, the split, ``strip-actions``) is :mod:`policyfit.data.action_free`.

Followed from the official code (``facebookresearch/ssorl``, commit
cfefabed915e76aefb453f29344055014906d4ed):

* model (``model/mlp.py``, ``DiagGaussianDistribution``): two MLPs, one for the mean and one for
  the log-std, each ``Linear-ReLU-Linear-ReLU-Dropout-Linear`` with hidden sizes ``[1024, 1024]``,
  dropout 0.1, orthogonal weights and zero biases; ``log_std = -5 + 3.5 (tanh(x) + 1)`` (bounds
  [-5, 2]); the distribution is a tanh-squashed diagonal Gaussian and its "mean" (the label) is
  ``tanh(mu)``;
* loss (``inverse_model_seq.py``, ``train_inverse_model``): the negative log-likelihood summed
  over action dimensions, Adam at lr 1e-4, batch 1024;
* input (``data.py``, ``get_transition``, ``num_past_transitions`` k = 1): ``k + 2`` states
  ``s_{t-k}..s_t, s_{t+1}``, each normalized with the mean and std (+ 1e-6) of all the dataset's
  observations; steps before the episode's start are zero states, normalized like the others;
* validation (``config/config.yaml``): 10% of the labelled trajectories held out, the validation
  NLL measured at the first step and every 10 steps, the model with the best one kept.

Changed or simplified, and why:

* ``s_{t+1}`` is the logged next observation. The official window ``observations[t-k : t+2]``
  has no ``s_{t+1}`` at an episode's last step and shifts that step's window by one instead.
* Actions are scaled to [-1, 1] from the action space's bounds (the official code assumes D4RL's
  [-1, 1] and clamps to it, where an action of exactly +-1 has an infinite NLL). Targets are
  clipped to +-(1 - 1e-2) (:data:`TARGET_EPS`): with 1e-6, the pre-tanh target of a saturated
  action (atanh = 7.25) pulls the mean of its neighbours to the bound; on the Pendulum test data
  (14% of actions saturated) the relative MSE of the labels fell from 0.32 to 0.06 with 1e-2.
* Batches are drawn uniformly with replacement (the official code shuffles epochs); validation
  uses at most 8,192 held-out transitions; with fewer than two labelled episodes there is no
  held-out set and the validation NLL is measured on the training episodes (the card says so).
* ``steps`` defaults to :data:`DEFAULT_STEPS`, not the config's ``total_train_iters: 100``: 100
  Adam steps at lr 1e-4 leave the 2x1024 model far from converged (hopper-medium: its validation
  NLL still falls steeply at step 100). Here the best-validation parameters label; the official
  loop tracks them but never copies them back (it rebinds a local variable), so its last model
  labels.
* One model, not an ensemble (the config's ``ensemble_size`` is 1 as well).

Example:
    >>> from policyfit.data.action_free import strip_actions
    >>> free = strip_actions(ds, keep_fraction=0.1)                    # doctest: +SKIP
    >>> labelled = relabel(free, config=InverseModelConfig(steps=2000))  # doctest: +SKIP
    >>> labelled.metadata["relabel"]["idm"]["validation_nll"]         # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.common.xla import compiler_options
from policyfit.data.action_free import (
    AVAILABLE_KEY,
    DEFAULT_LABELLED,
    DEFAULT_THRESHOLD,
    PAPER,
    PROXY_KEY,
    Split,
    episode_rows,
    require_continuous,
    ssorl_split,
    with_actions,
)
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError, DatasetError
from policyfit.nn.modules import TanhNormal

DEFAULT_STEPS = 1000
MAX_VALIDATION_ROWS = 8192
PREDICT_CHUNK = 8192
LOG_STD_BOUNDS = (-5.0, 2.0)
TARGET_EPS = 1e-2  # targets clipped to +-(1 - 1e-2) inside the tanh (see the module docstring)
SOURCE = "facebookresearch/ssorl@cfefabed915e76aefb453f29344055014906d4ed"


@dataclass(frozen=True)
class InverseModelConfig:
    """The inverse-dynamics model and its training; defaults from the official config."""

    hidden_dims: tuple[int, ...] = (1024, 1024)
    dropout: float = 0.1
    lr: float = 1e-4
    batch_size: int = 1024
    past_transitions: int = 1
    validation_fraction: float = 0.1
    steps: int = DEFAULT_STEPS
    eval_every: int = 10

    def check(self) -> None:
        for name in ("batch_size", "steps", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be an integer >= 1, got {value!r}", field=name)
        if not isinstance(self.past_transitions, int) or self.past_transitions < 0:
            raise ConfigError(
                f"must be an integer >= 0, got {self.past_transitions!r}", field="past_transitions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"must lie in [0, 1), got {self.dropout!r}", field="dropout")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError(
                f"must lie in [0, 1), got {self.validation_fraction!r}",
                field="validation_fraction",
            )
        if not self.lr > 0.0:
            raise ConfigError(f"must be > 0, got {self.lr!r}", field="lr")


class _Head(nn.Module):
    """``Linear-ReLU-...-Linear-ReLU-Dropout-Linear`` (the official ``mlp`` with dropout)."""

    hidden_dims: Sequence[int]
    out_dim: int
    dropout: float

    @nn.compact
    def __call__(self, x: jnp.ndarray, training: bool) -> jnp.ndarray:
        init = nn.initializers.orthogonal(1.0)  # torch's orthogonal_ (gain 1), zero biases
        for size in self.hidden_dims:
            x = nn.relu(nn.Dense(size, kernel_init=init)(x))
        if self.dropout:
            x = nn.Dropout(self.dropout)(x, deterministic=not training)
        return nn.Dense(self.out_dim, kernel_init=init)(x)


class InverseDynamics(nn.Module):
    """``(mu, log_std)`` of the tanh-Gaussian over unit-scaled actions."""

    hidden_dims: Sequence[int]
    action_dim: int
    dropout: float

    @nn.compact
    def __call__(self, x: jnp.ndarray, training: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
        mu = _Head(self.hidden_dims, self.action_dim, self.dropout, name="mu")(x, training)
        raw = _Head(self.hidden_dims, self.action_dim, self.dropout, name="log_std")(x, training)
        low, high = LOG_STD_BOUNDS
        return mu, low + 0.5 * (high - low) * (jnp.tanh(raw) + 1.0)


# ----------------------------------------------------------------------------- inputs and scaling
def idm_inputs(ds: Dataset, past: int, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``[N, (past + 2) * obs_dim]``: ``s_{t-past}..s_t, s'_t`` per step, normalized.

    A step before the episode's start is a zero state (then normalized), as in the official code.
    """
    obs = ds.observations.astype(np.float32)
    n = len(ds)
    idx = np.arange(n)
    starts = np.repeat(ds.episode_starts, ds.episode_lengths)
    blocks = []
    for j in range(past, 0, -1):
        prev = np.zeros_like(obs)
        ok = idx - j >= starts
        prev[ok] = obs[idx[ok] - j]
        blocks.append(prev)
    blocks += [obs, ds.next_observations.astype(np.float32)]
    return np.concatenate([(b - mean) / std for b in blocks], axis=1).astype(np.float32)


def action_bounds(ds: Dataset, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(low, high)``: the action space's when finite, else the known actions'."""
    dim = ds.actions.shape[1]
    space = ds.metadata.get("action_space") or {}
    low = np.asarray(space.get("low", -np.inf), dtype=np.float64).reshape(-1)
    high = np.asarray(space.get("high", np.inf), dtype=np.float64).reshape(-1)
    low = np.broadcast_to(low, (dim,)).copy() if low.size in (1, dim) else np.full(dim, -np.inf)
    high = np.broadcast_to(high, (dim,)).copy() if high.size in (1, dim) else np.full(dim, np.inf)
    seen = ds.actions[known].astype(np.float64)
    low = np.where(np.isfinite(low), low, seen.min(axis=0))
    high = np.where(np.isfinite(high), high, seen.max(axis=0))
    flat = high - low <= 1e-8
    return np.where(flat, low - 1.0, low), np.where(flat, high + 1.0, high)


def to_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (2.0 * (actions - low) / (high - low) - 1.0).astype(np.float32)


def from_unit(unit: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.clip(low + 0.5 * (unit + 1.0) * (high - low), low, high).astype(np.float32)


# ----------------------------------------------------------------------------- training
@dataclass
class FittedModel:
    """A trained IDM and what :func:`fit_inverse_model` measured."""

    model: InverseDynamics
    params: Any
    record: dict[str, Any]

    def predict_unit(self, inputs: np.ndarray) -> np.ndarray:
        """``tanh(mu)`` (the official label) for ``inputs``, in [-1, 1]."""
        apply = jax.jit(lambda p, x: jnp.tanh(self.model.apply(p, x)[0]))
        out = [
            np.asarray(apply(self.params, jnp.asarray(inputs[i : i + PREDICT_CHUNK])))
            for i in range(0, len(inputs), PREDICT_CHUNK)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.model.action_dim), np.float32)


def nll(model: InverseDynamics, params: Any, x: jnp.ndarray, a: jnp.ndarray, **kw) -> jnp.ndarray:
    """Mean negative log-likelihood of unit-scaled actions ``a`` (summed over dimensions)."""
    mu, log_std = model.apply(params, x, **kw)
    return -jnp.mean(TanhNormal(mu, log_std).log_prob(a, eps=TARGET_EPS))


def _validation_rows(
    ds: Dataset, labelled: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(train rows, validation rows, held_out)``: episodes held out as in the official code
    (``int(n * fraction)``, at least one when there are two or more labelled episodes)."""
    n = labelled.size
    size = min(max(int(n * fraction), 1 if fraction > 0 else 0), n - 1) if n >= 2 else 0
    held = rng.choice(labelled, size=size, replace=False) if size else np.zeros(0, np.int64)
    train_eps = np.setdiff1d(labelled, held)
    train = np.flatnonzero(episode_rows(ds, train_eps))
    if size == 0:
        return train, train, False
    return train, np.flatnonzero(episode_rows(ds, held)), True


def fit_inverse_model(
    inputs: np.ndarray,
    unit_actions: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: InverseModelConfig,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> FittedModel:
    """Train the IDM on ``train_rows``; keep the parameters with the best validation NLL."""
    model = InverseDynamics(config.hidden_dims, unit_actions.shape[1], config.dropout)
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    params = model.init(init_key, jnp.zeros((1, inputs.shape[1]), jnp.float32))
    tx = optax.adam(config.lr)
    opt_state = tx.init(params)
    x_train = jnp.asarray(inputs[train_rows])
    a_train = jnp.asarray(unit_actions[train_rows])
    rng = np.random.default_rng(seed)
    if val_rows.size > MAX_VALIDATION_ROWS:
        val_rows = np.sort(rng.choice(val_rows, MAX_VALIDATION_ROWS, replace=False))
    x_val, a_val = jnp.asarray(inputs[val_rows]), jnp.asarray(unit_actions[val_rows])
    batch, size = config.batch_size, len(train_rows)

    def step(carry, x_train, a_train):
        params, opt_state, key, total = carry
        key, k_idx, k_drop = jax.random.split(key, 3)
        idx = jax.random.randint(k_idx, (batch,), 0, size)

        def loss_fn(p):
            return nll(
                model, p, x_train[idx], a_train[idx], training=True, rngs={"dropout": k_drop}
            )

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, total + loss

    def chunk(params, opt_state, key, x_train, a_train, n):
        # n is traced (a while loop): one compilation serves every chunk length
        carry = (params, opt_state, key, jnp.zeros((), jnp.float32))
        params, opt_state, key, total = jax.lax.fori_loop(
            0, n, lambda _, c: step(c, x_train, a_train), carry
        )
        return params, opt_state, key, total / n

    options = compiler_options()
    run = jax.jit(chunk, compiler_options=options)
    val = jax.jit(lambda p, x, a: nll(model, p, x, a), compiler_options=options)
    started = time.perf_counter()
    best, best_nll, best_step, history = params, float("inf"), 0, []
    done = 0
    while done < config.steps:
        # the official loop measures at step 1, then at every multiple of eval_every
        n = (
            1
            if done == 0
            else min(config.eval_every - done % config.eval_every, config.steps - done)
        )
        params, opt_state, key, train_loss = run(params, opt_state, key, x_train, a_train, n)
        done += n
        v = float(val(params, x_val, a_val))
        if v < best_nll:
            best, best_nll, best_step = params, v, done
        if (
            done == 1
            or done % max(config.steps // 10, config.eval_every) < n
            or done == config.steps
        ):
            history.append({"step": done, "train_nll": float(train_loss), "validation_nll": v})
            if log is not None:
                log(
                    f"IDM step {done:,}/{config.steps:,}: train NLL {float(train_loss):.3f}, "
                    f"validation NLL {v:.3f}"
                )
    record = {
        **asdict(config),
        "hidden_dims": list(config.hidden_dims),
        "train_transitions": int(size),
        "validation_transitions": int(len(val_rows)),
        "validation_nll": best_nll,
        "validation_nll_last": history[-1]["validation_nll"],
        "best_step": best_step,
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
        "target_eps": TARGET_EPS,
        "nll_units": "nats per transition, summed over dimensions, of actions scaled to [-1, 1] "
        f"and clipped to +-(1 - {TARGET_EPS:g})",
    }
    return FittedModel(model, best, record)


# ----------------------------------------------------------------------------- the pipeline
def _given_split(ds: Dataset) -> Split:
    """The split a partly action-free dataset already has: its labelled episodes are labelled."""
    free = ds.action_free_episodes()
    labelled = np.setdiff1d(np.arange(ds.num_episodes), free)
    if labelled.size == 0:
        raise DatasetError(
            f"every one of the {ds.num_episodes} episodes is action-free; the inverse-dynamics "
            "model needs some episodes with actions (strip with --keep-fraction > 0)",
            path=ds.source,
            field="actions",
        )
    return Split(labelled, free, np.zeros(0, np.int64), labelled.size / ds.num_episodes, 1.0, -1)


def _error(true: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    diff = pred.astype(np.float64) - true.astype(np.float64)
    return {
        "transitions": int(diff.shape[0]),
        "mse": float(np.mean(diff**2)) if diff.size else None,
        "mean_abs": float(np.mean(np.abs(diff))) if diff.size else None,
    }


def proxy_label_error(
    ds: Dataset, predicted: np.ndarray, split: Split, rows: np.ndarray
) -> dict[str, Any]:
    """MSE and mean |a - a_hat| (action units, every dimension) on the proxy-labelled steps,
    overall and for the in- and out-of-distribution unlabelled episodes (as the official code)."""
    out = _error(ds.actions[rows], predicted[rows])
    for name, eps in (
        ("in_distribution", split.in_distribution),
        ("out_of_distribution", split.out_of_distribution),
    ):
        part = rows & episode_rows(ds, eps)
        out[name] = _error(ds.actions[part], predicted[part])
    return out


def relabel(
    ds: Dataset,
    labelled: float | None = None,
    threshold: float | None = None,
    seed: int = 0,
    config: InverseModelConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Label ``ds``'s action-free episodes with an IDM and return the union (all actions known).

    With action-free episodes in ``ds`` (NaN actions, :mod:`policyfit.data.action_free`), the
    others are the labelled set, and the proxy-label error is ``"unknown"``. A fully labelled
    ``ds`` is split first (:func:`~policyfit.data.action_free.ssorl_split`, ``labelled``
    default 0.1, ``threshold`` 0.5), its other episodes labelled as if action-free, and the
    error measured against their true actions.

    The result's ``metadata["relabel"]`` holds the split, the IDM's record (validation NLL) and
    the error; its card a one-line summary; the extra array ``proxy_action`` marks the steps
    whose actions the IDM predicted.
    """
    config = config or InverseModelConfig()
    config.check()
    require_continuous(ds)
    action_free = not ds.action_available.all()
    if action_free:
        if labelled is not None or threshold is not None:
            raise ConfigError(
                f"{ds.source} already has {ds.action_free_episodes().size} action-free episodes, "
                "which are the ones labelled; --labelled/--threshold split a fully labelled "
                "dataset only: drop them",
                field="labelled" if labelled is not None else "threshold",
            )
        split = _given_split(ds)
    else:
        labelled = DEFAULT_LABELLED if labelled is None else labelled
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        split = ssorl_split(ds.episode_returns(), labelled, threshold, seed)
        if split.unlabelled.size == 0:
            raise ConfigError(
                f"the split labels all {ds.num_episodes} episodes; nothing is left to relabel "
                "(lower --labelled or --threshold)",
                field="labelled",
            )
    known = episode_rows(ds, split.labelled)
    mean = ds.observations.mean(axis=0)
    std = ds.observations.std(axis=0) + 1e-6
    inputs = idm_inputs(ds, config.past_transitions, mean, std)
    low, high = action_bounds(ds, known)
    unit = np.zeros_like(ds.actions)
    unit[known] = to_unit(ds.actions[known], low, high)
    rng = np.random.default_rng(seed)
    train_rows, val_rows, held_out = _validation_rows(
        ds, split.labelled, config.validation_fraction, rng
    )
    fitted = fit_inverse_model(inputs, unit, train_rows, val_rows, config, seed, log)
    fitted.record["validation_held_out"] = held_out
    proxy = ~known
    predicted = np.zeros_like(ds.actions)
    predicted[proxy] = from_unit(fitted.predict_unit(inputs[proxy]), low, high)
    error: dict[str, Any] | str = (
        "unknown" if action_free else proxy_label_error(ds, predicted, split, proxy)
    )
    actions = ds.actions.copy()
    actions[proxy] = predicted[proxy]
    return _labelled_dataset(ds, actions, proxy, split, fitted.record, error, action_free)


def _labelled_dataset(
    ds: Dataset,
    actions: np.ndarray,
    proxy: np.ndarray,
    split: Split,
    idm: dict[str, Any],
    error: dict[str, Any] | str,
    action_free: bool,
) -> Dataset:
    md = copy.deepcopy({k: v for k, v in ds.metadata.items() if k != "extra_arrays"})
    if action_free:
        split_record = {
            "protocol": "given: the source's action-free episodes are the unlabelled ones",
            "episodes": int(ds.num_episodes),
            "labelled_episodes": int(split.labelled.size),
            "labelled_fraction": float(split.labelled.size / ds.num_episodes),
            "labelled_transitions": int(ds.episode_lengths[split.labelled].sum()),
            "source_split": md.pop("action_free", None),
        }
    else:
        split_record = split.record(ds)
    record = {
        "method": f"{PAPER}: inverse-dynamics proxy labels; official code {SOURCE}",
        "source": ds.source,
        "source_fingerprint": ds.fingerprint(),
        "split": split_record,
        "proxy_labelled_episodes": int(split.unlabelled.size),
        "proxy_labelled_transitions": int(proxy.sum()),
        "idm": idm,
        "proxy_label_error": error,
    }
    md["relabel"] = record
    card = dict(md.get("card") or {})
    card.pop("action_free", None)
    err = (
        "proxy-label error unknown (the source had no true actions)"
        if isinstance(error, str)
        else f"proxy-label error vs true actions: MSE {error['mse']:.4g}, mean |a - a_hat| "
        f"{error['mean_abs']:.4g}"
    )
    card["relabel"] = (
        f"{int(proxy.sum()):,} of {len(ds):,} actions ({split.unlabelled.size:,} episodes) "
        f"predicted by an inverse-dynamics model trained on {split.labelled.size:,} labelled "
        f"episodes ({split_record['labelled_transitions']:,} transitions; {PAPER}); IDM "
        f"validation NLL {idm['validation_nll']:.4g}; {err}; mask: extra array '{PROXY_KEY}'"
    )
    md["card"] = card
    extra = {
        k: np.asarray(v).copy()
        for k, v in (ds.metadata.get("extra_arrays") or {}).items()
        if k != AVAILABLE_KEY
    }
    extra[PROXY_KEY] = proxy
    return with_actions(ds, actions, md, extra, allow_action_free=False)
