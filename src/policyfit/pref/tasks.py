"""The four preference tasks: a reference policy, a reward program, preference data, evaluation.

================================  =====================================================  ======
name                              what                                                   exact
================================  =====================================================  ======
``token-bandit-aligned``          Tajwar et al. 2024's token bandit, reward centred at    no (MC)
                                  token 20, near the reference's mode
``token-bandit-unaligned``        the same, reward centred at 70, where the reference     no (MC)
                                  puts little mass
``enumerable``                    every response of 1-4 symbols over ``a..f`` (1554 +     yes
                                  OTHER); reward = matches with the target ``c f e d``
``unseen-response``               Xu et al. 2024's toy: responses ``y1 y2 y3``, the data  yes
                                  only ranks ``y1`` over ``y2``; watch the mass on ``y3``
================================  =====================================================  ======

Every task builds its reference deterministically from a seed (:meth:`Task.reference`), makes
TRL preference rows ``prompt``/``chosen``/``rejected`` (plus ``chosen_reward``/
``rejected_reward``, which TRL drops) with :meth:`Task.make_dataset`, and measures a policy with
:meth:`Task.evaluate`: exactly by enumeration (:mod:`policyfit.pref.exact`) where the response
space is finite, by Monte Carlo with stated sample counts otherwise.

**Token bandit** (checked against ``Asap7772/understanding-rlhf`` at 9d5844e5,
``bandit_experiment/``): vocabulary of 100 tokens, the prompt is one uniform token, the response
9 tokens (``max_new_tokens = 9``), the model minGPT ``gpt-nano`` (3 layers, 3 heads, width 48).
Reward (``reward_functions.py``: ``reward_7`` for c = 20, ``reward_6`` for c = 70):
``R = mean_i exp(-((a_i - c) / 10) ** 2)`` over the sequence the code passes, which is the
**prompt token followed by the 9 response tokens** (``GPT.sample`` returns the prompt with the
generated tokens; ``gather_data_batch`` scores that): 10 terms, ours too. Reference
(``transformer_learner.run_sft``): Adam, lr 0.01, 100 steps, each minimising
``sum_t KL(pi(.|prefix) || p_data)`` along the model's own samples, where ``p_data`` is a
Cauchy(loc -0.7, scale 0.4) squashed by tanh and binned into 100 bins on [-1, 1]
(``utils.ContinuousSampledCategorical``); then ``ref = deepcopy``. Our differences: ``p_data``
is the exact bin mass (the Cauchy CDF at the tanh-inverse bin edges) instead of a histogram of
10,000 samples; each step averages 16 prompts instead of one; a GPT-2 block replaces minGPT's
(same sizes); the model also has the special tokens ``<pad> <bos> <eos> <unk>``, so the SFT
target gives them 1e-6 of the mass at the 9 positions and the loss adds ``-log pi(EOS)`` after
the 9th token (TRL scores ``response + EOS``). Preference pairs as in ``dpo_utils``: two
responses of the same prompt from the sampler, the higher reward is chosen (ties dropped); here
the sampler is the reference (offline data). Responses are sampled from the model's per-position
distribution restricted to the 100 content tokens (renormalized). Evaluation: Monte Carlo over
prompts x samples, Rao-Blackwellized per position — along each sampled prefix the next-token
distributions are exact, so ``E R`` uses ``sum_v q_t(v) g(v)`` and the KLs use
``sum_t KL(q_t^pi || q_t^rho)`` (exact per-position KLs, averaged over sampled prefixes), with
standard errors. ``pi*`` is not computed for the bandit (``log E_rho exp(R / beta)`` has no
reliable Monte Carlo estimate when the reward peaks where rho has little mass).

**Enumerable**: one prompt (``<bos>``), responses of 1-4 symbols from ``a b c d e f`` then EOS;
the reference is fitted by maximum likelihood (200 Adam steps x 256 samples) to a base
distribution (lengths 1-4 with
probabilities .15/.25/.35/.25, symbols i.i.d. with probabilities ∝ 30/25/18/12/9/6); the reward
is the number of positions where the response matches ``c f e d`` (0-4), OTHER scores 0. Pairs
are two independent reference samples labelled by Bradley-Terry on the reward,
``P(y > y') = sigma(R(y) - R(y'))``, so DPO's population optimum is exactly
``pi* ∝ rho exp(R / beta)`` (Rafailov et al. 2023, Sec. 4-5).

**Unseen response** (after Xu et al. 2024, arXiv 2404.10719, Sec. 4.1; the paper's exact
numbers not re-verified): responses ``y1 y2 y3`` (one token each), reference fitted to
(.45, .45, .10), reward (1, 0, 0); every row is ``y1`` over ``y2``, so nothing in the data
anchors ``y3``. ``evaluate`` reports ``mass_on_unseen`` (``pi(y3)``) beside the exact metrics.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from policyfit.common.files import read_json, write_json
from policyfit.errors import ConfigError
from policyfit.pref import exact
from policyfit.pref.models import (
    build_model,
    build_tokenizer,
    load_policy,
    quiet_libraries,
    save_policy,
)

#: Tajwar et al.'s token bandit: vocabulary, response length, reward width.
BANDIT_VOCAB = 100
BANDIT_RESPONSE_LEN = 9
BANDIT_WIDTH = 10.0
#: Monte Carlo sample counts of the bandit evaluation (prompts x samples per prompt).
BANDIT_EVAL_PROMPTS = 100
BANDIT_EVAL_SAMPLES = 8


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@dataclass
class Reference:
    """A task's reference policy: the model, its tokenizer and how it was built."""

    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Reference:
        """A deep copy (the policy to train starts here; the reference stays frozen).

        TRL 1.16's trainers patch a model's ``forward`` with a closure over the *original*
        bound ``forward`` (``trl/trainer/utils.py`` ``add_fused_lm_head``), so a plain
        ``deepcopy`` of a model a trainer has touched would still run the original's weights;
        the copy drops that instance attribute (the class ``forward`` is the same computation,
        and a trainer patches its own model again).
        """
        clone = copy.deepcopy(self.model)
        vars(clone).pop("forward", None)
        return Reference(clone, self.tokenizer, dict(self.info))


