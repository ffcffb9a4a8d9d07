"""Each loss against a value worked out by hand, and DPO/IPO against TRL's DPOTrainer."""

from __future__ import annotations

import math

import pytest
import torch

from policyfit.pref import losses


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


# pi(y_w) = -1, pi(y_l) = -3, rho(y_w) = rho(y_l) = -2: h_w = 1, h_l = -1, margin 2.
PAIR = (t(-1.0), t(-3.0), t(-2.0), t(-2.0))


def test_dpo_by_hand():
    # beta 0.5: -log sigma(0.5 * 2) = log(1 + e^-1)
    assert losses.dpo_loss(*PAIR, beta=0.5).item() == pytest.approx(math.log1p(math.exp(-1)))
    # a losing margin costs more: margin -2 -> log(1 + e)
    flipped = losses.dpo_loss(t(-3.0), t(-1.0), t(-2.0), t(-2.0), beta=0.5)
    assert flipped.item() == pytest.approx(math.log1p(math.e))


def test_ipo_sequence_and_per_token_by_hand():
    # sequence form, tau 0.5: (2 - 1/(2*0.5))^2 = 1
    assert losses.ipo_loss(*PAIR, beta=0.5).item() == pytest.approx(1.0)
    # TRL's form, |y_w| = 2, |y_l| = 4 tokens: h_w/2 - h_l/4 = 0.75 -> (0.75 - 1)^2
    per_token = losses.ipo_loss(*PAIR, beta=0.5, chosen_lengths=t(2.0), rejected_lengths=t(4.0))
    assert per_token.item() == pytest.approx(0.0625)
    # the same from averaged log-probs
    averaged = losses.ipo_loss(t(-0.5), t(-0.75), t(-1.0), t(-0.5), beta=0.5)
    assert averaged.item() == pytest.approx(0.0625)


def test_rpo_adds_eta_beta_nll_of_the_chosen():
    dpo = math.log1p(math.exp(-1))
    summed = losses.rpo_loss(*PAIR, beta=0.5, eta=0.1)  # + 0.1 * 0.5 * 1
    assert summed.item() == pytest.approx(dpo + 0.05)
    per_token = losses.rpo_loss(*PAIR, beta=0.5, eta=0.1, chosen_lengths=t(2.0))
    assert per_token.item() == pytest.approx(dpo + 0.025)


def test_copg_value_and_gradient_by_hand():
    logp, logp2 = t(-1.0).requires_grad_(), t(-3.0).requires_grad_()
    # h = 1, h' = -1, R = 2, R' = 0, beta 0.5: (0.5/2) * (2 - 2/0.5)^2 = 1
    loss = losses.copg_loss(logp, logp2, t(-2.0), t(-2.0), t(2.0), t(0.0), beta=0.5)
    assert loss.item() == pytest.approx(1.0)
    loss.sum().backward()
    # regularized rewards R - beta h: 1.5 and 0.5; descent direction = +(1.5 - 0.5) on log pi(y)
    assert logp.grad.item() == pytest.approx(-1.0)
    assert logp2.grad.item() == pytest.approx(1.0)


def test_copg_is_zero_exactly_at_pi_star_ratios():
    # h(y) - h(y') = (R - R') / beta at pi*: any pair, zero loss
    r, r2, beta = t(0.7), t(-0.2), 0.25
    h, h2 = r / beta - 3.0, r2 / beta - 3.0  # pi* = rho exp(R / beta) / Z, log Z = 3
    loss = losses.copg_loss(h, h2, t(0.0), t(0.0), r, r2, beta=beta)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_c_rlft_by_hand():
    w = losses.c_rlft_weights(t(1.0, 0.1), beta=0.5)
    assert w.tolist() == pytest.approx([math.exp(2.0), math.exp(0.2)])
    assert losses.c_rlft_weights(t(1.0, 0.1)).tolist() == pytest.approx([1.0, 0.1])
    loss = losses.c_rlft_loss(t(-2.0, -4.0), t(1.0, 0.1), lengths=t(2.0, 4.0))
    assert loss.tolist() == pytest.approx([1.0, 0.1])


def test_superhf_by_hand():
    # -(-3)/3 + 0.35 * 0.2; a negative KL estimate is clipped to 0
    loss = losses.superhf_loss(t(-3.0, -3.0), t(3.0, 3.0), t(0.2, -0.5), kl_coefficient=0.35)
    assert loss.tolist() == pytest.approx([1.07, 1.0])
    assert losses.best_of_n_indices(t(0.1, 0.9, 0.5).reshape(1, 3)).tolist() == [[1]]


def test_superhf_kl_by_hand():
    # policy uniform over 2 tokens, reference (3/4, 1/4) at the one unmasked position
    policy = torch.zeros(1, 2, 2, dtype=torch.float64)
    ref = torch.log(t(0.75, 0.25)).expand(1, 2, 2).clone()
    ref[0, 1] = 0.0  # masked position: must not count
    kl = losses.superhf_kl(policy, ref, t(1.0, 0.0).reshape(1, 2))
    assert kl.item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))


