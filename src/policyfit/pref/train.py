"""``train(objective, task, ...)``: fine-tune a task's reference on its preference data, measure.

The objectives TRL 1.16 has run through TRL's own trainer: ``dpo``, ``ipo`` and ``rpo`` are
``trl.DPOTrainer`` with ``loss_type=["sigmoid"]`` / ``["ipo"]`` / ``["sigmoid", "sft"]`` (TRL
1.16 has no ``rpo_alpha``; its SFT term is the mean token NLL of the chosen completions, weighted
by ``rpo_alpha``, default 1.0), ``online-dpo`` is ``trl.experimental.online_dpo.
OnlineDPOTrainer`` with the task's reward program as ``reward_funcs``. The others (``copg``,
``c-rlft``, ``superhf``, ``hypo``, ``nash-md``, ``drpo-rollin``) run on
:mod:`policyfit.pref.trainers`' one base with TRL's conventions. The model and the
reference are passed as objects and the tokenizer as ``processing_class`` (TRL would otherwise
reload both from ``config._name_or_path``); CPU, float32, no gradient checkpointing, no
reporting, a constant learning rate.

Example (seconds on a CPU; the reference is cached under ``$POLICYFIT_HOME``):
    >>> result = train("dpo", "enumerable", steps=30, seed=0)            # doctest: +SKIP
    >>> result["before"]["tv_to_optimum"] > result["tv_to_optimum"]      # doctest: +SKIP
    True
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from policyfit.common.files import write_json
from policyfit.errors import ConfigError
from policyfit.pref.models import quiet_libraries, save_policy
from policyfit.pref.tasks import Task, get_task


@dataclass(frozen=True)
class Objective:
    """An objective: its trainer (``"trl-dpo"``, ``"trl-online-dpo"`` or one of
    :mod:`policyfit.pref.trainers`), its fixed settings, and a line of description."""

    name: str
    trainer: str
    summary: str
    settings: dict[str, Any] = field(default_factory=dict)


_OBJECTIVES = (
    Objective(
        "dpo",
        "trl-dpo",
        "DPO (Rafailov et al. 2023): trl.DPOTrainer loss_type=sigmoid",
        {"loss_type": ["sigmoid"]},
    ),
    Objective(
        "ipo",
        "trl-dpo",
        "IPO (Azar et al. 2023), per-token averaged: trl.DPOTrainer loss_type=ipo",
        {"loss_type": ["ipo"]},
    ),
    Objective(
        "rpo",
        "trl-dpo",
        "RPO: DPO + an SFT term on the chosen responses: "
        "trl.DPOTrainer loss_type=[sigmoid, sft], loss_weights=[1, rpo_alpha]",
        {"loss_type": ["sigmoid", "sft"]},
    ),
    Objective(
        "online-dpo",
        "trl-online-dpo",
        "online DPO (Guo et al. 2024): "
        "trl.experimental OnlineDPOTrainer, the task's reward as reward_funcs",
    ),
    Objective(
        "copg",
        "CoPGTrainer",
        "CoPG (Flet-Berliac et al. 2024): contrastive off-policy policy gradient on scored pairs",
    ),
    Objective(
        "c-rlft",
        "CRLFTTrainer",
        "C-RLFT (OpenChat): class-conditioned reward-weighted "
        "SFT, chosen = expert class, rejected = sub-optimal class",
    ),
    Objective(
        "superhf",
        "SuperHFTrainer",
        "SuperHF (Mukobi et al. 2023): best-of-n of own samples + SFT + KL prior",
    ),
    Objective(
        "hypo",
        "HyPOTrainer",
        "HyPO (Song et al. 2024): offline DPO + online reverse KL on own samples",
    ),
    Objective(
        "nash-md",
        "NashMDTrainer",
        "Nash-MD (Munos et al. 2023; TRL <= 1.13): own "
        "samples vs the geometric mixture with the reference",
    ),
    Objective(
        "drpo-rollin",
        "DRPORollinTrainer",
        "DR-PO (Chang et al. 2024): roll-ins from dataset prefixes, RLOO on the regularized reward",
    ),
    Objective(
        "dpo-ours",
        "PairDPOTrainer",
        "DPO on policyfit's trainer base (parity and speed against TRL only)",
    ),
)

#: Every objective by name.
OBJECTIVES: dict[str, Objective] = {o.name: o for o in _OBJECTIVES}

#: Per-task training defaults (learning rate, batch size) for the tiny models.
TRAIN_DEFAULTS: dict[str, dict[str, float]] = {
    "enumerable": {"learning_rate": 3e-3, "batch_size": 32},
    "unseen-response": {"learning_rate": 5e-3, "batch_size": 16},
    "token-bandit-aligned": {"learning_rate": 1e-3, "batch_size": 32},
    "token-bandit-unaligned": {"learning_rate": 1e-3, "batch_size": 32},
}

#: Batch size (prompts per step) of the online objectives, which sample several completions
#: per prompt: smaller than the pair batch so a step costs about the same.
ONLINE_BATCH = {"superhf": 4, "hypo": 16, "nash-md": 16, "drpo-rollin": 8, "online-dpo": 16}

SUMMARY_KEYS = (
    "expected_reward",
    "kl_policy_ref",
    "kl_ref_policy",
    "tv_to_optimum",
    "kl_policy_optimum",
    "kl_optimum_policy",
)


def check_objective(objective: str) -> str:
    """``objective`` lower-cased if known; a ConfigError listing the known ones otherwise."""
    name = str(objective).lower()
    if name not in OBJECTIVES:
        raise ConfigError(
            f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}",
            path="OBJECTIVE",
            field="objective",
        )
    return name


def _common(out_dir: str, *, steps: int, seed: int, lr: float, batch: int) -> dict[str, Any]:
    from policyfit.pref.trainers import CPU_DEFAULTS

    return {
        **CPU_DEFAULTS,
        "output_dir": out_dir,
        "learning_rate": lr,
        "per_device_train_batch_size": batch,
        "max_steps": steps,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": max(1, steps // 10),
    }


def _config(
    objective: str,
    out_dir: str,
    *,
    steps: int,
    seed: int,
    beta: float,
    lr: float,
    batch: int,
    options: dict[str, Any] | None = None,
):
    """The config dataclass of ``objective``'s trainer; ``options`` set its other fields."""
    spec = OBJECTIVES[objective]
    kwargs = {**_common(out_dir, steps=steps, seed=seed, lr=lr, batch=batch), "beta": beta}
    options = dict(options or {})
    if spec.trainer == "trl-dpo":
        from trl import DPOConfig

        kwargs.update(spec.settings, gradient_checkpointing=False, max_length=None)
        kwargs["dataset_num_proc"] = None
        if objective == "rpo":
            kwargs["loss_weights"] = [1.0, float(options.pop("rpo_alpha", 1.0))]
        cls = DPOConfig
    elif spec.trainer == "trl-online-dpo":
        from trl.experimental.online_dpo import OnlineDPOConfig

        kwargs.update(
            gradient_checkpointing=False,
            temperature=1.0,
            top_k=0,
            max_new_tokens=int(options.pop("max_new_tokens", 64)),
            max_length=32,
        )
        cls = OnlineDPOConfig
    else:
        from policyfit.pref import trainers

        cls = getattr(trainers, spec.trainer).config_class
    check_options(objective, options)
    return cls(**kwargs, **options)


