import json

import numpy as np
from rich.console import Console

from policyfit.diagnostics.card import TQ_HIGH, diagnose, verdict


def test_card_is_strict_json_and_renders(linear_ds):
    card = diagnose(linear_ds, reference=linear_ds)
    d = json.loads(json.dumps(card.to_dict(), allow_nan=False))
    assert set(d) >= {
        "trajectory_quality",
        "state_action_coverage",
        "action_consistency",
        "transition_diversity",
        "anomalies",
        "distributions",
        "dimensions",
        "verdict",
    }
    assert d["distributions"]["timeouts"] == 40 and d["distributions"]["terminals"] == 0
    assert len(d["dimensions"]["observations"]) == 4 and len(d["dimensions"]["actions"]) == 2
    console = Console(record=True, width=120)
    card.render(console)
    text = console.export_text()
    for needle in ("Verdict", "TQ (trajectory quality)", "SACo", "lSACo", "action consistency"):
        assert needle in text
    assert f"{card.tq['value']:.3f}" in text


def test_reference_auto_is_injectable_and_degrades_with_a_reason(linear_ds):
    calls = []

    def resolver(ds):
        calls.append(ds.env_id)
        return ds[: len(ds) // 2], "test:first-half"

    card = diagnose(linear_ds, reference="auto", reference_resolver=resolver)
    assert calls == ["LinearSystem-v0"]
    assert card.coverage["reference"] == "test:first-half" and card.coverage["saco"] > 1.0

    def missing(ds):
        raise LookupError("suite dataset linearsystem-medium-replay unavailable: not built")

    card = diagnose(linear_ds, reference="auto", reference_resolver=missing)
    assert card.coverage["saco"] is None
    assert "not built" in card.coverage["reason"]
    assert "coverage unknown" in card.verdict[0]


def test_auto_reference_needs_a_resolver_and_the_public_api_uses_the_suite(linear_ds):
    import policyfit
    from policyfit.data import Dataset
    from policyfit.envs.datasets import suite_reference

    no_env = Dataset(
        observations=linear_ds.observations,
        actions=linear_ds.actions,
        rewards=linear_ds.rewards,
        terminals=linear_ds.terminals,
        timeouts=linear_ds.timeouts,
    )
    # The diagnostics alone do not know where reference data live.
    card = diagnose(no_env)
    assert card.coverage["saco"] is None and "needs a reference_resolver" in card.coverage["reason"]
    # The suite's resolver (what the CLI and the report pass) explains why it has nothing.
    card = diagnose(no_env, reference_resolver=suite_reference)
    assert card.coverage["saco"] is None and "no env_id" in card.coverage["reason"]
    # policyfit.diagnose passes the suite's resolver by default.
    card = policyfit.diagnose(no_env)
    assert "no env_id" in card.coverage["reason"]
    card = policyfit.diagnose(linear_ds)
    assert "linearsystem-medium-replay" in card.coverage["reason"]


def test_verdict_follows_the_paper_quadrants(linear_ds):
    card = diagnose(linear_ds, reference=linear_ds)
    card.tq["value"], card.coverage["saco"] = TQ_HIGH + 0.1, 0.1
    assert "behavior cloning is likely to match offline RL" in verdict(card)[0]
    card.tq["value"], card.coverage["saco"] = 0.1, 0.9
    assert "offline RL" in verdict(card)[0] and "Low TQ, high coverage" in verdict(card)[0]
    card.tq["value"], card.coverage["saco"] = 0.1, 0.1
    assert "Low TQ and low coverage" in verdict(card)[0]
    assert np.isfinite(card.anomalies["fraction"])


def test_public_name_stays_callable_after_the_package_is_imported(linear_ds):
    import policyfit
    import policyfit.diagnostics.card

    assert policyfit.diagnose(linear_ds, reference=None).tq["value"] is not None
    from policyfit import diagnose as public

    assert public(linear_ds, reference=None).summary["transitions"] == len(linear_ds)
