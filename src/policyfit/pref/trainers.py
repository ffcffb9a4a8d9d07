"""Trainers, with TRL's conventions, for the objectives TRL 1.16 does not have.

TRL 1.16 has DPO, IPO and RPO's SFT-augmented DPO (``DPOTrainer``, ``loss_type=["sigmoid",
"sft"]``; the old ``rpo_alpha`` field is gone) and online DPO (``trl.experimental.online_dpo``);
:mod:`policyfit.pref.train` runs those through TRL. The rest are here, on **one** base,
:class:`PrefTrainer`, a ``transformers.Trainer`` like TRL's trainers: a config dataclass
(:class:`PrefConfig`, a ``TrainingArguments``), ``train_dataset`` (TRL's explicit-prompt
preference rows ``prompt``/``chosen``/``rejected``, plus ``chosen_reward``/``rejected_reward``
for the scored objectives; the online ones read ``prompt`` only, DR-PO also ``chosen``),
``processing_class``, an explicit frozen ``ref_model``, ``callbacks``, and TRL's logged metrics
(``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies`` with
``beta * (log pi - log pi_ref)`` as the implicit reward; the online trainers also log ``kl``,
the mean of ``log pi(y) - log pi_ref(y)`` over the policy's own samples, and ``objective/
scores``, their mean task reward). Each objective's loss is the pure function of
:mod:`policyfit.pref.losses`; a trainer only gathers log-probabilities and samples.

========================  ================================  ====================================
objective                 trainer                           data it reads
========================  ================================  ====================================
``dpo-ours``              :class:`PairDPOTrainer`           pairs (parity and speed vs TRL only)
``copg``                  :class:`CoPGTrainer`              two scored completions per prompt
``c-rlft``                :class:`CRLFTTrainer`             pairs as mixed-quality classes
``superhf``               :class:`SuperHFTrainer`           prompts; samples its own
``hypo``                  :class:`HyPOTrainer`              pairs + its own samples
``nash-md``               :class:`NashMDTrainer`            prompts; samples its own + mixture
``drpo-rollin``           :class:`DRPORollinTrainer`        prompts + chosen prefixes (roll-in)
========================  ================================  ====================================

Example (see :func:`policyfit.pref.train.train` for the usual entry point):
    >>> from policyfit.pref.tasks import get_task                                 # doctest: +SKIP
    >>> task = get_task("enumerable"); ref = task.reference(0)                    # doctest: +SKIP
    >>> args = CoPGConfig(output_dir="out", beta=0.5, max_steps=20, **CPU_DEFAULTS)  # doctest: +SKIP
    >>> trainer = CoPGTrainer(ref.copy().model, ref.model, args, task.make_dataset(640),
    ...                       ref.tokenizer, task=task)                          # doctest: +SKIP
    >>> trainer.train()                                                           # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from policyfit.pref import losses
from policyfit.pref.models import completion_logps
from policyfit.pref.rollouts import Rollout, Sampler

#: TrainingArguments settings every CPU run here uses (float32, no checkpointing, no reports).
CPU_DEFAULTS: dict[str, Any] = {
    "bf16": False,
    "fp16": False,
    "use_cpu": True,
    "report_to": "none",
    "save_strategy": "no",
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
}


@dataclass
class PrefConfig(TrainingArguments):
    """Settings of a :class:`PrefTrainer`: ``TrainingArguments`` plus ``beta`` (the KL strength,
    TRL's name and default). ``remove_unused_columns`` is off: the trainers read raw rows."""

    beta: float = field(default=0.1, metadata={"help": "KL strength beta."})
    remove_unused_columns: bool = field(default=False)


@dataclass
class CoPGConfig(PrefConfig):
    """CoPG: ``beta`` only; rewards are read from ``chosen_reward``/``rejected_reward``."""


@dataclass
class CRLFTConfig(PrefConfig):
    """C-RLFT: class rewards (OpenChat: 1.0 for GPT-4 data, 0.1 for GPT-3.5 data), the class
    marker that prefixes the sub-optimal class's prompt, and whether weights are
    ``exp(r_c / beta)`` (``exp_weights``, the paper's derivation) or ``r_c`` (the code)."""

    expert_reward: float = 1.0
    suboptimal_reward: float = 0.1
    exp_weights: bool = False
    per_sequence_loss: bool = False
    class_marker: str = "<unk>"


@dataclass
class OnlineConfig(PrefConfig):
    """Settings of the trainers that sample from the policy: ``num_samples`` per prompt."""

    num_samples: int = 2


@dataclass
class SuperHFConfig(OnlineConfig):
    """SuperHF (defaults of ``openfeedback/superhf`` ``shf_iterative_v1/configs/default.yaml``:
    ``superbatch_size 16``, ``completion_filter_top_k 1``, ``kl_coefficient 0.35``)."""

    num_samples: int = 16
    top_k: int = 1
    kl_coefficient: float = 0.35


@dataclass
class HyPOConfig(OnlineConfig):
    """HyPO: ``lam`` weights the online reverse KL; ``num_samples`` (``k >= 2``) per prompt."""

    lam: float = 0.1


@dataclass
class NashMDConfig(OnlineConfig):
    """Nash-MD (TRL 1.13 ``NashMDConfig``: ``mixture_coef 0.5``, ``beta 0.1``)."""

    mixture_coef: float = 0.5
    num_samples: int = 1


@dataclass
class DRPOConfig(OnlineConfig):
    """DR-PO's roll-in (``Cornell-RL/drpo``: reset to a dataset prefix with probability
    ``rollin_prob``, default 1.0); ``num_samples`` continuations per prefix (RLOO baseline)."""

    rollin_prob: float = 1.0


def _rows(rows: list[dict]) -> dict[str, list[dict]]:
    """The collator: raw rows; each trainer tokenizes what it reads."""
    return {"rows": rows}


class PrefTrainer(Trainer):
    """The shared base: a ``transformers.Trainer`` whose loss is ``self.loss(model, rows)``.

    ``ref_model`` is required and frozen (an explicit object, as TRL's trainers take it;
    TRL would reload it from ``config._name_or_path``). ``task`` gives the online trainers
    their sampler and reward program (:class:`policyfit.pref.rollouts.Sampler`).
    """

    def __init__(
        self,
        model,
        ref_model,
        args: PrefConfig,
        train_dataset,
        processing_class,
        task=None,
        callbacks=None,
    ):
        if ref_model is None or ref_model is model:
            raise ValueError("pass the frozen reference as ref_model (a separate model object)")
        super().__init__(
            model=model,
            args=args,
            data_collator=_rows,
            train_dataset=train_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
        )
        self.ref_model = ref_model.eval()
        for p in self.ref_model.parameters():
            p.requires_grad_(False)
        self.task = task
        self.sampler = Sampler(task, processing_class) if task is not None else None
        self.generator = torch.Generator().manual_seed(int(args.seed))
        self._metrics: dict[str, list[float]] = defaultdict(list)

    #: The config dataclass of this trainer (TRL pairs each trainer with one).
    config_class: type[PrefConfig] = PrefConfig

    # ------------------------------------------------------------------ Trainer hooks
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = self.loss(model, inputs["rows"])
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for key, values in self._metrics.items():
            logs[key] = sum(values) / len(values)
        self._metrics.clear()
        super().log(logs, start_time)

    def loss(self, model, rows: list[dict]) -> torch.Tensor:
        raise NotImplementedError

    def record(self, **metrics: float | torch.Tensor) -> None:
        for key, value in metrics.items():
            v = value.detach().float().mean().item() if torch.is_tensor(value) else float(value)
            self._metrics[key.replace("__", "/")].append(v)

    # ------------------------------------------------------------------ tokenization
    def encode(self, prompts: list[str], completions: list[str]):
        """``input_ids``, ``attention_mask``, ``completion_mask`` of prompt + completion + EOS
        (right-padded), as TRL's preference collator builds them."""
        tok = self.processing_class
        rows = []
        for p, c in zip(prompts, completions, strict=True):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            c_ids = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append((p_ids, c_ids))
        width = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        comp = torch.zeros_like(ids)
        for i, (p, c) in enumerate(rows):
            ids[i, : len(p) + len(c)] = torch.tensor(p + c)
            attn[i, : len(p) + len(c)] = 1
            comp[i, len(p) : len(p) + len(c)] = 1
        dev = self.args.device
        return ids.to(dev), attn.to(dev), comp.to(dev)

    def logps(self, model, ids, attn, comp, grad: bool = True):
        """Per-sequence summed completion log-probs and token counts of ``model``."""
        if grad:
            return completion_logps(model, ids, attn, comp)
        with torch.no_grad():
            return completion_logps(model, ids, attn, comp)

    def pair_logps(self, model, rows: list[dict]):
        """Policy and reference log-probs of ``chosen`` and ``rejected`` (one forward each)."""
        prompts = [r["prompt"] for r in rows]
        ids, attn, comp = self.encode(
            prompts * 2, [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
        )
        pol, n = self.logps(model, ids, attn, comp)
        ref, _ = self.logps(self.ref_model, ids, attn, comp, grad=False)
        pc, pr = pol.chunk(2)
        rc, rr = ref.chunk(2)
        lc, lr = n.chunk(2)
        return pc, pr, rc, rr, lc, lr

    def record_pair(self, pc, pr, rc, rr) -> None:
        beta = self.args.beta
        chosen, rejected = beta * (pc - rc).detach(), beta * (pr - rr).detach()
        self.record(
            rewards__chosen=chosen,
            rewards__rejected=rejected,
            rewards__margins=chosen - rejected,
            rewards__accuracies=(chosen > rejected).float(),
        )

    # ------------------------------------------------------------------ sampling
    def rollout(self, logits_fn, prompts: list[str], prefixes=None) -> Rollout:
        if self.sampler is None:
            raise ValueError(f"{type(self).__name__} samples completions: pass task=")
        return self.sampler.generate(
            logits_fn, self.sampler.prompt_ids(prompts), self.generator, prefixes
        )

    def own_samples(self, model, prompts: list[str], prefixes=None) -> Rollout:
        was = model.training
        model.eval()
        try:
            return self.rollout(Sampler.logits_of(model), prompts, prefixes)
        finally:
            model.train(was)


# ---------------------------------------------------------------------------- offline


class PairDPOTrainer(PrefTrainer):
    """DPO on our base (:func:`losses.dpo_loss`); used to check the base against TRL's
    ``DPOTrainer`` (same trajectory) and to time it; ``train("dpo")`` runs TRL's."""

    config_class = PrefConfig

    def loss(self, model, rows):
        pc, pr, rc, rr, _, _ = self.pair_logps(model, rows)
        self.record_pair(pc, pr, rc, rr)
        return losses.dpo_loss(pc, pr, rc, rr, beta=self.args.beta).mean()


class CoPGTrainer(PrefTrainer):
    """CoPG (Flet-Berliac et al. 2024): the contrastive off-policy policy gradient on two
    independently sampled, scored completions of a prompt (:func:`losses.copg_loss`); rows are
    ``chosen``/``rejected`` with ``chosen_reward``/``rejected_reward`` (the order is irrelevant:
    the loss is symmetric in the two)."""

    config_class = CoPGConfig

    def loss(self, model, rows):
        pc, pr, rc, rr, _, _ = self.pair_logps(model, rows)
        dev = pc.device
        r1 = torch.tensor([r["chosen_reward"] for r in rows], dtype=pc.dtype, device=dev)
        r2 = torch.tensor([r["rejected_reward"] for r in rows], dtype=pc.dtype, device=dev)
        self.record_pair(pc, pr, rc, rr)
        return losses.copg_loss(pc, pr, rc, rr, r1, r2, beta=self.args.beta).mean()


class CRLFTTrainer(PrefTrainer):
    """C-RLFT (OpenChat): class-conditioned, reward-weighted SFT. Each preference row gives
    two examples: the chosen completion in the expert class (the plain prompt, which
    evaluation uses, as OpenChat always conditions on the expert class at inference) and the
    rejected one in the sub-optimal class (prompt prefixed with ``class_marker``: our tiny
    vocabularies have no spare token, ``<unk>`` serves). Loss :func:`losses.c_rlft_loss`."""

    config_class = CRLFTConfig

    def loss(self, model, rows):
        a = self.args
        prompts = [r["prompt"] for r in rows] + [f"{a.class_marker} {r['prompt']}" for r in rows]
        completions = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
        ids, attn, comp = self.encode(prompts, completions)
        logp, n = self.logps(model, ids, attn, comp)
        r = torch.tensor(
            [a.expert_reward] * len(rows) + [a.suboptimal_reward] * len(rows),
            dtype=logp.dtype,
            device=logp.device,
        )
        w = losses.c_rlft_weights(r, a.beta if a.exp_weights else None)
        per = losses.c_rlft_loss(logp, w, n if a.per_sequence_loss else None)
        self.record(nll__expert=-logp[: len(rows)], nll__suboptimal=-logp[len(rows) :])
        return per.mean()


# ---------------------------------------------------------------------------- online


def token_logps(model, ids, attn, grad: bool = True):
    """``[B, T-1]`` log-probs of each next token (and the ``[B, T-1, V]`` log-softmax)."""
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1]
        logp = torch.log_softmax(logits.float(), dim=-1)
        return logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1), logp