def _config_class(objective: str):
    spec = OBJECTIVES[objective]
    if spec.trainer == "trl-dpo":
        from trl import DPOConfig

        return DPOConfig
    if spec.trainer == "trl-online-dpo":
        from trl.experimental.online_dpo import OnlineDPOConfig

        return OnlineDPOConfig
    from policyfit.pref import trainers

    return getattr(trainers, spec.trainer).config_class


def check_options(objective: str, options: dict[str, Any] | None) -> None:
    """A ConfigError naming the first of ``options`` that ``objective``'s config lacks."""
    extra = {"rpo_alpha"} if objective == "rpo" else set()
    if OBJECTIVES[objective].trainer == "trl-online-dpo":
        extra.add("max_new_tokens")
    known = set(getattr(_config_class(objective), "__dataclass_fields__", {})) | extra
    bad = sorted(set(options or {}) - known)
    if bad:
        raise ConfigError(f"{objective} has no setting {bad[0]!r}", path="--option", field=bad[0])


def make_trainer(
    objective: str,
    task: Task,
    policy,
    ref,
    data,
    *,
    steps,
    seed,
    beta,
    lr,
    batch,
    out_dir,
    options: dict[str, Any] | None = None,
):
    """The trainer for ``objective`` on ``data`` (``policy`` trained, ``ref`` frozen): TRL's
    ``DPOTrainer`` (dpo, ipo, rpo), TRL's experimental ``OnlineDPOTrainer`` (online-dpo), or
    one of :mod:`policyfit.pref.trainers`."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    spec = OBJECTIVES[objective]
    if spec.trainer == "trl-online-dpo":  # the task's completion length + EOS
        from policyfit.pref.rollouts import Sampler

        sampler = Sampler(task, ref.tokenizer)
        options = {
            "max_new_tokens": sampler.max_new + (sampler.restrict is not None),
            **(options or {}),
        }
    args = _config(
        objective, out_dir, steps=steps, seed=seed, beta=beta, lr=lr, batch=batch, options=options
    )
    quiet_libraries()
    if spec.trainer == "trl-dpo":
        from trl import DPOTrainer

        trainer = DPOTrainer(
            model=policy,
            ref_model=ref.model,
            args=args,
            train_dataset=data,
            processing_class=ref.tokenizer,
        )
    elif spec.trainer == "trl-online-dpo":
        from trl.experimental.online_dpo import OnlineDPOTrainer

        trainer = OnlineDPOTrainer(
            model=policy,
            ref_model=ref.model,
            reward_funcs=task_reward_function(task, ref.tokenizer),
            args=args,
            train_dataset=data.select_columns(["prompt"]),
            processing_class=ref.tokenizer,
        )
    else:
        from policyfit.pref import trainers

        cls = getattr(trainers, spec.trainer)
        trainer = cls(policy, ref.model, args, data, ref.tokenizer, task=task)
    trainer.remove_callback(PrinterCallback)  # the logs stay in trainer.state.log_history
    trainer.remove_callback(ProgressCallback)
    return trainer


def task_reward_function(task: Task, tokenizer):
    """The task's reward as a TRL reward function ``f(prompts, completions, completion_ids)``
    (TRL's online trainers call it with the generated token ids)."""
    from policyfit.pref.rollouts import Sampler

    sampler = Sampler(task, tokenizer)

    def task_reward(prompts, completions, completion_ids=None, **_):
        ids = completion_ids or sampler.completion_ids(completions)
        return [
            sampler.reward(p, list(c))
            for p, c in zip(sampler.prompt_ids(prompts), ids, strict=True)
        ]

    return task_reward


def train(
    objective: str,
    task: str | Task,
    steps: int = 100,
    seed: int = 0,
    beta: float | None = None,
    *,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    n_pairs: int | None = None,
    ref_seed: int = 0,
    out: str | Path | None = None,
    options: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``objective`` (one of :data:`OBJECTIVES`) on ``task`` for ``steps`` optimizer steps.

    Builds (or loads from the cache) the task's reference from ``ref_seed``, makes ``n_pairs``
    preference rows (default ``steps * batch_size``, one epoch; the online objectives read their
    prompts) from ``seed``, trains a copy of the reference with the objective's trainer (TRL's
    where TRL has it, :mod:`policyfit.pref.trainers` otherwise; ``options`` set fields of its
    config, e.g. ``{"rpo_alpha": 0.5}``, ``{"lam": 0.2}``), and returns the task's evaluation of the trained policy (expected
    reward, ``KL(pi || pi_ref)``, ``KL(pi_ref || pi)``, and where the task is exact the distances
    to ``pi*``: ``tv_to_optimum``, ``kl_policy_optimum``, ...), the same of the reference under
    ``"before"``, the trainer's last logged metrics under ``"trl_log"``, and the settings. With ``out``,
    the policy is saved there (``save_pretrained``) with ``summary.json``. ``before`` (the
    reference's evaluation from an earlier call with the same task, ``ref_seed``, ``seed`` and
    ``beta``) skips evaluating the reference again.
    """
    objective = check_objective(objective)
    task = get_task(task) if isinstance(task, str) else task
    check_options(objective, options)
    if steps < 1:
        raise ConfigError(f"need at least one step, got {steps}", path="--steps", field="steps")
    defaults = TRAIN_DEFAULTS.get(task.name, {"learning_rate": 1e-3, "batch_size": 32})
    beta = task.default_beta if beta is None else float(beta)
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}", path="--beta", field="beta")
    lr = float(learning_rate if learning_rate is not None else defaults["learning_rate"])
    if batch_size is None:
        batch_size = ONLINE_BATCH.get(objective, defaults["batch_size"])
    batch = int(batch_size)
    n_pairs = int(n_pairs if n_pairs is not None else steps * batch)
    started = time.perf_counter()
    ref = task.reference(ref_seed)
    policy = ref.copy().model
    data = task.make_dataset(n_pairs, seed=seed, ref=ref)
    if before is None:
        before = task.evaluate(ref.model, ref, beta=beta, seed=seed)
    with tempfile.TemporaryDirectory(prefix="policyfit-pref-") as tmp:
        trainer = make_trainer(
            objective,
            task,
            policy,
            ref,
            data,
            steps=steps,
            seed=seed,
            beta=beta,
            lr=lr,
            batch=batch,
            out_dir=tmp,
            options=options,
        )
        trainer_name = f"{type(trainer).__module__}.{type(trainer).__name__}"
        train_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - train_started
        logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    policy.eval()
    after = task.evaluate(policy, ref, beta=beta, seed=seed)
    result: dict[str, Any] = {
        "objective": objective,
        "task": task.name,
        "steps": steps,
        "seed": seed,
        "ref_seed": ref_seed,
        "beta": beta,
        "learning_rate": lr,
        "batch_size": batch,
        "n_pairs": n_pairs,
        **after,
        "before": before,
        "trl_log": logs[-1] if logs else {},
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - started,
        "trainer": trainer_name,
        "options": dict(options or {}),
    }
    if out is not None:
        path = save_policy(policy, ref.tokenizer, out)
        write_json(path / "summary.json", result)
    return result


def set_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` when ``n`` is given (tests and parallel runs use 1)."""
    if n:
        torch.set_num_threads(int(n))
