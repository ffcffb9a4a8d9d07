"""Adversarial corruption (Yang et al., ICLR 2024): perturbations that minimize a clean critic's Q.

For each selected transition the attack looks for ``δ = p · std`` with ``p ∈ [-ε, ε]^d`` per
dimension (``std`` over the corrupted field) that **minimizes** the clean Q-ensemble
(:mod:`policyfit.corruption.critic`), averaged over its K members:

==================  ====================================  ==============================
target              objective (minimized over p)          stored value
==================  ====================================  ==============================
``observations``    ``Q(s + δ, a)``                       ``s + δ``
``actions``         ``Q(s, clip(a + δ))``                 ``clip(a + δ)`` (action space)
``dynamics``        ``Q(s' + δ, π(s' + δ))``              ``s' + δ``
``rewards``         none (``-ε · r``, in :mod:`policyfit.data.corrupt`)
==================  ====================================  ==============================

Projected gradient descent as in the paper's code (``attack.py`` of github.com/YangRui2015/RIQL):
``p`` starts at ``U(-ε, ε)``, then ``steps`` (100) Adam steps with learning rate ``0.01 · ε``, each
followed by the projection ``p ← clip(p, -ε, ε)``. The reference code creates a new Adam optimizer
for every step, so each step is Adam's first — ``-lr · g / (|g| + 1e-8)``, a signed-gradient step
of size ``lr`` (FGSM-like); ``AttackConfig.fresh_adam_each_step`` (default True) reproduces that,
False keeps Adam's moments across the steps. Rows are independent (the objective is a sum over
rows), attacked in fixed-size batches under ``jit`` with the steps fused by ``lax.scan``. Where the
action is clipped, the objective sees the clipped action (the value that is stored), and
``π(s' + δ)`` is the critic's BC policy (the paper: EDAC's actor), differentiated through.

Example:
    >>> from policyfit.corruption.adversarial import adversarial_corruption
    >>> bad = adversarial_corruption(ds, "observations", rate=0.3, scale=1.0, seed=0)  # doctest: +SKIP
    >>> info = bad.metadata["corruption"]["attack"]                                   # doctest: +SKIP
    >>> info["q_attacked_mean"] < info["q_clean_mean"]                                # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from policyfit.common.checks import check_float, check_int
from policyfit.corruption.critic import (
    CleanCritic,
    CriticConfig,
    load_or_fit_critic,
    policy_apply,
    q_apply,
)
from policyfit.data.corrupt import (
    TARGET_FIELD,
    action_bounds,
    adversarial_reward_corruption,
    apply_corruption,
    check_corruption_args,
    corruption_streams,
    feature_std,
    select_transitions,
)
from policyfit.data.dataset import Dataset
from policyfit.errors import ConfigError, PolicyfitError

GRADIENT_TARGETS = ("observations", "actions", "dynamics")


@dataclass(frozen=True)
class AttackConfig:
    """Projected-gradient attack settings (paper: 100 steps, learning rate 0.01·ε)."""

    steps: int = 100
    step_size: float = 0.01  # Adam's learning rate is step_size · ε
    batch_size: int = 4096  # rows attacked per jitted call
    fresh_adam_each_step: bool = True  # as the reference code: every step is Adam's first

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_int(self.steps, "attack.steps", minimum=1))
        step = check_float(self.step_size, "attack.step_size", low=0.0, low_open=True)
        object.__setattr__(self, "step_size", step)
        size = check_int(self.batch_size, "attack.batch_size", minimum=1)
        object.__setattr__(self, "batch_size", size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_gradient_attack(target: str) -> ConfigError:
    return ConfigError(
        f"no gradient attack for target {target!r}; choose one of {', '.join(GRADIENT_TARGETS)} "
        "(adversarial rewards are -ε·r: use adversarial_corruption)",
        field="target",
    )


def _check_options(
    ds: Dataset,
    critic: CleanCritic | None,
    critic_config: CriticConfig | None,
    attack: AttackConfig | None,
) -> None:
    """The adversarial options have the right types, and a given critic fits the dataset."""
    for name, value, kind in (
        ("critic", critic, CleanCritic),
        ("critic_config", critic_config, CriticConfig),
        ("attack", attack, AttackConfig),
    ):
        if value is not None and not isinstance(value, kind):
            raise ConfigError(
                f"must be of type {kind.__name__} (or None), not {type(value).__name__}", field=name
            )
    if critic is None:
        return
    obs_dim = int(np.asarray(critic.obs_stats["mean"]).shape[-1])
    if (obs_dim, critic.action_dim) != (ds.observation_dim, ds.action_dim):
        raise PolicyfitError(
            f"the critic was fitted on observation/action dims {obs_dim}/{critic.action_dim}, "
            f"the dataset has {ds.observation_dim}/{ds.action_dim}; fit the critic on this "
            "dataset (or pass critic=None)",
            path=ds.source,
            field="critic",
        )


def attack_objective(target: str, config: CriticConfig, act_dim: int, params: dict[str, Any]):
    """``f(p, x, other, std, low, high) -> [B]``: the ensemble-mean Q of each row after the perturbation.

    ``x`` is the attacked array (s, a or s'); ``other`` the array held fixed (a for observations,
    s for actions, unused for dynamics).
    """

    def q_mean(obs, act):
        return q_apply(config, act_dim, params, obs, act).mean(axis=0)

    def objective(p, x, other, std, low, high):
        moved = x + p * std
        if target == "observations":
            return q_mean(moved, other)
        if target == "actions":
            return q_mean(other, jnp.clip(moved, low, high))
        if target == "dynamics":
            return q_mean(moved, policy_apply(config, act_dim, params, moved))
        raise _no_gradient_attack(target)

    return objective


@partial(jax.jit, static_argnames=("target", "config", "act_dim", "attack"))
def _attack_batch(
    target: str,
    config: CriticConfig,
    act_dim: int,
    attack: AttackConfig,
    params: dict[str, Any],
    x: jnp.ndarray,
    other: jnp.ndarray,
    std: jnp.ndarray,
    low: jnp.ndarray,
    high: jnp.ndarray,
    scale: jnp.ndarray,
    p0: jnp.ndarray,
):
    objective = attack_objective(target, config, act_dim, params)

    def total(p):  # rows are independent: the gradient of the sum is each row's own gradient
        return objective(p, x, other, std, low, high).sum()

    grad = jax.grad(total)
    opt = optax.adam(attack.step_size * scale)

    def step(carry, _):
        p, opt_state = carry
        if attack.fresh_adam_each_step:
            opt_state = opt.init(p)
        updates, opt_state = opt.update(grad(p), opt_state, p)
        p = jnp.clip(optax.apply_updates(p, updates), -scale, scale)  # projection onto the box
        return (p, opt_state), None

    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), None, length=attack.steps)
    before = objective(jnp.zeros_like(p), x, other, std, low, high)
    after = objective(p, x, other, std, low, high)
    return p, before, after


def adversarial_perturbation(
    critic: CleanCritic,
    target: str,
    x: np.ndarray,
    other: np.ndarray,
    std: np.ndarray,
    *,
    scale: float,
    p0: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    attack: AttackConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find ``p ∈ [-ε, ε]`` minimizing the critic's Q for every row of ``x``.

    Returns ``(p, q_before, q_after)``: ``p`` ``[M, d]`` (the perturbation is ``p · std``) and the
    ensemble-mean Q of each row before and after.

    Example:
        >>> p, q0, q1 = adversarial_perturbation(critic, "observations", s, a, std,
        ...                                      scale=1.0, p0=np.zeros_like(s))   # doctest: +SKIP
        >>> bool(np.abs(p).max() <= 1.0 and q1.mean() < q0.mean())                 # doctest: +SKIP
        True
    """
    attack = attack or AttackConfig()
    if target not in GRADIENT_TARGETS:
        raise _no_gradient_attack(target)
    act_dim = critic.action_dim
    if bounds is None:
        low = np.full(act_dim, -np.inf, np.float32)
        high = np.full(act_dim, np.inf, np.float32)
    else:
        low, high = (np.asarray(b, np.float32) for b in bounds)
    m = len(x)
    size = min(attack.batch_size, m)
    params = jax.tree_util.tree_map(jnp.asarray, critic.params)
    consts = (jnp.asarray(std, jnp.float32), jnp.asarray(low), jnp.asarray(high))
    eps = jnp.asarray(scale, jnp.float32)
    out_p, out_before, out_after = [], [], []
    for start in range(0, m, size):
        chunk = [np.asarray(a[start : start + size], np.float32) for a in (x, other, p0)]
        k = len(chunk[0])
        if k < size:  # pad the last batch so every call has the same shape (one compilation)
            chunk = [np.concatenate([c, np.repeat(c[-1:], size - k, axis=0)]) for c in chunk]
        p, before, after = _attack_batch(
            target,
            critic.config,
            act_dim,
            attack,
            params,
            chunk[0],
            chunk[1],
            *consts,
            eps,
            chunk[2],
        )
        out_p.append(np.asarray(p)[:k])
        out_before.append(np.asarray(before)[:k])
        out_after.append(np.asarray(after)[:k])
    return np.concatenate(out_p), np.concatenate(out_before), np.concatenate(out_after)