class SuperHFTrainer(PrefTrainer):
    """SuperHF (Mukobi et al. 2023): per prompt sample ``num_samples`` completions from the
    current policy, keep the ``top_k`` best by the task's reward, and fine-tune on them with
    the KL prior (:func:`losses.superhf_loss`, :func:`losses.superhf_kl`). One superbatch per
    optimizer step (the paper accumulates prompts; same estimator)."""

    config_class = SuperHFConfig

    def loss(self, model, rows):
        a = self.args
        prompts = [r["prompt"] for r in rows]
        n = a.num_samples
        roll = self.own_samples(model, [p for p in prompts for _ in range(n)])
        scores = self.sampler.rewards(roll).reshape(len(rows), n)
        best = losses.best_of_n_indices(scores, a.top_k)  # [B, k]
        keep = (torch.arange(len(rows)).unsqueeze(1) * n + best).reshape(-1)
        ids, attn, comp = roll.input_ids[keep], roll.attention_mask[keep], roll.completion_mask
        comp = comp[keep]
        tok_lp, logp_full = token_logps(model, ids, attn)
        _, ref_full = token_logps(self.ref_model, ids, attn, grad=False)
        mask = comp[:, 1:].to(tok_lp.dtype)
        seq = (tok_lp * mask).sum(-1)
        kl = losses.superhf_kl(logp_full, ref_full, mask)
        self.record(
            objective__scores=scores.mean(),
            objective__best_scores=scores.gather(1, best).mean(),
            kl_prior=kl,
        )
        return losses.superhf_loss(seq, mask.sum(-1), kl, a.kl_coefficient).mean()


