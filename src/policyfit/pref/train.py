"""``train(objective, task, ...)``: fine-tune a task's reference on its preference data, measure.

The objectives TRL has run through TRL's own trainer: ``dpo`` and ``ipo`` are
``trl.DPOTrainer`` with ``loss_type=["sigmoid"]`` / ``["ipo"]`` (TRL 1.16.0). The model and the
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
from pathlib import Path
from typing import Any

import torch

from policyfit.common.files import write_json
from policyfit.errors import ConfigError
from policyfit.pref.models import quiet_libraries, save_policy
from policyfit.pref.tasks import Task, get_task

#: Objectives available now, with the TRL ``DPOConfig.loss_type`` that implements each.
OBJECTIVES: dict[str, list[str]] = {"dpo": ["sigmoid"], "ipo": ["ipo"]}

#: Per-task training defaults (learning rate, batch size) for the tiny models.
TRAIN_DEFAULTS: dict[str, dict[str, float]] = {
    "enumerable": {"learning_rate": 3e-3, "batch_size": 32},
    "unseen-response": {"learning_rate": 5e-3, "batch_size": 16},
    "token-bandit-aligned": {"learning_rate": 1e-3, "batch_size": 32},
    "token-bandit-unaligned": {"learning_rate": 1e-3, "batch_size": 32},
}

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
            f"unknown objective {objective!r}; available now: {', '.join(OBJECTIVES)}",
            path="OBJECTIVE",
            field="objective",
        )
    return name


def _config(
    objective: str, out_dir: str, *, steps: int, seed: int, beta: float, lr: float, batch: int
):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=out_dir,
        loss_type=OBJECTIVES[objective],
        beta=beta,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=batch,
        max_steps=steps,
        seed=seed,
        data_seed=seed,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        max_length=None,
    )


def make_trainer(
    objective: str, task: Task, policy, ref, data, *, steps, seed, beta, lr, batch, out_dir
):
    """The TRL trainer for ``objective`` on ``data`` (``policy`` trained, ``ref`` frozen)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import DPOTrainer

    args = _config(objective, out_dir, steps=steps, seed=seed, beta=beta, lr=lr, batch=batch)
    quiet_libraries()
    trainer = DPOTrainer(
        model=policy,
        ref_model=ref.model,
        args=args,
        train_dataset=data,
        processing_class=ref.tokenizer,
    )
    trainer.remove_callback(PrinterCallback)  # the logs stay in trainer.state.log_history
    trainer.remove_callback(ProgressCallback)
    return trainer


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
) -> dict[str, Any]:
    """Train ``objective`` (``dpo``, ``ipo``) on ``task`` for ``steps`` optimizer steps.

    Builds (or loads from the cache) the task's reference from ``ref_seed``, makes ``n_pairs``
    preference rows (default ``steps * batch_size``, one epoch) from ``seed``, trains a copy of
    the reference with TRL, and returns the task's evaluation of the trained policy (expected
    reward, ``KL(pi || pi_ref)``, ``KL(pi_ref || pi)``, and where the task is exact the distances
    to ``pi*``: ``tv_to_optimum``, ``kl_policy_optimum``, ...), the same of the reference under
    ``"before"``, TRL's last logged metrics under ``"trl_log"``, and the settings. With ``out``,
    the policy is saved there (``save_pretrained``) with ``summary.json``.
    """
    objective = check_objective(objective)
    task = get_task(task) if isinstance(task, str) else task
    if steps < 1:
        raise ConfigError(f"need at least one step, got {steps}", path="--steps", field="steps")
    defaults = TRAIN_DEFAULTS.get(task.name, {"learning_rate": 1e-3, "batch_size": 32})
    beta = task.default_beta if beta is None else float(beta)
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}", path="--beta", field="beta")
    lr = float(learning_rate if learning_rate is not None else defaults["learning_rate"])
    batch = int(batch_size if batch_size is not None else defaults["batch_size"])
    n_pairs = int(n_pairs if n_pairs is not None else steps * batch)
    started = time.perf_counter()
    ref = task.reference(ref_seed)
    policy = ref.copy().model
    data = task.make_dataset(n_pairs, seed=seed, ref=ref)
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
        )
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
        "trainer": f"trl.DPOTrainer loss_type={OBJECTIVES[objective]}",
    }
    if out is not None:
        path = save_policy(policy, ref.tokenizer, out)
        write_json(path / "summary.json", result)
    return result


def set_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` when ``n`` is given (tests and parallel runs use 1)."""
    if n:
        torch.set_num_threads(int(n))
