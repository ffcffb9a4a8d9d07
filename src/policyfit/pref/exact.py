"""Exact distributions of a causal LM over a finite response space, and exact distances to pi*.

A :class:`ResponseSpace` is one prompt and every completion ``y`` of ``min_len..max_len`` tokens
over a set of symbols, each followed by EOS (as TRL appends ``eos_token`` to ``chosen`` and
``rejected``, so the sequence TRL scores is ``y + [EOS]``). The model's probability of ``y`` is
``prod_t pi(y_t | x, y_<t) * pi(EOS | x, y)``. Everything else the model can emit — a special or
out-of-space token, EOS too early, no EOS after ``max_len`` tokens — is one extra outcome,
``OTHER`` (the last entry of :func:`sequence_log_probs`), so the probabilities sum to exactly 1
and every quantity below is exact, not estimated. Its mass is accumulated node by node (each
prefix's probability times the mass of the tokens not allowed after it), not as ``1 - sum``.

All responses of length ``max_len`` share their prefixes with shorter ones, so one batched
forward pass over the ``|symbols| ** max_len`` full-length sequences yields every conditional
distribution needed (causal attention: the logits at position ``t`` see only the first ``t``
tokens).

:func:`distribution_metrics` then gives, for a policy ``pi``, a reference ``rho`` and a reward
``R`` on the same outcomes, the expected reward, ``KL(pi || rho)``, ``KL(rho || pi)`` and the
distances to the KL-regularized optimum ``pi* ∝ rho * exp(R / beta)`` (Rafailov et al. 2023,
Eq. 4; the maximizer of ``E_pi R - beta KL(pi || rho)``).

Example (a two-outcome check by hand: rho uniform, R = (1, 0), beta = 1 gives
``pi* = (e, 1) / (e + 1)``):
    >>> import math, torch
    >>> rho = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    >>> m = distribution_metrics(rho, rho, torch.tensor([1.0, 0.0], dtype=torch.float64), beta=1.0)
    >>> round(m["optimum_expected_reward"], 6) == round(math.e / (math.e + 1), 6)
    True
    >>> round(m["kl_policy_ref"], 12), round(m["expected_reward"], 6)
    (0.0, 0.5)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

#: Chunk of full-length sequences per forward pass in :func:`sequence_log_probs`.
CHUNK = 2048


@dataclass(frozen=True)
class ResponseSpace:
    """Every completion of ``min_len..max_len`` tokens from ``symbol_ids`` after ``prompt_ids``,
    then ``eos_id``; plus the outcome ``OTHER`` (anything else)."""

    prompt_ids: tuple[int, ...]
    symbol_ids: tuple[int, ...]
    min_len: int
    max_len: int
    eos_id: int

    def __post_init__(self):
        if not self.prompt_ids:
            raise ValueError("a response space needs a non-empty prompt")
        if not 0 <= self.min_len <= self.max_len or self.max_len < 1:
            raise ValueError(f"need 0 <= min_len <= max_len, >= 1: {self.min_len}, {self.max_len}")

    @property
    def size(self) -> int:
        """Number of outcomes, ``OTHER`` included."""
        s = len(self.symbol_ids)
        return sum(s**k for k in range(self.min_len, self.max_len + 1)) + 1

    def sequences(self) -> list[tuple[int, ...]]:
        """The completions (token ids, without EOS) in outcome order: by length, then in
        lexicographic order of symbol positions. ``OTHER`` (last outcome) is not listed."""
        out: list[tuple[int, ...]] = []
        for k in range(self.min_len, self.max_len + 1):
            out.extend(itertools.product(self.symbol_ids, repeat=k))
        return out


def _allowed(space: ResponseSpace, length: int, vocab: int) -> torch.Tensor:
    """Mask over the vocabulary of the tokens that keep a prefix of ``length`` in the space."""
    mask = torch.zeros(vocab, dtype=torch.bool)
    if length < space.max_len:
        mask[list(space.symbol_ids)] = True
    if length >= space.min_len:
        mask[space.eos_id] = True
    return mask


@torch.no_grad()
def _conditionals(model: torch.nn.Module, space: ResponseSpace) -> torch.Tensor:
    """``[S ** max_len, max_len + 1, V]`` float64 log-probabilities of the next token after
    the prompt and the first ``t`` symbols of every full-length sequence."""
    n_prompt = len(space.prompt_ids)
    symbols = torch.tensor(space.symbol_ids, dtype=torch.long)
    digits = torch.tensor(
        list(itertools.product(range(len(space.symbol_ids)), repeat=space.max_len)),
        dtype=torch.long,
    ).reshape(-1, space.max_len)
    full = torch.cat(
        [torch.tensor(space.prompt_ids).expand(digits.shape[0], n_prompt), symbols[digits]], dim=1
    )
    chunks = []
    for start in range(0, full.shape[0], CHUNK):
        ids = full[start : start + CHUNK]
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        chunks.append(torch.log_softmax(logits[:, n_prompt - 1 :].double(), dim=-1))
    return torch.cat(chunks, dim=0)


def sequence_log_probs(model: torch.nn.Module, space: ResponseSpace) -> torch.Tensor:
    """``log pi(outcome | prompt)`` for every outcome of ``space`` (float64, ``[space.size]``):
    the completions of :meth:`ResponseSpace.sequences`, then ``OTHER``. Sums to 1 in probability
    up to float64 rounding."""
    was_training = model.training
    model.eval()
    try:
        lp = _conditionals(model, space)
    finally:
        model.train(was_training)
    n_sym, big = len(space.symbol_ids), space.max_len
    vocab = lp.shape[-1]
    digits = torch.tensor(list(itertools.product(range(n_sym), repeat=big)), dtype=torch.long)
    digits = digits.reshape(-1, big)
    symbols = torch.tensor(space.symbol_ids, dtype=torch.long)
    # log-prob of the first t symbols of every full sequence: prefix[:, t], t = 0..max_len
    token_lp = lp[:, :big].gather(-1, symbols[digits].unsqueeze(-1)).squeeze(-1)
    prefix = torch.cat([torch.zeros(digits.shape[0], 1, dtype=lp.dtype), token_lp.cumsum(1)], 1)
    outcomes, other = [], []
    for k in range(0, big + 1):
        # one representative row per prefix of length k: the full sequences whose tail is digit 0
        rows = torch.arange(n_sym**k, dtype=torch.long) * n_sym ** (big - k)
        node_lp = prefix[rows, k]
        if k >= space.min_len:
            outcomes.append(node_lp + lp[rows, k, space.eos_id])
        bad = ~_allowed(space, k, vocab)
        if bad.any():
            other.append(node_lp + torch.logsumexp(lp[rows, k][:, bad], dim=-1))
    other_lp = torch.logsumexp(torch.cat(other), dim=0)
    return torch.cat([*outcomes, other_lp.reshape(1)])


def _plogp_ratio(p_log: torch.Tensor, q_log: torch.Tensor) -> float:
    """``sum p (log p - log q)`` with ``0 log 0 = 0``; ``inf`` where ``p > 0 = q``."""
    p = torch.exp(p_log)
    live = p > 0
    terms = p[live] * (p_log[live] - q_log[live])
    return float(torch.clamp(terms.sum(), min=0.0))


def optimal_log_probs(
    ref_log_probs: torch.Tensor, rewards: torch.Tensor, beta: float
) -> torch.Tensor:
    """``log pi*`` with ``pi* ∝ rho exp(R / beta)`` (float64)."""
    logits = ref_log_probs.double() + rewards.double() / beta
    return logits - torch.logsumexp(logits, dim=0)


def distribution_metrics(
    policy_log_probs: torch.Tensor,
    ref_log_probs: torch.Tensor,
    rewards: torch.Tensor,
    beta: float,
) -> dict[str, float]:
    """Exact quantities of a policy ``pi`` against ``rho`` and ``pi* ∝ rho exp(R / beta)``.

    Keys: ``expected_reward`` (``E_pi R``), ``kl_policy_ref`` (``KL(pi || rho)``),
    ``kl_ref_policy``, ``regularized_reward`` (``J(pi) = E_pi R - beta KL(pi || rho)``), ``tv_to_optimum``
    (``(1/2) sum |pi - pi*|``), ``kl_policy_optimum`` (``KL(pi || pi*)``, which equals
    ``(J(pi*) - J(pi)) / beta``), ``kl_optimum_policy``, ``optimum_expected_reward``,
    ``optimum_kl_ref`` and ``optimum_regularized_reward`` (``beta log E_rho exp(R / beta)``), and
    ``tv_policy_ref``.
    """
    lp = policy_log_probs.double()
    lr = ref_log_probs.double()
    r = rewards.double()
    ls = optimal_log_probs(lr, r, beta)
    p, q, s = torch.exp(lp), torch.exp(lr), torch.exp(ls)
    kl_pr = _plogp_ratio(lp, lr)
    kl_sr = _plogp_ratio(ls, lr)
    er, es = float((p * r).sum()), float((s * r).sum())
    return {
        "expected_reward": er,
        "kl_policy_ref": kl_pr,
        "kl_ref_policy": _plogp_ratio(lr, lp),
        "regularized_reward": er - beta * kl_pr,
        "tv_policy_ref": 0.5 * float((p - q).abs().sum()),
        "tv_to_optimum": 0.5 * float((p - s).abs().sum()),
        "kl_policy_optimum": _plogp_ratio(lp, ls),
        "kl_optimum_policy": _plogp_ratio(ls, lp),
        "optimum_expected_reward": es,
        "optimum_kl_ref": kl_sr,
        "optimum_regularized_reward": beta * float(torch.logsumexp(lr + r / beta, dim=0)),
    }


def entropy(log_probs: torch.Tensor) -> float:
    """``-sum p log p`` (nats) of a distribution given by its log-probabilities."""
    lp = log_probs.double()
    p = torch.exp(lp)
    live = p > 0
    return float(-(p[live] * lp[live]).sum())


def sample_outcomes(log_probs: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` outcome indices drawn from ``exp(log_probs)`` (with replacement)."""
    probs = torch.exp(log_probs.double())
    return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)


def is_normalized(log_probs: torch.Tensor, atol: float = 1e-9) -> bool:
    """Whether ``exp(log_probs)`` sums to 1 within ``atol``."""
    return math.isclose(float(torch.exp(log_probs.double()).sum()), 1.0, abs_tol=atol)


def format_sequence(ids: Sequence[int], id_to_token: dict[int, str]) -> str:
    """``"a b c"`` for token ids (the task text convention of :mod:`policyfit.pref.models`)."""
    return " ".join(id_to_token[i] for i in ids)
