"""Exact enumeration against brute force; the token bandit's reward and p_data by hand."""

from __future__ import annotations

import math

import pytest
import torch

from policyfit.pref import exact
from policyfit.pref.models import build_model, build_tokenizer
from policyfit.pref.tasks import bandit_token_reward, get_task, squashed_cauchy_bins


def test_sequence_log_probs_match_a_forward_pass_and_sum_to_one():
    tok = build_tokenizer(["a", "b", "c"])
    model = build_model(tok, n_layer=1, n_embd=32, n_head=2, n_positions=8, seed=3)
    space = exact.ResponseSpace((tok.bos_token_id,), (4, 5, 6), 1, 3, tok.eos_token_id)
    lp = exact.sequence_log_probs(model, space)
    assert lp.shape == (3 + 9 + 27 + 1,) == (space.size,)
    assert exact.is_normalized(lp)
    for index in (0, 5, 20, 38):
        seq = space.sequences()[index]
        ids = torch.tensor([[tok.bos_token_id, *seq, tok.eos_token_id]])
        with torch.no_grad():
            logits = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
        brute = logits.gather(-1, ids[0, 1:, None]).sum()
        assert lp[index].item() == pytest.approx(brute.item(), abs=1e-9)


def test_metrics_of_a_hand_made_distribution():
    rho = torch.log(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    pi = torch.log(torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    r = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    m = exact.distribution_metrics(pi, rho, r, beta=1.0)
    assert m["expected_reward"] == pytest.approx(0.25)
    assert m["kl_policy_ref"] == pytest.approx(0.25 * math.log(0.5) + 0.5 * math.log(2.0))
    z = 0.5 * math.e + 0.5
    star = [0.5 * math.e / z, 0.25 / z, 0.25 / z]
    assert m["tv_to_optimum"] == pytest.approx(
        0.5 * sum(abs(a - b) for a, b in zip([0.25, 0.25, 0.5], star, strict=True))
    )
    assert m["optimum_regularized_reward"] == pytest.approx(math.log(z))
    assert m["optimum_regularized_reward"] - m["regularized_reward"] == pytest.approx(
        m["kl_policy_optimum"]
    )


def test_bandit_reward_is_tajwars_mean_over_prompt_and_response():
    task = get_task("token-bandit-unaligned")
    # prompt 70 scores exp(0) = 1, nine responses at 60 score exp(-1) each: mean of 10 terms
    assert task.reward(70, [60] * 9) == pytest.approx((1 + 9 * math.exp(-1)) / 10)
    assert bandit_token_reward(torch.tensor([20.0]), 20.0).item() == 1.0


def test_p_data_is_the_squashed_cauchy_bin_mass():
    p = squashed_cauchy_bins()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    # bin 0 is [-1, -0.98): P(X < atanh(-0.98)) for X ~ Cauchy(-0.7, 0.4)
    assert p[0].item() == pytest.approx(0.5 + math.atan((math.atanh(-0.98) + 0.7) / 0.4) / math.pi)
    # most of the mass is below token 50 (tanh(-0.7) = -0.60 lies in bin 19)
    assert p[:50].sum().item() > 0.8 and int(torch.argmax(p[1:-1])) + 1 < 30
