"""Preference objectives as pure functions of per-sequence log-probabilities.

Notation: ``x`` prompt, ``y`` completion, ``pi`` the policy, ``rho`` the reference,
``h(y) = log pi(y|x) - log rho(y|x)`` (summed over the completion tokens unless said otherwise),
``y_w``/``y_l`` chosen/rejected, ``sigma`` the logistic function, ``sg`` stop-gradient.
Each function returns the **per-pair (or per-sequence) loss tensor**; a trainer averages it.
Log-probabilities are those of the completion tokens only, EOS included when the sequence ends
with one (TRL appends EOS to ``chosen`` and ``rejected``).

Example (``h(y_w) - h(y_l) = 2``, ``beta = 0.5``: ``-log sigma(1) = log(1 + e^-1)``):
    >>> import math, torch
    >>> z = torch.zeros(1)
    >>> loss = dpo_loss(torch.tensor([2.0]), z, z, z, beta=0.5)
    >>> abs(loss.item() - math.log1p(math.exp(-1.0))) < 1e-6
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """DPO (Rafailov et al. 2023, arXiv 2305.18290, Eq. 7), per pair:

    ``L = -log sigma(beta * (h(y_w) - h(y_l)))``.

    TRL 1.16 ``DPOTrainer`` ``loss_type="sigmoid"`` (default ``beta = 0.1``) computes the same
    per pair and averages over the batch (``trl/trainer/dpo_trainer.py``, ``_compute_loss``).
    """
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin)


def ipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> Tensor:
    """IPO (Azar et al. 2023, arXiv 2310.12036, Eq. 17 with ``tau = beta``), per pair:

    ``L = (h(y_w) - h(y_l) - 1 / (2 beta)) ** 2``.

    Sequence form (the equation as written): pass summed log-probabilities and no lengths.
    TRL's form (``loss_type="ipo"``): each log-ratio is divided by its number of completion
    tokens (EOS included), ``h(y) / |y|``; pass ``chosen_lengths``/``rejected_lengths`` with the
    sums, or pass per-token average log-probabilities and no lengths — the two are equal. TRL's
    comment says the authors confirmed that their reported results use this averaged form.
    """
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    if chosen_lengths is not None:
        chosen = chosen / chosen_lengths.clamp(min=1)
    if rejected_lengths is not None:
        rejected = rejected / rejected_lengths.clamp(min=1)
    return (chosen - rejected - 1.0 / (2.0 * beta)) ** 2


def rpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.01,
    eta: float = 0.005,
    chosen_lengths: Tensor | None = None,
) -> Tensor:
    """RPO (Liu et al. 2024, arXiv 2405.16436, "your SFT loss is implicitly an adversarial
    regularizer"), per pair:

    ``L = L_DPO + eta * beta * (-log pi(y_w | x))``.

    As in the official code (``YSLIU627/Regularized-Preference-Optimization``,
    ``alignment-handbook/scripts/rpo_trainer.py`` at 088d921e: ``losses -= policy_chosen_logps *
    self.beta * self.eta``, with token-summed log-probabilities); the defaults are its Zephyr
    recipe's ``beta = 0.01, eta = 0.005``. With ``chosen_lengths`` the NLL is per token
    (``-log pi(y_w) / |y_w|``), the normalization of Pang et al.'s iterative RPO and of
    OpenRLHF. TRL's ``loss_type=["sigmoid", "sft"]`` differs once more: its SFT term is the mean
    token NLL over all chosen tokens of the batch (one scalar), weighted by ``loss_weights``.
    """
    nll = -policy_chosen_logps
    if chosen_lengths is not None:
        nll = nll / chosen_lengths.clamp(min=1)
    dpo = dpo_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    return dpo + eta * beta * nll


def copg_loss(
    policy_logps: Tensor,
    policy_other_logps: Tensor,
    ref_logps: Tensor,
    ref_other_logps: Tensor,
    rewards: Tensor,
    other_rewards: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """CoPG (Flet-Berliac et al. 2024, arXiv 2406.19185), per pair of completions ``y, y'`` of
    the same prompt, drawn from any behaviour policy, each with a scalar reward ``R``:

    ``L = (beta / 2) * (h(y) - h(y') - (R(y) - R(y')) / beta) ** 2``.

    Its gradient is ``-(R_beta(y) - R_beta(y')) * grad(log pi(y) - log pi(y'))`` with the
    regularized reward ``R_beta = R - beta * h``: the paper's contrastive policy-gradient update
    (the other sample is the baseline), re-derived here from the update rule, not copied from
    code. Its minimizers satisfy ``h(y) - h(y') = (R(y) - R(y')) / beta`` for every pair, i.e.
    ``pi ∝ rho exp(R / beta) = pi*`` wherever the behaviour policy has support; with
    ``R = ±1/2`` it is ``beta`` times IPO's sequence loss with ``tau = beta``.
    """
    margin = (policy_logps - ref_logps) - (policy_other_logps - ref_other_logps)
    return 0.5 * beta * (margin - (rewards - other_rewards) / beta) ** 2


def c_rlft_weights(rewards: Tensor, beta: float | None = None) -> Tensor:
    """C-RLFT's per-example weights from the coarse class rewards ``r_c``: ``exp(r_c / beta)``
    (the paper's optimal-policy derivation, ``pi* ∝ pi_c exp(r_c / beta)``), or ``r_c`` itself
    when ``beta`` is None (the released code: each class's messages carry a fixed ``weight``,
    1.0 for GPT-4 data and 0.1 for GPT-3.5 data in OpenChat's recipe)."""
    return rewards if beta is None else torch.exp(rewards / beta)


def c_rlft_loss(policy_logps: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
    """C-RLFT (OpenChat, Wang et al. 2023, arXiv 2309.11235), per example:

    ``L = -w(c) * log pi(y | x, c)``,

    reward-weighted SFT of the class-conditioned policy (the class ``c`` — the data source —
    is part of the prompt, e.g. a role prefix ``"GPT4 Correct User:"``). ``weights`` from
    :func:`c_rlft_weights`. With ``lengths`` the log-probability is per token (OpenChat's
    ``--per-sequence-loss`` divides each message's weight by its token count).
    """
    logps = policy_logps if lengths is None else policy_logps / lengths.clamp(min=1)
    return -weights * logps


def best_of_n_indices(rewards: Tensor, k: int = 1) -> Tensor:
    """SuperHF's filter: for ``rewards [n_prompts, n]`` the indices ``[n_prompts, k]`` of the
    ``k`` highest-reward completions of each prompt (``completion_filter_top_k = 1``)."""
    return torch.topk(rewards, k, dim=-1).indices


def superhf_kl(policy_token_logits: Tensor, ref_token_logits: Tensor, mask: Tensor) -> Tensor:
    """SuperHF's KL prior per sequence: the mean over completion positions of
    ``KL(pi_0(.|x, y_<t) || pi(.|x, y_<t))`` (``torch.nn.KLDivLoss(reduction="batchmean",
    log_target=True)(log pi, log pi_0)`` over the positions of each sequence in
    ``openfeedback/superhf`` ``src/superhf/training.py``). Logits ``[B, T, V]``, mask ``[B, T]``.
    """
    logp = torch.log_softmax(policy_token_logits.float(), dim=-1)
    logq = torch.log_softmax(ref_token_logits.float(), dim=-1)
    per_position = (logq.exp() * (logq - logp)).sum(-1)
    m = mask.to(per_position.dtype)
    return (per_position * m).sum(-1) / m.sum(-1).clamp(min=1)


def superhf_loss(
    policy_logps: Tensor,
    lengths: Tensor,
    kl: Tensor,
    kl_coefficient: float = 0.35,
) -> Tensor:
    """SuperHF (Mukobi et al. 2023, arXiv 2310.16763), per kept (best-of-n) completion:

    ``L = -log pi(y* | x) / |y*| + gamma * max(0, KL(pi_0 || pi))``,

    the token-mean cross-entropy of the filtered completion plus the clipped KL prior
    (:func:`superhf_kl`), ``gamma = kl_coefficient`` (0.35 in the authors' default config,
    ``experiments/superhf/shf_iterative_v1/configs/default.yaml``). The filtering itself
    (sample ``n`` per prompt from the current policy, keep the best, :func:`best_of_n_indices`)
    happens outside the loss.
    """
    return -policy_logps / lengths.clamp(min=1) + kl_coefficient * torch.clamp(kl, min=0.0)


def rloo_kl_surrogate(online_policy_logps: Tensor, online_ref_logps: Tensor) -> Tensor:
    """A surrogate whose gradient is the RLOO estimate of ``grad KL(pi || rho)`` from ``k``
    samples ``y_i ~ pi`` per prompt (``[B, k]``, ``k >= 2``), per prompt:

    ``(1/k) sum_i (l_i - mean_{j != i} l_j) * log pi(y_i)`` with ``l = sg(log pi - log rho)``.

    Its value is not the KL (centred advantages make it ~0); its gradient is an unbiased
    estimate of ``grad KL`` (the score-function identity, with a leave-one-out baseline).
    """
    k = online_policy_logps.shape[-1]
    if k < 2:
        raise ValueError("the leave-one-out baseline needs k >= 2 samples per prompt")
    ell = (online_policy_logps - online_ref_logps).detach()
    baseline = (ell.sum(-1, keepdim=True) - ell) / (k - 1)
    return ((ell - baseline) * online_policy_logps).mean(-1)


def hypo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    online_policy_logps: Tensor,
    online_ref_logps: Tensor,
    beta: float = 0.1,
    lam: float = 0.1,
) -> Tensor:
    """HyPO (Song et al. 2024, arXiv 2406.01462), per pair:

    ``L = L_DPO + lam * KL(pi(.|x) || rho(.|x))``,

    offline DPO on the labelled pair plus the reverse KL on the policy's own unlabelled samples
    for the same prompt (``online_*_logps [B, k]``), the KL's gradient estimated with REINFORCE
    and a leave-one-out baseline (:func:`rloo_kl_surrogate`). The default ``lam`` is ours (the
    paper's values not re-verified).
    """
    dpo = dpo_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    return dpo + lam * rloo_kl_surrogate(online_policy_logps, online_ref_logps)


def nash_md_mixture_logits(
    policy_logits: Tensor, ref_logits: Tensor, mixture_coef: float = 0.5
) -> Tensor:
    """Nash-MD's geometric mixture ``pi_mu ∝ pi^(1 - a) * rho^a`` at one step, as log-probs:
    ``log_softmax(a * ref_logits + (1 - a) * policy_logits)`` (Munos et al. 2023, arXiv
    2312.00886, Sec. 6; TRL 1.13 ``NashMDTrainer`` mixes token logits with ``mixture_coef``
    ``a = 0.5``; the per-token mixture is what autoregressive sampling can draw from)."""
    return torch.log_softmax(mixture_coef * ref_logits + (1 - mixture_coef) * policy_logits, -1)


def nash_md_loss(
    policy_token_logps: Tensor,
    ref_token_logps: Tensor,
    mask: Tensor,
    preference: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """Nash-MD's policy loss for a sample ``y ~ pi`` compared with ``y' ~ pi_mu`` (the
    mixture), per sequence (TRL 1.13 ``experimental/nash_md``, removed in 1.14):

    ``L = beta * sum_t sg(log pi(y_t) - log rho(y_t)) * log pi(y_t)
    - (P(y > y') - 1/2) * sum_t log pi(y_t)``,

    REINFORCE on the preference of ``y`` over the mixture's sample with the 1/2 control variate,
    plus a per-token REINFORCE estimate of ``beta * KL(pi || rho)``. ``policy_token_logps`` and
    ``ref_token_logps`` ``[B, T]`` on the tokens of ``y``, ``mask [B, T]``, ``preference [B]``.
    """
    m = mask.to(policy_token_logps.dtype)
    logp = (policy_token_logps * m).sum(-1)
    kl_term = ((policy_token_logps - ref_token_logps).detach() * policy_token_logps * m).sum(-1)
    return beta * kl_term - (preference - 0.5) * logp
