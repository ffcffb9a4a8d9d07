"""The report's bandit sections: logged feedback and a generations result."""

import numpy as np

from policyfit.bandit.feedback import BanditFeedback, save_feedback
from policyfit.bandit.simulate import PaymentEnv, simulate
from policyfit.common.files import atomic_write_text, dumps
from policyfit.report import write_report
from policyfit.report.bandit import feedback_summary


def test_feedback_and_generations_sections(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    action = rng.integers(0, 3, n)  # action 3 of 4 is never logged
    fb = BanditFeedback(
        context=rng.normal(size=(n, 2)),
        action=action,
        reward=(action == 1).astype(float),
        pscore=np.where(action == 0, 0.5, 0.25),
        n_actions=4,
    )
    logs = save_feedback(fb, tmp_path / "logs.npz")
    summary = feedback_summary(fb)
    assert summary["actions_never_logged"] == [3]
    assert summary["pscore_min"] == 0.25 and summary["max_importance_weight"] == 4.0
    assert summary["per_action"][1]["reward_mean"] == 1.0
    sim = simulate(PaymentEnv(), ["naive"], generations=2, rounds=300, seeds=[0], progress=False)
    gen = atomic_write_text(tmp_path / "generations.json", dumps(sim))
    html = write_report([logs, gen], tmp_path / "r.html").read_text()
    assert "<h2>Bandit logs: " in html and "Bandit generations: 2 x 300 decisions" in html
    assert "Actions 3 were never logged" in html
    assert html.count('<img class="plot"') == 3
