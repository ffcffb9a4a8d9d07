"""How the server turns observations into actions and their propensities (``--explore``).

Four modes, each reporting the probability (discrete) or density (continuous) with which the
returned action was chosen, so that the decision log can later be used for off-policy evaluation:

``greedy``
    The policy's deterministic action (``act`` without a key); propensity 1.0.
``sample``
    A sample of the policy's own distribution and its probability (discrete) or its density in
    the action box (continuous, see :mod:`policyfit.algos.propensity`). Only for policies with a
    distribution (:meth:`~policyfit.algos.base.Algorithm.action_log_prob`).
``epsilon:E`` (discrete)
    Epsilon-greedy: with probability ``1 - E`` the greedy action, else an action drawn uniformly
    from all ``K``: propensity ``(1 - E) + E / K`` for the greedy action, ``E / K`` for any other.
``gaussian:SIGMA`` (continuous)
    The greedy action plus Gaussian noise with standard deviation ``SIGMA * half_range`` per
    dimension (TD3's convention: SIGMA is a fraction of the box's half-width), truncated to the
    action box so the action stays valid: the propensity is the **density** of the truncated
    normal at the returned action (product over dimensions), not a probability; it can exceed 1.

Randomness comes from one generator per server, seeded by ``--seed``: the same requests in the
same order give the same actions.

Example:
    >>> parse_explore("epsilon:0.1")
    Explore(kind='epsilon', value=0.1)
    >>> str(parse_explore("greedy"))
    'greedy'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from policyfit.errors import ConfigError

KINDS = ("greedy", "sample", "epsilon", "gaussian")


@dataclass(frozen=True)
class Explore:
    """An exploration mode: ``kind`` and its parameter (epsilon or sigma; 0 for the others)."""

    kind: str
    value: float = 0.0

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}" if self.kind in ("epsilon", "gaussian") else self.kind


def parse_explore(text: str) -> Explore:
    """``greedy``, ``sample``, ``epsilon:E`` (0 <= E <= 1) or ``gaussian:SIGMA`` (SIGMA > 0)."""
    kind, sep, arg = text.strip().lower().partition(":")
    if kind not in KINDS:
        raise ConfigError(
            f"unknown mode {text!r}; valid: greedy, sample, epsilon:E, gaussian:SIGMA",
            field="explore",
        )
    if kind in ("greedy", "sample"):
        if sep:
            raise ConfigError(f"{kind} takes no parameter (got {text!r})", field="explore")
        return Explore(kind)
    try:
        value = float(arg)
    except ValueError:
        raise ConfigError(
            f"{kind} needs a number, e.g. {kind}:0.1 (got {text!r})", field="explore"
        ) from None
    if kind == "epsilon" and not 0.0 <= value <= 1.0:
        raise ConfigError(f"epsilon must lie in [0, 1] (got {value:g})", field="explore")
    if kind == "gaussian" and not (math.isfinite(value) and value > 0.0):
        raise ConfigError(f"sigma must be a positive number (got {value:g})", field="explore")
    return Explore(kind, value)


def bucket_size(n: int, largest: int = 4096) -> int:
    """The batch size ``act`` runs with for ``n`` rows: the next power of two (up to ``largest``)."""
    if n >= largest:
        return n
    return 1 << max(0, (n - 1).bit_length())


def _rows(carry: Any, n: int) -> Any:
    import jax

    return jax.tree_util.tree_map(lambda c: np.asarray(c)[:n], carry)


def _inside(bound: np.ndarray, toward: float) -> np.ndarray:
    """``bound`` as float32, moved one step ``toward`` the inside where rounding moved it out."""
    b32 = bound.astype(np.float32)
    out = (b32 < bound) if toward == np.inf else (b32 > bound)
    return np.where(out, np.nextafter(b32, np.float32(toward)), b32).astype(np.float32)


class Decider:
    """Actions and propensities of a :class:`~policyfit.algos.policy.Policy` under an exploration
    mode. ``decide`` is synchronous and keeps the order of calls (one generator per server)."""

    def __init__(self, policy: Any, explore: Explore, seed: int = 0):
        self.policy, self.explore = policy, explore
        self.rng = np.random.default_rng(seed)
        spec = policy.spec
        if explore.kind == "epsilon" and not policy.discrete:
            raise ConfigError(
                "epsilon-greedy needs discrete actions; use gaussian:SIGMA for a continuous policy",
                field="explore",
            )
        if explore.kind == "gaussian" and policy.discrete:
            raise ConfigError(
                "gaussian noise needs continuous actions; use epsilon:E for a discrete policy",
                field="explore",
            )
        self.n_actions = int(spec.action_dim) if policy.discrete else 0
        if not policy.discrete:
            dim = spec.action_dim
            self.low = np.asarray(spec.action_low or [-np.inf] * dim, dtype=np.float64)
            self.high = np.asarray(spec.action_high or [np.inf] * dim, dtype=np.float64)
            finite = np.isfinite(self.low) & np.isfinite(self.high) & (self.high > self.low)
            self.half_range = np.where(finite, (self.high - self.low) / 2.0, 1.0)
            # the float32 bounds an action may take (a bound that float32 rounds outwards moves in)
            self.low32 = _inside(self.low, np.inf)
            self.high32 = _inside(self.high, -np.inf)
        self._log_prob = None
        if explore.kind == "sample":
            self._log_prob = self._jit_log_prob()

    def _jit_log_prob(self):
        import jax

        from policyfit.common.xla import compiler_options

        algo = self.policy.algo
        fn = jax.jit(algo.action_log_prob, compiler_options=compiler_options(True))
        obs = np.zeros((1, self.policy.observation_dim), np.float32)
        carry = self.policy.initial_carry(1)
        try:
            actions, _ = self.policy.act(obs, carry)
            fn(self.policy.params, obs, carry, actions)
        except NotImplementedError:
            raise ConfigError(
                f"{algo.name} has no action distribution to sample from (a Q-argmax or "
                "deterministic actor); use --explore greedy, epsilon:E (discrete) or "
                "gaussian:SIGMA (continuous)",
                field="explore",
            ) from None
        return fn

    def decide(self, obs: np.ndarray, carry: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(actions, propensities [B] float64, next carry)`` for ``obs`` ``[B, obs_dim]``."""
        kind = self.explore.kind
        if kind == "sample":
            return self._sample(obs, carry)
        actions, next_carry = self._act(obs, carry)
        if kind == "epsilon":
            actions, propensity = self._epsilon(actions)
        elif kind == "gaussian":
            actions, propensity = self._gaussian(actions)
        else:
            propensity = np.ones(obs.shape[0])
        return actions, propensity, next_carry

    def _sample(self, obs: np.ndarray, carry: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        import jax

        key = jax.random.PRNGKey(int(self.rng.integers(0, 2**31 - 1)))
        n = obs.shape[0]
        obs_p, carry_p = self._pad(obs, carry)
        actions, next_carry = self.policy.act(obs_p, carry_p, key)
        log_prob = np.asarray(self._log_prob(self.policy.params, obs_p, carry_p, actions))
        return actions[:n], np.exp(log_prob[:n].astype(np.float64)), _rows(next_carry, n)

    def _act(self, obs: np.ndarray, carry: Any) -> tuple[np.ndarray, Any]:
        n = obs.shape[0]
        actions, next_carry = self.policy.act(*self._pad(obs, carry))
        return actions[:n], _rows(next_carry, n)

    def _pad(self, obs: np.ndarray, carry: Any) -> tuple[np.ndarray, Any]:
        """``obs`` and ``carry`` padded to the next power of two rows (initial carry, zero
        observations), so that a server compiles ``act`` for a handful of batch sizes only."""
        import jax

        n = obs.shape[0]
        size = bucket_size(n)
        if size == n:
            return obs, carry
        obs = np.concatenate([obs, np.zeros((size - n, obs.shape[1]), obs.dtype)])
        extra = self.policy.initial_carry(size - n)
        carry = jax.tree_util.tree_map(
            lambda c, e: np.concatenate([np.asarray(c), np.asarray(e)]), carry, extra
        )
        return obs, carry

    def _epsilon(self, greedy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eps, k = self.explore.value, self.n_actions
        greedy = greedy.astype(np.int64)
        explore = self.rng.random(greedy.shape[0]) < eps
        uniform = self.rng.integers(0, k, size=greedy.shape[0])
        actions = np.where(explore, uniform, greedy)
        propensity = np.where(actions == greedy, (1.0 - eps) + eps / k, eps / k)
        return actions, propensity

    def _gaussian(self, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Truncated-normal noise by inversion (``scipy.special`` ufuncs: microseconds, where
        ``scipy.stats.truncnorm`` costs a millisecond per call) and its density."""
        from scipy.special import ndtr, ndtri

        mean = mean.astype(np.float64)
        scale = self.explore.value * self.half_range
        a, b = (self.low - mean) / scale, (self.high - mean) / scale
        # invert on the side of the lower tail, where the normal CDF is accurate
        flip = a > 0
        lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
        p_lo, p_hi = ndtr(lo), ndtr(hi)
        z = ndtri(self.rng.uniform(p_lo, p_hi))
        sampled = mean + scale * np.where(flip, -z, z)
        # the returned action is float32; its density is taken at that float32 value
        actions = np.clip(sampled.astype(np.float32), self.low32, self.high32)
        z = (actions.astype(np.float64) - mean) / scale
        log_density = -0.5 * z**2 - 0.5 * np.log(2 * np.pi) - np.log(scale) - np.log(p_hi - p_lo)
        return actions, np.exp(log_density.sum(axis=-1))
