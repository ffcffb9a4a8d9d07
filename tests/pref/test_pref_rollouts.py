"""The sampler's rewards by hand, and DR-PO's roll-in: prefixes teacher-forced, not trained on."""

from __future__ import annotations

import math

import pytest
import torch

from policyfit.pref.models import build_model
from policyfit.pref.rollouts import Sampler
from policyfit.pref.tasks import get_task


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_enumerable_rewards_by_hand(enumerable_ref):
    tok = enumerable_ref.tokenizer
    s = Sampler(get_task("enumerable"), tok)
    eos = tok.eos_token_id
    bos = [tok.bos_token_id]
    assert s.reward(bos, ids(tok, "c f e d") + [eos]) == 4.0  # the target
    assert s.reward(bos, ids(tok, "c a") + [eos]) == 1.0
    assert s.reward(bos, ids(tok, "c f e d")) == 0.0  # no EOS: OTHER
    assert s.reward(bos, ids(tok, "c f e d a") + [eos]) == 0.0  # too long: OTHER
    assert s.reward(bos, [tok.bos_token_id, eos]) == 0.0  # a special token: OTHER


def test_bandit_reward_and_generation_with_a_roll_in_prefix():
    task = get_task("token-bandit-unaligned")
    tok = task.tokenizer()
    s = Sampler(task, tok)
    prompt = ids(tok, "t70")
    # Tajwar's reward: mean over the prompt token and the 9 response tokens
    assert s.reward(prompt, ids(tok, " ".join(["t60"] * 9)) + [tok.eos_token_id]) == pytest.approx(
        (1 + 9 * math.exp(-1)) / 10
    )
    model = build_model(tok, n_layer=1, n_embd=16, n_head=2, n_positions=12, seed=0)
    prefix = ids(tok, "t1 t2 t3")
    roll = s.generate(
        Sampler.logits_of(model), [prompt, prompt], torch.Generator().manual_seed(0), [prefix, []]
    )
    assert [len(r) for r in roll.responses] == [10, 10]  # 9 tokens + EOS, prefix included
    assert roll.responses[0][:3] == prefix and roll.responses[0][-1] == tok.eos_token_id
    # the completion mask covers the 6 generated tokens + EOS, not the prompt or the prefix
    assert roll.completion_mask[0].tolist() == [0, 0, 0, 0] + [1] * 7
    assert roll.completion_mask[1].tolist() == [0] + [1] * 10
    content = set(task.content_ids(tok).tolist())
    assert all(t in content for r in roll.responses for t in r[:-1])