def _online_logps(trainer: PrefTrainer, model, roll: Rollout):
    pol, n = trainer.logps(model, roll.input_ids, roll.attention_mask, roll.completion_mask)
    ref, _ = trainer.logps(
        trainer.ref_model, roll.input_ids, roll.attention_mask, roll.completion_mask, grad=False
    )
    return pol, ref, n


class HyPOTrainer(PrefTrainer):
    """HyPO (Song et al. 2024): DPO on the labelled pairs plus ``lam`` times the reverse KL on
    ``num_samples`` of the policy's own completions per prompt (:func:`losses.hypo_loss`)."""

    config_class = HyPOConfig

    def loss(self, model, rows):
        a = self.args
        k = a.num_samples
        pc, pr, rc, rr, _, _ = self.pair_logps(model, rows)
        roll = self.own_samples(model, [r["prompt"] for r in rows for _ in range(k)])
        pol, ref, _ = _online_logps(self, model, roll)
        self.record_pair(pc, pr, rc, rr)
        self.record(kl=(pol - ref).detach())
        per = losses.hypo_loss(
            pc, pr, rc, rr, pol.reshape(-1, k), ref.reshape(-1, k), beta=a.beta, lam=a.lam
        )
        return per.mean()


class NashMDTrainer(PrefTrainer):
    """Nash-MD (Munos et al. 2023) as TRL 1.13's ``NashMDTrainer`` did it (removed in 1.14):
    ``y ~ pi``, ``y' ~`` the token-level geometric mixture of ``pi`` and ``pi_ref``
    (:func:`losses.nash_md_mixture_logits`, ``mixture_coef``), the preference
    ``P(y > y') = sigma(R(y) - R(y'))`` from the task's reward (Bradley-Terry, as TRL turned
    reward-model scores into a probability), loss :func:`losses.nash_md_loss`."""

    config_class = NashMDConfig

    def loss(self, model, rows):
        a = self.args
        prompts = [r["prompt"] for r in rows for _ in range(a.num_samples)]
        roll = self.own_samples(model, prompts)
        was = model.training
        model.eval()

        def mixture(ids, attn):
            with torch.no_grad():
                pol = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
                ref = self.ref_model(input_ids=ids, attention_mask=attn, use_cache=False).logits
            return losses.nash_md_mixture_logits(pol.float(), ref.float(), a.mixture_coef)

        try:
            mix = self.rollout(mixture, prompts)
        finally:
            model.train(was)
        r, r_mix = self.sampler.rewards(roll), self.sampler.rewards(mix)
        pref = torch.sigmoid(r - r_mix).float()
        tok_lp, _ = token_logps(model, roll.input_ids, roll.attention_mask)
        ref_lp, _ = token_logps(self.ref_model, roll.input_ids, roll.attention_mask, grad=False)
        mask = roll.completion_mask[:, 1:]
        self.record(
            objective__scores=r,
            objective__mixture_scores=r_mix,
            kl=((tok_lp - ref_lp).detach() * mask).sum(-1),
            preference=pref,
        )
        return losses.nash_md_loss(tok_lp, ref_lp, mask, pref, beta=a.beta).mean()