@dataclass(frozen=True)
class Task:
    """A preference task; see the module docstring. Subclasses fill in the four methods."""

    name: str
    summary: str
    default_beta: float
    exact: bool

    def reference(self, seed: int = 0, cache: bool = True) -> Reference:
        """The reference policy built deterministically from ``seed``; each call returns a
        fresh copy. Cached per process and, with ``cache``, on disk under
        ``$POLICYFIT_HOME/pref/references/`` (``save_pretrained`` files; building one takes
        seconds to a minute on a loaded CPU)."""
        return _cached_reference(self.name, int(seed), bool(cache)).copy()

    def build_reference(self, seed: int) -> Reference:
        raise NotImplementedError

    def make_rows(self, ref: Reference, n: int, seed: int) -> dict[str, list]:
        raise NotImplementedError

    def evaluate(self, policy, ref: Reference, beta: float | None = None, seed: int = 0) -> dict:
        raise NotImplementedError

    def make_dataset(self, n: int, seed: int = 0, ref: Reference | None = None):
        """``n`` preference rows as a ``datasets.Dataset`` (TRL's explicit-prompt format)."""
        from datasets import Dataset

        if n < 1:
            raise ConfigError(f"need at least one row, got {n}", path="--n", field="n")
        ref = ref if ref is not None else self.reference(seed=0)
        return Dataset.from_dict(self.make_rows(ref, n, seed))


# --------------------------------------------------------------------------- exact tasks


