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

import flax.linen as nn
import jax.numpy as jnp

from policyfit.nn.modules import matmul_dot_general


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
            qkv_dot_general=matmul_dot_general(),
            out_dot_general=matmul_dot_general(),
        )(h, h, mask=mask)
        x = x + h
        h = nn.LayerNorm()(x)
        h = nn.Dense(4 * self.n_embd, dot_general=matmul_dot_general())(h)
        h = nn.gelu(h)
        h = nn.Dense(self.n_embd, dot_general=matmul_dot_general())(h)
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
