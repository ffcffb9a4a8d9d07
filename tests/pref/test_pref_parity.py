"""Our trainer base against TRL's DPOTrainer: the same DPO trajectory, step by step."""

from __future__ import annotations

import pytest

from policyfit.pref.tasks import get_task
from policyfit.pref.train import make_trainer

STEPS = 4


def _losses(objective, ref, data, tmp_path):
    policy = ref.copy().model
    trainer = make_trainer(
        objective,
        get_task("enumerable"),
        policy,
        ref,
        data,
        steps=STEPS,
        seed=0,
        beta=0.5,
        lr=3e-3,
        batch=8,
        out_dir=str(tmp_path / objective),
    )
    trainer.args.logging_steps = 1
    seen = []  # the unrounded loss of every step (the Trainer logs it rounded to 4 digits)
    compute = trainer.compute_loss

    def recording(*args, **kwargs):
        out = compute(*args, **kwargs)
        seen.append(float((out[0] if isinstance(out, tuple) else out).detach()))
        return out

    trainer.compute_loss = recording
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    return seen, [e["rewards/margins"] for e in logs]


def test_our_base_follows_trls_dpo_trajectory(enumerable_ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = get_task("enumerable").make_dataset(64, seed=5, ref=enumerable_ref)
    trl_loss, trl_margin = _losses("dpo", enumerable_ref, data, tmp_path)
    our_loss, our_margin = _losses("dpo-ours", enumerable_ref, data, tmp_path)
    assert len(trl_loss) == len(our_loss) == len(our_margin) == STEPS
    # the trajectory moves (later steps see updated weights), and both follow it
    assert abs(trl_loss[-1] - trl_loss[0]) > 1e-3
    assert our_loss == pytest.approx(trl_loss, abs=1e-5)
    assert our_margin == pytest.approx(trl_margin, abs=1e-5)