@dataclass(frozen=True)
class EnumerableTask(Task):
    """A task over a finite response space with an exact reference fit and exact evaluation."""

    symbols: tuple[str, ...] = ()
    min_len: int = 1
    max_len: int = 1
    base_length_probs: tuple[float, ...] = ()
    base_symbol_probs: tuple[float, ...] = ()
    reward_fn: Callable[[tuple[str, ...]], float] | None = None
    other_reward: float = 0.0
    label: str = "bradley-terry"  # or "fixed-pair"
    fixed_pair: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    model_size: tuple[int, int, int] = (2, 32, 4)  # n_layer, n_embd, n_head
    fit_steps: int = 200
    fit_lr: float = 1e-2
    fit_batch: int = 256

    def tokenizer(self):
        return build_tokenizer(self.symbols)

    def space(self, tokenizer) -> exact.ResponseSpace:
        ids = tuple(tokenizer.convert_tokens_to_ids(list(self.symbols)))
        return exact.ResponseSpace(
            (tokenizer.bos_token_id,), ids, self.min_len, self.max_len, tokenizer.eos_token_id
        )

    def responses(self) -> list[tuple[str, ...]]:
        """The responses in outcome order (OTHER excluded)."""
        out: list[tuple[str, ...]] = []
        for k in range(self.min_len, self.max_len + 1):
            out.extend(itertools.product(self.symbols, repeat=k))
        return out

    def rewards(self) -> torch.Tensor:
        """The reward of every outcome, OTHER last (float64)."""
        values = [float(self.reward_fn(y)) for y in self.responses()] + [self.other_reward]
        return torch.tensor(values, dtype=torch.float64)

    def base_distribution(self) -> torch.Tensor:
        """The base distribution the reference is fitted to, over the responses (no OTHER)."""
        sym = torch.tensor(self.base_symbol_probs, dtype=torch.float64)
        sym = sym / sym.sum()
        index = {s: i for i, s in enumerate(self.symbols)}
        lengths = torch.tensor(self.base_length_probs, dtype=torch.float64)
        lengths = lengths / lengths.sum()
        probs = [
            float(lengths[len(y) - self.min_len]) * math.prod(float(sym[index[s]]) for s in y)
            for y in self.responses()
        ]
        return torch.tensor(probs, dtype=torch.float64)

    def _teacher_batch(self, tokenizer):
        """Every response as ``<bos> y <eos>`` (right-padded), with the completion mask."""
        rows = [
            [
                tokenizer.bos_token_id,
                *tokenizer.convert_tokens_to_ids(list(y)),
                tokenizer.eos_token_id,
            ]
            for y in self.responses()
        ]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        comp = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            attn[i, : len(r)] = 1
            comp[i, 1 : len(r)] = 1
        return ids, attn, comp

    def build_reference(self, seed: int) -> Reference:
        from policyfit.pref.models import completion_logps

        tokenizer = self.tokenizer()
        n_layer, n_embd, n_head = self.model_size
        model = build_model(
            tokenizer,
            n_layer=n_layer,
            n_embd=n_embd,
            n_head=n_head,
            n_positions=self.max_len + 4,
            seed=seed,
        )
        target = self.base_distribution()
        ids, attn, comp = self._teacher_batch(tokenizer)
        gen = _seeded(seed)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=self.fit_lr)
        for _ in range(self.fit_steps):
            rows = torch.multinomial(target, self.fit_batch, replacement=True, generator=gen)
            logps, _ = completion_logps(model, ids[rows], attn[rows], comp[rows])
            loss = -logps.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        ref_lp = exact.sequence_log_probs(model, self.space(tokenizer))
        base = torch.cat([self.base_distribution(), torch.zeros(1, dtype=torch.float64)])
        info = {
            "fit": f"maximum likelihood on samples of the base distribution, Adam lr "
            f"{self.fit_lr}, {self.fit_steps} steps x {self.fit_batch}",
            "tv_to_base": 0.5 * float((torch.exp(ref_lp) - base).abs().sum()),
            "mass_other": float(torch.exp(ref_lp[-1])),
        }
        return Reference(model, tokenizer, info)

    def make_rows(self, ref: Reference, n: int, seed: int) -> dict[str, list]:
        gen = _seeded(seed)
        responses = self.responses()
        prompt = ref.tokenizer.bos_token
        if self.label == "fixed-pair":
            chosen, rejected = self.fixed_pair
            rw = {
                tuple(chosen): float(self.reward_fn(chosen)),
                tuple(rejected): float(self.reward_fn(rejected)),
            }
            return {
                "prompt": [prompt] * n,
                "chosen": [" " + " ".join(chosen)] * n,
                "rejected": [" " + " ".join(rejected)] * n,
                "chosen_reward": [rw[tuple(chosen)]] * n,
                "rejected_reward": [rw[tuple(rejected)]] * n,
            }
        ref_lp = exact.sequence_log_probs(ref.model, self.space(ref.tokenizer))[:-1]
        rewards = self.rewards()[:-1]
        rows: dict[str, list] = {
            k: [] for k in ("prompt", "chosen", "rejected", "chosen_reward", "rejected_reward")
        }
        while len(rows["prompt"]) < n:
            need = n - len(rows["prompt"])
            a = exact.sample_outcomes(ref_lp, 2 * need, gen)
            b = exact.sample_outcomes(ref_lp, 2 * need, gen)
            u = torch.rand(2 * need, generator=gen, dtype=torch.float64)
            for i, j, v in zip(a.tolist(), b.tolist(), u.tolist(), strict=True):
                if i == j:
                    continue
                p_i = 1.0 / (1.0 + math.exp(-(float(rewards[i]) - float(rewards[j]))))
                w, lo = (i, j) if v < p_i else (j, i)
                rows["prompt"].append(prompt)
                rows["chosen"].append(" " + " ".join(responses[w]))
                rows["rejected"].append(" " + " ".join(responses[lo]))
                rows["chosen_reward"].append(float(rewards[w]))
                rows["rejected_reward"].append(float(rewards[lo]))
                if len(rows["prompt"]) == n:
                    break
        return rows

    def evaluate(self, policy, ref: Reference, beta: float | None = None, seed: int = 0) -> dict:
        """Exact metrics of ``policy`` (a model) against ``ref`` and ``pi*`` at ``beta``."""
        beta = self.default_beta if beta is None else float(beta)
        space = self.space(ref.tokenizer)
        lp = exact.sequence_log_probs(policy, space)
        lr = exact.sequence_log_probs(ref.model, space)
        out = exact.distribution_metrics(lp, lr, self.rewards(), beta)
        out.update(
            beta=beta,
            exact=True,
            mass_other=float(torch.exp(lp[-1])),
            entropy=exact.entropy(lp),
            n_outcomes=space.size,
        )
        return out


