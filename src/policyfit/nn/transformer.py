"""A small causal transformer (GPT-2 style) over embedded tokens, for in-context learners.

The trunk of the sequence models (DPT in :mod:`policyfit.bandit.dpt`; Decision Transformer and
Dichotomy of Control can reuse it): the caller embeds its tokens into ``[B, T, n_embd]``; the trunk
adds learned position embeddings and runs ``n_layer`` pre-LayerNorm blocks of causal self-attention
and a 4x MLP (GELU), then a final LayerNorm. Position ``t``'s output sees tokens ``0..t`` only.

Example:
    >>> import jax, jax.numpy as jnp
    >>> trunk = CausalTransformer(n_embd=16, n_layer=2, n_head=2, max_len=8)
    >>> x = jnp.ones((3, 8, 16))
    >>> params = trunk.init(jax.random.PRNGKey(0), x)
    >>> trunk.apply(params, x).shape
    (3, 8, 16)
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Use :func:`flat_dot_general` in the trunk's projections (module-level so benchmarks can A/B it).
FLAT_MATMULS = True


def flat_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """``lax.dot_general`` for a projection ``[..., in] x [in, ...]``, as ONE 2-D matmul.

    Same values as ``lax.dot_general``; only the shapes XLA sees differ. A Dense layer on
    ``[B, T, C]`` tokens contracts ``C`` with batch and time left free; its kernel gradient then
    contracts over ``B`` and ``T`` together, which XLA's CPU backend runs 2-4x below its 2-D
    matmul rate (``benchmarks/dt_peer.py``'s diagnosis: the weight gradients were most of DT's
    gap to d3rlpy). Folding the free leading axes into one row axis first makes the forward
    product and both gradients plain 2-D matmuls. Anything other than "trailing axes of ``lhs``
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


def _dot():
    return flat_dot_general if FLAT_MATMULS else jax.lax.dot_general


class _Block(nn.Module):
    n_embd: int
    n_head: int
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
        h = nn.LayerNorm()(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.n_head,
            qkv_features=self.n_embd,
            dropout_rate=self.dropout,
            deterministic=not train,
            qkv_dot_general=_dot(),
            out_dot_general=_dot(),
        )(h, h, mask=mask)
        x = x + h
        h = nn.LayerNorm()(x)
        h = nn.Dense(4 * self.n_embd, dot_general=_dot())(h)
        h = nn.gelu(h)
        h = nn.Dense(self.n_embd, dot_general=_dot())(h)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return x + h


class CausalTransformer(nn.Module):
    """``[B, T, n_embd]`` embedded tokens -> ``[B, T, n_embd]`` causal features (``T <= max_len``)."""

    n_embd: int = 32
    n_layer: int = 4
    n_head: int = 1
    max_len: int = 512
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        t = x.shape[-2]
        pos = self.param("pos_embedding", nn.initializers.normal(0.02), (self.max_len, self.n_embd))
        x = x + pos[:t]
        mask = nn.make_causal_mask(jnp.ones(x.shape[:-1], dtype=jnp.int32))
        for _ in range(self.n_layer):
            x = _Block(self.n_embd, self.n_head, self.dropout)(x, mask, train)
        return nn.LayerNorm()(x)
