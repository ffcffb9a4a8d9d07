"""Flax (linen) modules: MLP, critic ensemble, value net and policy heads.

All modules take batched inputs ``[..., dim]``. Policy heads return a small distribution object
(:class:`TanhNormal`, :class:`Normal`) with ``sample``/``log_prob``/``mode`` so algorithms do not
depend on a distributions library.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from policyfit.nn import EnsembleCritic
    >>> critic = EnsembleCritic(hidden_dims=(32, 32), n_critics=2)
    >>> params = critic.init(jax.random.PRNGKey(0), jnp.zeros((4, 3)), jnp.zeros((4, 1)))
    >>> critic.apply(params, jnp.zeros((4, 3)), jnp.zeros((4, 1))).shape
    (2, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


#: Use :func:`flat_dot_general` in the MLPs' and the transformer's projections (read when a
#: network is traced; module-level so a benchmark can A/B it).
FLAT_MATMULS = True


def flat_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """``lax.dot_general`` for a projection ``[..., in] x [in, ...]``, as ONE 2-D matmul.

    Same values as ``lax.dot_general``; only the shapes XLA sees differ. A Dense layer on
    ``[B, T, C]`` tokens contracts ``C`` with batch and time left free; its kernel gradient then
    contracts over ``B`` and ``T`` together, which XLA's CPU backend runs 2-4x below its 2-D
    matmul rate (``benchmarks/dt_peer.py``'s diagnosis: the weight gradients were most of DT's
    gap to d3rlpy; CQL's critics on ``[3N, B, D]`` proposals have the same shape). Folding the
    free leading axes into one row axis first makes the forward product and both gradients plain
    2-D matmuls (``benchmarks/flat_matmuls.py``: CQL and DT +27% each on a 2-core Xeon). Anything other than "trailing axes of ``lhs``
    against leading axes of ``rhs``, no batch axes" (or a symbolic shape) goes to
    ``lax.dot_general`` unchanged.

    Example:
        >>> import numpy as np
        >>> x, w = np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32)
        >>> flat_dot_general(x, w, (((2,), (0,)), ((), ()))).shape
        (2, 3, 5)
    """
    (lc, rc), (lb, rb) = dimension_numbers
    lc, rc = tuple(lc), tuple(rc)
    n_free = lhs.ndim - len(lc)
    plain = (
        not lb
        and not rb
        and lc == tuple(range(n_free, lhs.ndim))
        and rc == tuple(range(len(rc)))
        and n_free >= 1
        # concrete shapes only: under a symbolic batch (ONNX export) jax2onnx cannot reshape
        # ``12*B`` rows back to ``(B, 12)``, and the export rewrites these products itself
        and all(isinstance(d, int) for d in lhs.shape)
    )
    if not plain:
        return jax.lax.dot_general(
            lhs, rhs, dimension_numbers, precision, preferred_element_type=preferred_element_type
        )
    lead, out = lhs.shape[:n_free], rhs.shape[len(rc) :]
    inner = math.prod(lhs.shape[n_free:])
    y = jax.lax.dot_general(
        lhs.reshape(-1, inner),
        rhs.reshape(inner, -1),
        (((1,), (0,)), ((), ())),
        precision,
        preferred_element_type=preferred_element_type,
    )
    return y.reshape(*lead, *out)


def matmul_dot_general():
    """The ``dot_general`` policyfit's Dense layers use: :func:`flat_dot_general`."""
    return flat_dot_general if FLAT_MATMULS else jax.lax.dot_general


def default_init(scale: float = jnp.sqrt(2.0)):
    return nn.initializers.orthogonal(scale)


#: Weight initializations a network may ask for: ``"orthogonal"`` (policyfit's default, as CORL's
#: JAX ports: orthogonal with gain sqrt 2 in hidden layers and a per-head gain) and ``"pytorch"``
#: (``torch.nn.Linear``'s defaults, as the TD3+BC paper's code, CORL's PyTorch files and d3rlpy:
#: weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, every layer alike).
INIT_SCHEMES = ("orthogonal", "pytorch")