def _matches(target: Sequence[str]) -> Callable[[tuple[str, ...]], float]:
    def reward(y: tuple[str, ...]) -> float:
        return float(sum(a == b for a, b in zip(y, target, strict=False)))

    reward.__doc__ = f"number of positions where the response equals {' '.join(target)!r}"
    return reward


@dataclass(frozen=True)
class UnseenResponseTask(EnumerableTask):
    """Xu et al.'s toy with an extra metric: the mass on the response the data never shows."""

    unseen: tuple[str, ...] = ("y3",)

    def evaluate(self, policy, ref: Reference, beta: float | None = None, seed: int = 0) -> dict:
        out = super().evaluate(policy, ref, beta, seed)
        space = self.space(ref.tokenizer)
        lp = exact.sequence_log_probs(policy, space)
        lr = exact.sequence_log_probs(ref.model, space)
        index = self.responses().index(self.unseen)
        out["mass_on_unseen"] = float(torch.exp(lp[index]))
        out["ref_mass_on_unseen"] = float(torch.exp(lr[index]))
        return out


# --------------------------------------------------------------------------- token bandit


def squashed_cauchy_bins(
    loc: float = -0.7, scale: float = 0.4, n_bins: int = BANDIT_VOCAB
) -> torch.Tensor:
    """Exact mass of ``tanh(Cauchy(loc, scale))`` in ``n_bins`` equal bins on [-1, 1] (float64).

    Tajwar et al.'s ``p_data`` is a histogram of 10,000 samples of this distribution; this is its
    limit. Edges at +-1 map to +-inf (the Cauchy CDF is 0 and 1 there).
    """
    edges = torch.linspace(-1.0, 1.0, n_bins + 1, dtype=torch.float64)
    inner = torch.atanh(edges[1:-1])
    cdf = 0.5 + torch.atan((inner - loc) / scale) / math.pi
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), cdf, torch.ones(1, dtype=torch.float64)])
    return cdf[1:] - cdf[:-1]


