"""The discrete suite's recipes (Schweighofer et al. 2022) on CartPole, from the shipped DQN run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policyfit.envs import discrete_suite, dqn_behavior
from policyfit.envs.discrete_suite import KINDS, NAMES, make_dataset, parse_name
from policyfit.errors import PolicyfitError

SIZE = 3_000


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    import os

    old = os.environ.get("POLICYFIT_HOME")
    os.environ["POLICYFIT_HOME"] = str(tmp_path_factory.mktemp("pfhome"))
    yield
    if old is None:
        os.environ.pop("POLICYFIT_HOME")
    else:
        os.environ["POLICYFIT_HOME"] = old


@pytest.fixture(scope="module")
def cartpole(home):
    return {kind: make_dataset(f"cartpole-{kind}", size=SIZE, progress=False) for kind in KINDS}


def test_names():
    assert len(NAMES) == 8 * 5 and "breakout-replay" in NAMES and "cartpole-medium" not in NAMES
    with pytest.raises(PolicyfitError, match="cartpole-fancy: name: not a built-in discrete"):
        parse_name("cartpole-fancy")


def _greedy_actions(obs: np.ndarray) -> np.ndarray:
    import jax

    final = dqn_behavior.load_snapshots("cartpole")[-1]
    act = jax.jit(dqn_behavior.greedy_act_fn("cartpole"))
    return np.asarray(act(final, obs, jax.random.PRNGKey(0)))


def test_recipes(cartpole):
    """Each recipe's actions are what its definition says: random ~ uniform and independent of the
    greedy action; expert = greedy; noisy disagrees with greedy on ~0.2 * 1/2 of the steps; mixed
    is random for its first 80%, greedy for the rest; replay replays the snapshots in order."""
    agree = {
        k: float(np.mean(_greedy_actions(d.observations) == d.actions)) for k, d in cartpole.items()
    }
    assert agree["expert"] == 1.0
    assert 0.85 < agree["noisy"] < 0.95  # 1 - 0.2 * (1 - 1/2) = 0.9
    assert 0.4 < agree["random"] < 0.6
    mixed = cartpole["mixed"]
    cut = int(0.8 * SIZE)
    assert np.mean(_greedy_actions(mixed.observations[cut:]) == mixed.actions[cut:]) == 1.0
    assert 0.4 < np.mean(_greedy_actions(mixed.observations[:cut]) == mixed.actions[:cut]) < 0.6
    parts = cartpole["replay"].metadata["card"]["parts"]
    assert sum(p["transitions"] for p in parts) == SIZE
    assert [p["snapshot"] for p in parts] == sorted(p["snapshot"] for p in parts)
    # at 3% of the run's length the 32 warm-up steps round to 0: the epsilon decay comes first
    assert parts[0]["epsilon"] == pytest.approx(0.505) and parts[-1]["snapshot"] == 9
    assert [p["transitions"] for p in parts] == [30, 269, *[300] * 8, 301]  # floors; rest last
    for ds in cartpole.values():
        assert len(ds) == SIZE and ds.discrete and ds.env_id == "CartPole-v1"
        assert (
            ds.metadata["ref_max_score"]
            == dqn_behavior.behavior_record("cartpole")["online_best_return"]
        )


def test_expert_returns_match_its_record(cartpole):
    """The expert data's complete episodes score what the shipped record measured for the final
    greedy policy (within 15%), far above the random data's."""
    record = dqn_behavior.behavior_record("cartpole")
    expert = cartpole["expert"].metadata["card"]["data_returns"]["return_mean"]
    random_ = cartpole["random"].metadata["card"]["data_returns"]["return_mean"]
    assert expert == pytest.approx(record["final_greedy_return"], rel=0.15)
    assert random_ == pytest.approx(record["random_return"], rel=0.25)
    assert expert > 3 * random_


def test_deterministic_and_cached(cartpole, home):
    again = make_dataset("cartpole-replay", size=SIZE, progress=False)
    assert again.fingerprint() == cartpole["replay"].fingerprint()
    fresh, _ = discrete_suite.generate_arrays("cartpole-replay", SIZE, seed=0, progress=False)
    np.testing.assert_array_equal(fresh["actions"], cartpole["replay"].actions)
    other = make_dataset("cartpole-replay", size=SIZE, seed=1, progress=False)
    assert other.fingerprint() != again.fingerprint()


def test_inspect_tq_and_saco(cartpole, home, tmp_path):
    """`policyfit data inspect --full --json`: TQ on the paper's scale, SACo relative to the
    replay data of the same size and seed: 1 for replay itself, lower for expert than random."""
    from click.testing import CliRunner

    from policyfit.cli.main import cli

    out = {}
    for kind in ("replay", "expert", "random"):
        res = CliRunner().invoke(
            cli, ["data", "inspect", f"cartpole-{kind}", "--size", str(SIZE), "--full", "--json"]
        )
        assert res.exit_code == 0, res.output
        out[kind] = json.loads(res.output)
    diag = {k: v["diagnostics"] for k, v in out.items()}
    saco = {k: d["state_action_coverage"]["saco"] for k, d in diag.items()}
    tq = {k: d["trajectory_quality"]["value"] for k, d in diag.items()}
    assert saco["replay"] == pytest.approx(1.0)
    assert saco["expert"] < saco["random"]
    # the final greedy policy (return ~220) is below the run's best evaluation (500), as in the
    # paper, where expert TQ is often under 1
    assert tq["expert"] > 0.3
    assert abs(tq["random"]) < 0.1  # random data is the TQ scale's zero


def test_list_shows_both_suites():
    from policyfit.envs.datasets import list_datasets

    names = [row["name"] for row in list_datasets()]
    assert "hopper-medium" in names and "cartpole-replay" in names and "breakout-noisy" in names
    row = next(r for r in list_datasets() if r["name"] == "cartpole-expert")
    assert row["available"] and row["env_id"] == "CartPole-v1"