def _uniform_bias(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(
    features: int, fan_in: int, init: str = "orthogonal", scale: float = math.sqrt(2.0), **kw
):
    """An ``nn.Dense`` of ``features`` outputs on ``fan_in`` inputs, initialized by ``init``.

    ``"orthogonal"``: orthogonal kernel of gain ``scale``, zero bias. ``"pytorch"``: kernel and
    bias uniform in ``+-1/sqrt(fan_in)`` (Kaiming-uniform with ``a = sqrt 5``, PyTorch's
    ``nn.Linear``), ``scale`` ignored.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> layer = dense(3, fan_in=4, init="pytorch")
        >>> p = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
        >>> bool(jnp.abs(p["kernel"]).max() <= 0.5 and jnp.abs(p["bias"]).max() <= 0.5)
        True
    """
    if init == "orthogonal":
        return nn.Dense(features, kernel_init=default_init(scale), **kw)
    if init == "pytorch":
        return nn.Dense(
            features,
            kernel_init=nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
            bias_init=_uniform_bias(fan_in),
            **kw,
        )
    raise ValueError(f"init must be one of {INIT_SCHEMES}, got {init!r}")


class MLP(nn.Module):
    """Fully connected network; ReLU between layers, none after the last unless ``activate_final``."""

    hidden_dims: Sequence[int]
    activation: Callable = nn.relu
    activate_final: bool = False
    layer_norm: bool = False
    dropout_rate: float | None = None
    kernel_init: Callable | None = None
    init_scheme: str = "orthogonal"  # one of INIT_SCHEMES; a given kernel_init overrides it

    @nn.compact
    def __call__(self, x: jnp.ndarray, training: bool = False) -> jnp.ndarray:
        for i, size in enumerate(self.hidden_dims):
            dg = matmul_dot_general()
            if self.kernel_init is not None:
                x = nn.Dense(size, kernel_init=self.kernel_init, dot_general=dg)(x)
            else:
                x = dense(size, x.shape[-1], self.init_scheme, dot_general=dg)(x)
            if i + 1 < len(self.hidden_dims) or self.activate_final:
                if self.layer_norm:
                    x = nn.LayerNorm()(x)
                x = self.activation(x)
                if self.dropout_rate:
                    x = nn.Dropout(self.dropout_rate)(x, deterministic=not training)
        return x


class ValueNet(nn.Module):
    """State value ``V(s)``: MLP with a scalar head; returns ``[...]``."""

    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        x = MLP(self.hidden_dims, activate_final=True, layer_norm=self.layer_norm)(obs)
        return nn.Dense(1, kernel_init=default_init(1.0))(x)[..., 0]


class _Critic(nn.Module):
    hidden_dims: Sequence[int]
    layer_norm: bool = False
    init_scheme: str = "orthogonal"

    @nn.compact
    def __call__(self, obs: jnp.ndarray, act: jnp.ndarray) -> jnp.ndarray:
        x = jnp.concatenate([obs, act], axis=-1)
        x = MLP(
            self.hidden_dims,
            activate_final=True,
            layer_norm=self.layer_norm,
            init_scheme=self.init_scheme,
        )(x)
        return dense(1, x.shape[-1], self.init_scheme, 1.0)(x)[..., 0]


class EnsembleCritic(nn.Module):
    """``n_critics`` independent Q-networks evaluated in one vectorized call; returns ``[n_critics, ...]``."""

    hidden_dims: Sequence[int] = (256, 256)
    n_critics: int = 2
    layer_norm: bool = False
    init_scheme: str = "orthogonal"  # one of INIT_SCHEMES

    @nn.compact
    def __call__(self, obs: jnp.ndarray, act: jnp.ndarray) -> jnp.ndarray:
        ensemble = nn.vmap(
            _Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_critics,
        )
        return ensemble(self.hidden_dims, self.layer_norm, self.init_scheme)(obs, act)


@dataclass(frozen=True)
class Normal:
    """Diagonal Gaussian."""

    mean: jnp.ndarray
    log_std: jnp.ndarray

    def sample(self, key: jax.Array) -> jnp.ndarray:
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape)

    def log_prob(self, x: jnp.ndarray) -> jnp.ndarray:
        z = (x - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)

    def mode(self) -> jnp.ndarray:
        return self.mean