def bandit_token_reward(tokens: torch.Tensor, centre: float) -> torch.Tensor:
    """``exp(-((a - c) / 10) ** 2)`` per token value ``a`` (``reward_6``/``reward_7``'s term)."""
    return torch.exp(-(((tokens.double() - centre) / BANDIT_WIDTH) ** 2))


@dataclass(frozen=True)
class TokenBanditTask(Task):
    """Tajwar et al.'s token bandit with reward centre ``centre``; see the module docstring."""

    centre: float = 20.0
    sft_steps: int = 100
    sft_lr: float = 1e-2
    sft_batch: int = 16
    n_prompts: int = 100
    special_mass: float = 1e-6

    def tokenizer(self):
        return build_tokenizer([f"t{i}" for i in range(BANDIT_VOCAB)])

    @staticmethod
    def content_ids(tokenizer) -> torch.Tensor:
        return torch.tensor(
            tokenizer.convert_tokens_to_ids([f"t{i}" for i in range(BANDIT_VOCAB)]),
            dtype=torch.long,
        )

    def reward(self, prompt_token: int, response: Sequence[int]) -> float:
        """``R`` of a prompt token value and 9 response token values (0-99): the mean of the
        10 terms, as the official code scores the prompt with the response."""
        values = torch.tensor([prompt_token, *response], dtype=torch.float64)
        return float(bandit_token_reward(values, self.centre).mean())

    def prompts(self, seed: int = 0) -> list[int]:
        """The training prompts (token values), uniform on 0-99, fixed by ``seed``."""
        return torch.randint(
            0, BANDIT_VOCAB, (self.n_prompts,), generator=_seeded(1000 + seed)
        ).tolist()

    def _restricted(self, logits: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits[..., content].double(), dim=-1)

    @torch.no_grad()
    def sample(
        self, model, tokenizer, prompt_values: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """9 response token values per prompt value (``[B]`` -> ``[B, 9]``), each from the
        model's next-token distribution restricted to the content tokens."""
        content = self.content_ids(tokenizer)
        ids = content[prompt_values].unsqueeze(1)
        values = []
        for _ in range(BANDIT_RESPONSE_LEN):
            logits = model(input_ids=ids, use_cache=False).logits[:, -1]
            probs = torch.exp(self._restricted(logits, content))
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            values.append(nxt)
            ids = torch.cat([ids, content[nxt].unsqueeze(1)], dim=1)
        return torch.stack(values, dim=1)

    def build_reference(self, seed: int) -> Reference:
        tokenizer = self.tokenizer()
        model = build_model(tokenizer, n_layer=3, n_embd=48, n_head=3, n_positions=12, seed=seed)
        content = self.content_ids(tokenizer)
        vocab = len(tokenizer)
        target = torch.full((vocab,), 0.0, dtype=torch.float64)
        n_special = vocab - BANDIT_VOCAB
        target[content] = squashed_cauchy_bins() * (1 - self.special_mass)
        special = torch.ones(vocab, dtype=torch.bool)
        special[content] = False
        target[special] = self.special_mass / n_special
        log_target = torch.log(target).float()
        gen = _seeded(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.sft_lr)
        for _ in range(self.sft_steps):
            model.eval()
            prompts = torch.randint(0, BANDIT_VOCAB, (self.sft_batch,), generator=gen)
            response = self.sample(model, tokenizer, prompts, gen)
            ids = content[torch.cat([prompts.unsqueeze(1), response], dim=1)]
            model.train()
            logp = torch.log_softmax(model(input_ids=ids, use_cache=False).logits, dim=-1)
            kl = (logp.exp() * (logp - log_target)).sum(-1)[:, :BANDIT_RESPONSE_LEN].sum(-1)
            eos = -logp[:, BANDIT_RESPONSE_LEN, tokenizer.eos_token_id]
            loss = (kl + eos).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        info = {
            "fit": f"SFT to p_data along own samples, Adam lr {self.sft_lr}, {self.sft_steps} "
            f"steps x {self.sft_batch} prompts",
        }
        return Reference(model, tokenizer, info)

    def make_rows(self, ref: Reference, n: int, seed: int) -> dict[str, list]:
        gen = _seeded(seed)
        prompts = torch.tensor(self.prompts())
        rows: dict[str, list] = {
            k: [] for k in ("prompt", "chosen", "rejected", "chosen_reward", "rejected_reward")
        }
        while len(rows["prompt"]) < n:
            need = n - len(rows["prompt"]) + 8
            x = prompts[torch.randint(0, len(prompts), (need,), generator=gen)]
            a = self.sample(ref.model, ref.tokenizer, x, gen)
            b = self.sample(ref.model, ref.tokenizer, x, gen)
            for xi, ya, yb in zip(x.tolist(), a.tolist(), b.tolist(), strict=True):
                ra, rb = self.reward(xi, ya), self.reward(xi, yb)
                if ra == rb:
                    continue
                (w, rw), (lo, rl) = ((ya, ra), (yb, rb)) if ra > rb else ((yb, rb), (ya, ra))
                rows["prompt"].append(f"t{xi}")
                rows["chosen"].append(" " + " ".join(f"t{v}" for v in w))
                rows["rejected"].append(" " + " ".join(f"t{v}" for v in lo))
                rows["chosen_reward"].append(rw)
                rows["rejected_reward"].append(rl)
                if len(rows["prompt"]) == n:
                    break
        return rows

    @torch.no_grad()
    def _along(self, sampler, other, tokenizer, x: torch.Tensor, gen: torch.Generator):
        """Per-position restricted log-probs of ``sampler`` and ``other`` along ``sampler``'s
        samples: ``[B, 9, 100]`` each."""
        content = self.content_ids(tokenizer)
        y = self.sample(sampler, tokenizer, x, gen)
        ids = content[torch.cat([x.unsqueeze(1), y], dim=1)]
        lp_s = self._restricted(sampler(input_ids=ids, use_cache=False).logits, content)
        lp_o = self._restricted(other(input_ids=ids, use_cache=False).logits, content)
        return lp_s[:, :BANDIT_RESPONSE_LEN], lp_o[:, :BANDIT_RESPONSE_LEN]

    def evaluate(self, policy, ref: Reference, beta: float | None = None, seed: int = 0) -> dict:
        """Monte Carlo over ``BANDIT_EVAL_PROMPTS`` held-out prompts x ``BANDIT_EVAL_SAMPLES``
        samples each, Rao-Blackwellized per position; ``*_se`` are standard errors."""
        beta = self.default_beta if beta is None else float(beta)
        gen = _seeded(10_000 + seed)
        x = torch.randint(0, BANDIT_VOCAB, (BANDIT_EVAL_PROMPTS,), generator=gen)
        x = x.repeat_interleave(BANDIT_EVAL_SAMPLES)
        g = bandit_token_reward(torch.arange(BANDIT_VOCAB), self.centre)
        policy.eval()
        lp, lr = self._along(policy, ref.model, ref.tokenizer, x, gen)
        p = lp.exp()
        reward = (bandit_token_reward(x, self.centre) + (p * g).sum(-1).sum(-1)) / (
            BANDIT_RESPONSE_LEN + 1
        )
        kl_pr = (p * (lp - lr)).sum(-1).sum(-1)
        lr2, lp2 = self._along(ref.model, policy, ref.tokenizer, x, gen)
        kl_rp = (lr2.exp() * (lr2 - lp2)).sum(-1).sum(-1)

        def mean_se(v: torch.Tensor) -> tuple[float, float]:
            return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(v.numel()))

        er, er_se = mean_se(reward)
        kpr, kpr_se = mean_se(kl_pr)
        krp, krp_se = mean_se(kl_rp)
        return {
            "expected_reward": er,
            "expected_reward_se": er_se,
            "kl_policy_ref": kpr,
            "kl_policy_ref_se": kpr_se,
            "kl_ref_policy": krp,
            "kl_ref_policy_se": krp_se,
            "regularized_reward": er - beta * kpr,
            "tv_to_optimum": None,
            "kl_policy_optimum": None,
            "beta": beta,
            "exact": False,
            "samples": f"{BANDIT_EVAL_PROMPTS} prompts x {BANDIT_EVAL_SAMPLES} samples, "
            "per-position exact conditionals (Rao-Blackwellized)",
        }