def test_rloo_kl_gradient_by_hand():
    logp = t(-1.0, -2.0).reshape(1, 2).requires_grad_()
    ref = t(-2.0, -5.0).reshape(1, 2)  # l = (1, 3): advantages (1 - 3, 3 - 1) = (-2, 2)
    losses.rloo_kl_surrogate(logp, ref).sum().backward()
    assert logp.grad[0].tolist() == pytest.approx([-1.0, 1.0])
    with pytest.raises(ValueError, match="k >= 2"):
        losses.rloo_kl_surrogate(logp[:, :1], ref[:, :1])


def test_hypo_is_dpo_plus_lambda_kl_surrogate():
    online, online_ref = t(-1.0, -2.0).reshape(1, 2), t(-2.0, -5.0).reshape(1, 2)
    # surrogate value: mean(-2 * -1, 2 * -2) = -1
    value = losses.hypo_loss(*PAIR, online, online_ref, beta=0.5, lam=0.1)
    assert value.item() == pytest.approx(math.log1p(math.exp(-1)) - 0.1)


def test_nash_md_pieces_by_hand():
    mix = losses.nash_md_mixture_logits(torch.zeros(2), torch.log(t(0.75, 0.25)), 0.5)
    # geometric mean of (1/2, 1/2) and (3/4, 1/4), renormalized: ratio sqrt(3)
    assert torch.exp(mix).tolist() == pytest.approx(
        [math.sqrt(3) / (1 + math.sqrt(3)), 1 / (1 + math.sqrt(3))]
    )
    # beta * (0.5 * -1 + 0 * -2) - (0.8 - 0.5) * (-3) = -0.05 + 0.9
    loss = losses.nash_md_loss(
        t(-1.0, -2.0).reshape(1, 2),
        t(-1.5, -2.0).reshape(1, 2),
        t(1.0, 1.0).reshape(1, 2),
        t(0.8),
        beta=0.1,
    )
    assert loss.item() == pytest.approx(0.85)


# --------------------------------------------------------------------------- parity with TRL


def _trainer(loss_type, ref, policy, beta):
    from policyfit.pref.tasks import get_task
    from policyfit.pref.train import make_trainer

    task = get_task("enumerable")
    data = task.make_dataset(16, seed=3, ref=ref)
    objective = {"sigmoid": "dpo", "ipo": "ipo"}[loss_type]
    return make_trainer(
        objective,
        task,
        policy,
        ref,
        data,
        steps=1,
        seed=0,
        beta=beta,
        lr=1e-3,
        batch=8,
        out_dir="unused-out",
    )


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_and_ipo_equal_trls_loss_on_the_same_batch(
    loss_type, enumerable_ref, tmp_path, monkeypatch
):
    from policyfit.pref.models import completion_logps

    monkeypatch.chdir(tmp_path)
    policy = enumerable_ref.copy().model
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a policy that differs from the reference
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    beta = 0.3
    trainer = _trainer(loss_type, enumerable_ref, policy, beta)
    batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer.compute_loss(trainer.model, batch).item()

    ids, attn, comp = batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
    with torch.no_grad():
        pol, n_tokens = completion_logps(policy, ids, attn, comp)
        ref, _ = completion_logps(enumerable_ref.model, ids, attn, comp)
    pc, pr = pol.chunk(2)
    rc, rr = ref.chunk(2)
    if loss_type == "sigmoid":
        ours = losses.dpo_loss(pc, pr, rc, rr, beta=beta).mean().item()
    else:
        lc, lr = n_tokens.chunk(2)
        ours = losses.ipo_loss(pc, pr, rc, rr, beta=beta, chosen_lengths=lc, rejected_lengths=lr)
        ours = ours.mean().item()
    assert abs(ours - trl_loss) < 1e-5, (ours, trl_loss)
    # and the batch is a real one: TRL's value is not the trivial one of pi = rho
    assert abs(trl_loss - (math.log(2) if loss_type == "sigmoid" else 1 / (4 * beta**2))) > 1e-3


def test_a_copy_of_a_reference_a_trainer_touched_runs_its_own_weights(
    enumerable_ref, tmp_path, monkeypatch
):
    """TRL patches ``forward`` with a closure over the original model; ``Reference.copy`` must
    not inherit it (a plain deepcopy would evaluate the original's weights)."""
    from policyfit.pref.models import completion_logps

    monkeypatch.chdir(tmp_path)
    touched = enumerable_ref.copy()
    _trainer("sigmoid", touched, touched.copy().model, 0.3)  # patches touched.model.forward
    assert "forward" in vars(touched.model)
    clone = touched.copy().model
    with torch.no_grad():
        for p in clone.parameters():
            p.mul_(0.0)  # a uniform policy: log pi(y) = -|y| log V
    ids = torch.tensor([[1, 4, 2]])
    with torch.no_grad():
        logp, _ = completion_logps(clone, ids, torch.ones_like(ids), torch.tensor([[0, 1, 1]]))
    assert logp.item() == pytest.approx(-2 * math.log(len(touched.tokenizer)), abs=1e-5)