@dataclass(frozen=True)
class TanhNormal:
    """Gaussian squashed by ``tanh`` (SAC's policy, Appendix C of Haarnoja et al. 2018)."""

    mean: jnp.ndarray
    log_std: jnp.ndarray

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jnp.ndarray, jnp.ndarray]:
        u = self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape)
        return jnp.tanh(u), self._log_prob_pre_tanh(u)

    def sample(self, key: jax.Array) -> jnp.ndarray:
        return self.sample_and_log_prob(key)[0]

    def _log_prob_pre_tanh(self, u: jnp.ndarray) -> jnp.ndarray:
        base = Normal(self.mean, self.log_std).log_prob(u)
        # log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable
        log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
        return base - log_det

    def log_prob(self, a: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
        a = jnp.clip(a, -1.0 + eps, 1.0 - eps)
        return self._log_prob_pre_tanh(jnp.arctanh(a))

    def mode(self) -> jnp.ndarray:
        return jnp.tanh(self.mean)


class TanhGaussianPolicy(nn.Module):
    """State-dependent tanh-Gaussian policy (SAC, CQL, AWAC, IQL's stochastic variant)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> TanhNormal:
        x = MLP(self.hidden_dims, activate_final=True, layer_norm=self.layer_norm)(obs)
        mean = nn.Dense(self.action_dim, kernel_init=default_init(1e-2))(x)
        log_std = nn.Dense(self.action_dim, kernel_init=default_init(1e-2))(x)
        return TanhNormal(mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))


class GaussianPolicy(nn.Module):
    """Gaussian policy with tanh-bounded mean and a state-independent log-std (IQL's actor)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    dropout_rate: float | None = None
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray, training: bool = False) -> Normal:
        x = MLP(
            self.hidden_dims,
            activate_final=True,
            dropout_rate=self.dropout_rate,
            layer_norm=self.layer_norm,
        )(obs, training=training)
        mean = jnp.tanh(nn.Dense(self.action_dim, kernel_init=default_init(1e-2))(x))
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.broadcast_to(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX), mean.shape)
        return Normal(mean, log_std)


class DeterministicPolicy(nn.Module):
    """``a = max_action * tanh(MLP(s))`` (TD3+BC, ReBRAC, deterministic BC)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    layer_norm: bool = False
    max_action: float = 1.0
    init_scheme: str = "orthogonal"  # one of INIT_SCHEMES

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        x = MLP(
            self.hidden_dims,
            activate_final=True,
            layer_norm=self.layer_norm,
            init_scheme=self.init_scheme,
        )(obs)
        return self.max_action * jnp.tanh(
            dense(self.action_dim, x.shape[-1], self.init_scheme, 1e-2)(x)
        )


class CategoricalPolicy(nn.Module):
    """Logits over ``n_actions`` discrete actions."""

    n_actions: int
    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        x = MLP(self.hidden_dims, activate_final=True)(obs)
        return nn.Dense(self.n_actions, kernel_init=default_init(1e-2))(x)


class DiscreteQNetwork(nn.Module):
    """Q-values of every discrete action from one torso: ``[B, n_actions]``, or
    ``[B, n_heads, n_actions]`` with ``n_heads > 1`` (REM's multi-head Q), or
    ``[B, n_actions, n_quantiles]`` with ``n_quantiles > 1`` (QR-DQN's return quantiles).

    The heads share the torso, as in the DQN-family papers (Agarwal et al. 2020's multi-head
    networks; Dabney et al. 2018's quantile head).
    """

    n_actions: int
    hidden_dims: Sequence[int] = (256, 256)
    n_heads: int = 1
    n_quantiles: int = 1
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        x = MLP(self.hidden_dims, activate_final=True, layer_norm=self.layer_norm)(obs)
        width = self.n_actions * self.n_heads * self.n_quantiles
        out = nn.Dense(width, kernel_init=default_init(1.0))(x)
        batch = out.shape[:-1]
        if self.n_quantiles > 1:
            return out.reshape(*batch, self.n_actions, self.n_quantiles)
        if self.n_heads > 1:
            return out.reshape(*batch, self.n_heads, self.n_actions)
        return out