# --------------------------------------------------------------------------- registry

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        TokenBanditTask(
            name="token-bandit-aligned",
            summary="Tajwar et al.'s token bandit, reward centred at token 20 (near the "
            "reference's mode); Monte Carlo evaluation",
            default_beta=0.1,
            exact=False,
            centre=20.0,
        ),
        TokenBanditTask(
            name="token-bandit-unaligned",
            summary="the token bandit with the reward centred at 70, where the reference puts "
            "little mass; Monte Carlo evaluation",
            default_beta=0.1,
            exact=False,
            centre=70.0,
        ),
        EnumerableTask(
            name="enumerable",
            summary="all responses of 1-4 symbols over a-f (1554 + OTHER); reward = matches "
            "with 'c f e d'; exact distances to pi*",
            default_beta=0.5,
            exact=True,
            symbols=("a", "b", "c", "d", "e", "f"),
            min_len=1,
            max_len=4,
            base_length_probs=(0.15, 0.25, 0.35, 0.25),
            base_symbol_probs=(30, 25, 18, 12, 9, 6),
            reward_fn=_matches(("c", "f", "e", "d")),
        ),
        UnseenResponseTask(
            name="unseen-response",
            summary="Xu et al.'s toy: responses y1 y2 y3, the data only ranks y1 over y2; "
            "exact, reports the mass on y3",
            default_beta=0.1,
            exact=True,
            symbols=("y1", "y2", "y3"),
            min_len=1,
            max_len=1,
            base_length_probs=(1.0,),
            base_symbol_probs=(0.45, 0.45, 0.10),
            reward_fn=lambda y: {"y1": 1.0, "y2": 0.0, "y3": 0.0}[y[0]],
            label="fixed-pair",
            fixed_pair=(("y1",), ("y2",)),
            model_size=(1, 32, 2),
            fit_steps=150,
            fit_batch=64,
        ),
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; a ConfigError listing the names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; choose one of {', '.join(TASKS)}", path="--task", field="task"
        ) from None


#: Bumped whenever a reference's construction changes (names the disk cache entries).
REFERENCE_VERSION = 1


def reference_cache_dir(name: str, seed: int) -> Path:
    """Where :meth:`Task.reference` keeps the reference of task ``name`` built from ``seed``."""
    from policyfit.paths import home

    return home() / "pref" / "references" / f"{name}-seed{seed}-v{REFERENCE_VERSION}"


@functools.lru_cache(maxsize=8)
def _cached_reference(name: str, seed: int, cache: bool) -> Reference:
    task = get_task(name)
    path = reference_cache_dir(name, seed) if cache else None
    if path is not None and (path / "info.json").is_file():
        model, tokenizer = load_policy(path)
        return Reference(model, tokenizer, read_json(path / "info.json"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ref = task.build_reference(seed)
    if path is not None:
        _save_reference(ref, path)
    return ref


def _save_reference(ref: Reference, path: Path) -> None:
    """Write the reference into a temporary sibling directory, then rename it into place (a
    concurrent builder that wins the race leaves its copy; ours is discarded)."""
    quiet_libraries()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        save_policy(ref.model, ref.tokenizer, tmp)
        write_json(tmp / "info.json", ref.info)
        with contextlib.suppress(OSError):  # another process stored it first
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