def adversarial_corruption(
    ds: Dataset,
    target: str,
    *,
    rate: float = 0.3,
    scale: float = 1.0,
    seed: int = 0,
    critic: CleanCritic | None = None,
    critic_config: CriticConfig | None = None,
    attack: AttackConfig | None = None,
    cache: bool = True,
) -> Dataset:
    """Adversarial corruption of ``target`` following Yang et al. (2024); see the module docstring.

    Args:
        ds: the clean dataset; the critic is fitted on it (or read from the cache).
        target: ``observations``, ``actions``, ``dynamics`` (gradient attacks) or ``rewards`` (``-ε·r``).
        rate, scale, seed: ``c``, ``ε`` and the seed, as for random corruption. The same seed
            selects the same transitions as random corruption does.
        critic: a fitted critic to attack with (default: :func:`load_or_fit_critic` of ``ds``).
        critic_config, attack: settings of the critic and of the gradient steps.
        cache: read/write the critic under ``$POLICYFIT_HOME/critics``.

    Raises:
        PolicyfitError: bad arguments (as :func:`policyfit.corruption.corrupt_dataset`), options of
            the wrong type (:class:`ConfigError`), a ``critic`` fitted on other dimensions.

    Returns:
        A new dataset; ``metadata["corruption"]`` holds the critic's description, the attack settings
        and the ensemble-mean Q of the attacked rows before and after.
    """
    check_corruption_args(ds, target, "adversarial", rate, scale)
    _check_options(ds, critic, critic_config, attack)
    if target == "rewards":
        return adversarial_reward_corruption(ds, rate=rate, scale=scale, seed=seed)
    attack = attack or AttackConfig()
    select_rng, noise_rng = corruption_streams(seed)
    selected = select_transitions(len(ds), rate, select_rng)
    field = TARGET_FIELD[target]
    original = getattr(ds, field)
    std = feature_std(original)
    x = original[selected]
    p0 = noise_rng.uniform(-scale, scale, size=x.shape)  # random start inside the box, as the paper
    info: dict[str, Any] = {"std": std.tolist(), "attack": attack.to_dict()}
    bounds = action_bounds(ds)
    if target == "actions":
        info["clipped_to"] = [b.tolist() for b in bounds]
    if not selected.any():
        new_rows = x
    else:
        critic = critic or load_or_fit_critic(ds, critic_config, cache=cache)
        other = {
            "observations": ds.actions[selected],
            "actions": ds.observations[selected],
            "dynamics": ds.actions[selected],  # unused: the dynamics objective uses π(s' + δ)
        }[target]
        p, q_before, q_after = adversarial_perturbation(
            critic, target, x, other, std, scale=scale, p0=p0, bounds=bounds, attack=attack
        )
        new_rows = x.astype(np.float64) + p.astype(np.float64) * std
        if target == "actions":
            new_rows = np.clip(new_rows, *bounds)
        info["critic"] = critic.info()
        info["attack"].update(
            {
                "learning_rate": attack.step_size * scale,
                "q_clean_mean": float(q_before.mean()),
                "q_attacked_mean": float(q_after.mean()),
                "q_drop_mean": float((q_before - q_after).mean()),
                "rows_lowered": float((q_after < q_before).mean()),
            }
        )
    return apply_corruption(
        ds,
        target=target,
        mode="adversarial",
        rate=rate,
        scale=scale,
        seed=seed,
        selected=selected,
        new_rows=new_rows,
        info=info,
    )
