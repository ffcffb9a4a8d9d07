"""benchmarks/gemm_limit.py: the matrix products read off a compiled program (issue 19)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _hlo(fn, *args) -> str:
    return jax.jit(fn).lower(*args).compile().as_text()


def test_plain_batched_and_conditional_dots_are_found_with_weights(gemm_limit):
    x = jnp.ones((64, 32))
    w = jnp.ones((32, 48))
    e = jnp.ones((3, 48, 16))
    v = jnp.ones((16, 5))

    def fn(x, w, e, v, flag):
        h = jnp.tanh(x @ w)  # [64,32] . [32,48]
        z = jnp.tanh(jnp.einsum("bi,kij->kbj", h, e))  # batched over 3
        # one branch has a product, the other none: a two-way cond counts 1/2
        out = jax.lax.cond(flag, lambda z: z @ v, lambda z: z[..., :5] * 2.0, z)
        return out

    gemms = gemm_limit.gemms_of(_hlo(fn, x, w, e, v, True))
    by_flops = {g.flops: n for g, n in gemms.items()}
    assert by_flops[2 * 64 * 32 * 48] == 1.0
    assert by_flops[2 * 3 * 64 * 48 * 16] == 1.0
    assert by_flops[2 * 3 * 64 * 16 * 5] == 0.5
    assert sum(gemms.values()) == 2.5


def test_flops_and_label_of_a_transposed_batched_product(gemm_limit):
    # XLA's TD3 critic backward: [2,256,256] . [2,256,256], contracting 1 x 1, batch 0
    g = gemm_limit.Gemm("f32", (2, 256, 64), (2, 256, 32), (1,), (1,), (0,), (0,))
    assert g.flops == 2 * 2 * 64 * 256 * 32
    assert g.label() == "2x256x64 . 2x256x32 c[1][1] b[0]"


def test_xla_timing_is_positive_and_scales_with_size(gemm_limit):
    small = gemm_limit.Gemm("f32", (32, 32), (32, 32), (1,), (0,), (), ())
    big = gemm_limit.Gemm("f32", (256, 256), (256, 256), (1,), (0,), (), ())
    t_small = gemm_limit.time_xla(small, reps=50, trials=2)
    t_big = gemm_limit.time_xla(big, reps=50, trials=2)
    assert 0 < t_small < t_big  # 512x the FLOPs: the loop really runs every product
