"""Pieces that more than one algorithm uses: regression losses, AWR weights, target updates.

Each function is pure and works on batched ``jnp`` arrays; the formula is in its docstring.

Example:
    >>> import jax.numpy as jnp
    >>> from policyfit.algos.losses import expectile_loss
    >>> round(float(expectile_loss(jnp.array([1.0, -2.0]), 0.7).mean()), 6)  # (0.7*1 + 0.3*4) / 2
    0.95
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def expectile_loss(diff: jnp.ndarray, expectile: float) -> jnp.ndarray:
    """Asymmetric L2, ``L_tau(u) = |tau - 1(u < 0)| u^2`` (Eq. 3 of Kostrikov et al. 2021, IQL).

    ``diff`` is ``Q(s, a) - V(s)``; ``expectile`` is IQL's ``tau``. Returns the elementwise loss.
    """
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff**2


def huber_loss(diff: jnp.ndarray, delta: float) -> jnp.ndarray:
    """Huber loss, ``u^2 / (2 delta)`` inside ``|u| <= delta`` and ``|u| - delta / 2`` outside.

    Scaled as in RIQL (Yang et al. 2024, Eq. 8) so that it tends to ``|u|`` for small ``delta`` and
    to ``u^2 / (2 delta)`` for large ``delta``; elementwise.
    """
    abs_diff = jnp.abs(diff)
    return jnp.where(abs_diff <= delta, 0.5 * diff**2 / delta, abs_diff - 0.5 * delta)


def ensemble_quantile(values: jnp.ndarray, quantile: float | None) -> jnp.ndarray:
    """Reduce a critic ensemble ``[K, ...]`` to ``[...]``: the minimum, or the ``quantile``-quantile.

    ``quantile=None`` is the clipped double-Q minimum (Fujimoto et al. 2018); a number in ``(0, 1)``
    is RIQL's ``alpha``-quantile over the ensemble (Yang et al. 2024, Eq. 7), linear interpolation.
    """
    if quantile is None:
        return jnp.min(values, axis=0)
    return jnp.quantile(values, quantile, axis=0)


def awr_weights(advantage: jnp.ndarray, temperature: float, max_weight: float) -> jnp.ndarray:
    """Advantage-weighted regression weights ``min(exp(beta * A), max_weight)``.

    IQL's policy extraction (Eq. 7 of Kostrikov et al. 2021) with inverse temperature ``beta``; AWAC
    uses ``exp(A / lambda)`` (Eq. 12 of Nair et al. 2020), i.e. ``temperature = 1 / lambda``. Both
    clip at 100 in the reference code. The weights are constants for the actor's gradient.
    """
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(temperature * advantage), max_weight))


def quantile_huber_loss(
    quantiles: jnp.ndarray, targets: jnp.ndarray, kappa: float = 1.0
) -> jnp.ndarray:
    """QR-DQN's quantile regression loss (Dabney et al. 2018, Eq. 10), per batch row.

    ``quantiles`` ``[B, N]`` estimate the return's quantiles at the midpoints
    ``tau_i = (2i + 1) / 2N``; ``targets`` ``[B, M]`` are samples of the target distribution
    (constant for the gradient). With ``u = target_j - quantile_i``:
    ``rho_tau(u) = |tau - 1(u < 0)| * L_kappa(u) / kappa`` averaged over ``j`` and summed over ``i``,
    where ``L_kappa`` is the standard Huber loss (``u^2 / 2`` inside ``|u| <= kappa``).
    """
    n = quantiles.shape[-1]
    taus = (2.0 * jnp.arange(n) + 1.0) / (2.0 * n)
    u = jax.lax.stop_gradient(targets)[:, None, :] - quantiles[:, :, None]  # [B, N, M]
    abs_u = jnp.abs(u)
    huber = jnp.where(abs_u <= kappa, 0.5 * u**2, kappa * (abs_u - 0.5 * kappa))
    weight = jnp.abs(taus[None, :, None] - (u < 0).astype(u.dtype))
    return (weight * huber / kappa).mean(axis=2).sum(axis=1)


def periodic_update(target: Any, online: Any, step: jnp.ndarray, period: int) -> Any:
    """DQN's target network: a copy of the online parameters every ``period`` steps, else unchanged."""
    copy = step % period == 0
    return jax.tree_util.tree_map(lambda t, o: jnp.where(copy, o, t), target, online)


def gradient_step(optimizer: Any, params: Any, opt_state: Any, grads: Any) -> tuple[Any, Any]:
    """One optimizer step: ``(new params, new optimizer state)`` (optax's update and apply)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def supervised_actor_step(
    optimizer: Any, state: dict, loss_fn: Any, *loss_args: Any, has_aux: bool = False
) -> tuple[dict, jnp.ndarray, Any]:
    """One step of the supervised learners (BC, discrete BC, RvS): ``state["actor"]`` descends
    ``loss_fn(actor, *loss_args)``; ``actor_opt`` and ``step`` follow. Returns ``(state, loss,
    aux)`` (``aux`` is None unless ``has_aux``: then ``loss_fn`` returns ``(loss, aux)``)."""
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(state["actor"], *loss_args)
    loss, aux = value if has_aux else (value, None)
    actor, actor_opt = gradient_step(optimizer, state["actor"], state["actor_opt"], grads)
    return dict(state, actor=actor, actor_opt=actor_opt, step=state["step"] + 1), loss, aux


def soft_update(target: Any, online: Any, tau: float) -> Any:
    """Polyak averaging ``theta' <- tau * theta + (1 - tau) * theta'`` of two parameter pytrees."""
    return optax.incremental_update(online, target, tau)


def td_target(
    rewards: jnp.ndarray, terminals: jnp.ndarray, next_values: jnp.ndarray, discount: float
) -> jnp.ndarray:
    """One-step bootstrap ``r + gamma (1 - d) V(s')``; constant for the gradient.

    Only terminals stop the bootstrap: a time-limit cut (``timeouts``) is not the end of the task.
    """
    return jax.lax.stop_gradient(rewards + discount * (1.0 - terminals) * next_values)


def delayed_actor_update(
    state: dict, loss_fn: Any, optimizer: Any, tau: float, policy_freq: int, *loss_args: Any
) -> tuple[dict, tuple[jnp.ndarray, Any]]:
    """TD3's delayed policy update (Fujimoto et al. 2018, Sec. 5.2), shared by TD3+BC and ReBRAC.

    Every ``policy_freq`` steps: one actor step on ``loss_fn(actor, critic, *loss_args) ->
    (loss, aux)`` and a Polyak update of both targets; otherwise the state is unchanged and the
    returned ``(loss, aux)`` are NaN (logged as "no actor step"); ``aux`` may be any pytree of
    float arrays.
    """

    def actor_step(state: dict) -> tuple[dict, tuple[jnp.ndarray, Any]]:
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["actor"], state["critic"], *loss_args
        )
        actor, actor_opt = gradient_step(optimizer, state["actor"], state["actor_opt"], grads)
        return dict(
            state,
            actor=actor,
            actor_opt=actor_opt,
            actor_target=soft_update(state["actor_target"], actor, tau),
            critic_target=soft_update(state["critic_target"], state["critic"], tau),
        ), (loss, aux)

    def skip(state: dict) -> tuple[dict, tuple[jnp.ndarray, Any]]:
        shapes = jax.eval_shape(loss_fn, state["actor"], state["critic"], *loss_args)
        return state, jax.tree_util.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    return jax.lax.cond(state["step"] % policy_freq == 0, actor_step, skip, state)