class DRPORollinTrainer(PrefTrainer):
    """DR-PO's dataset reset (Chang et al. 2024): with probability ``rollin_prob`` a prompt is
    rolled in by teacher-forcing a prefix of its ``chosen`` completion of length
    ``h ~ U{1, ..., |y| - 1}``; the policy generates the rest, ``num_samples`` times. The update
    is on the generated tokens only: REINFORCE on the KL-regularized reward
    ``R(y) - beta * sg(log pi - log pi_ref)`` (over the generated tokens) with the
    leave-one-out baseline among the continuations of the same prefix. DR-PO runs PPO on a
    learned reward model; here the task's reward program replaces the model and RLOO replaces
    PPO's clipped update (ours; the reset distribution is the paper's)."""

    config_class = DRPOConfig

    def loss(self, model, rows):
        a = self.args
        k = a.num_samples
        if k < 2:
            raise ValueError("DR-PO's leave-one-out baseline needs num_samples >= 2")
        rng = random.Random(int(self.generator.initial_seed()) + self.state.global_step)
        chosen = self.sampler.completion_ids([r["chosen"] for r in rows])
        prefixes = []
        for y in chosen:
            h = rng.randint(1, len(y) - 1) if len(y) >= 2 and rng.random() < a.rollin_prob else 0
            prefixes.extend([y[:h]] * k)
        prompts = [r["prompt"] for r in rows for _ in range(k)]
        roll = self.own_samples(model, prompts, prefixes)
        pol, ref, _ = _online_logps(self, model, roll)
        r = self.sampler.rewards(roll).to(pol.dtype)
        shaped = (r - a.beta * (pol - ref).detach()).reshape(-1, k)
        baseline = (shaped.sum(-1, keepdim=True) - shaped) / (k - 1)
        adv = (shaped - baseline).reshape(-1)
        self.record(objective__scores=r, kl=(pol - ref).detach(), advantage_abs=adv.abs())
        return -(adv * pol).mean()
