"""The built-in suite: names, recipes, determinism, the card, Minari interop, policy ordering."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.envs import shipped, suite
from policyfit.errors import PolicyfitError
from policyfit.training.behavior import evaluate_actor

HAS_HOPPER = "Hopper-v5" in shipped.policies_index()
needs_hopper = pytest.mark.skipif(not HAS_HOPPER, reason="no Hopper behavior policies shipped")


def test_fifteen_names():
    assert len(suite.SUITE_NAMES) == 15
    for env in ("hopper", "halfcheetah", "walker2d"):
        for kind in ("random", "medium", "expert", "medium-replay", "medium-expert"):
            assert suite.is_suite_name(f"{env}-{kind}")
    assert suite.is_suite_name("Hopper-Medium")
    assert not suite.is_suite_name("hopper-v5") and not suite.is_suite_name("ant-medium")
    assert suite.parse_name("walker2d-medium-replay") == ("Walker2d-v5", "medium-replay")
    with pytest.raises(PolicyfitError, match="built-in names"):
        suite.parse_name("hopper-mediums")


def test_medium_replay_plan_follows_training_order_and_size():
    entry = {
        "start_steps": 5_000,
        "medium_replay_size": 40_000,
        "medium_replay": [{"step": 0}, {"step": 10_000}, {"step": 20_000}, {"step": 30_000}],
    }
    plan = suite._medium_replay_plan(entry, 40_000)
    # warm-up (uniform), then snapshot 0 acts from 5k to 10k, each later one for 10k steps
    assert [(rec and rec["step"], n) for rec, n in plan] == [
        (None, 5_000),
        (0, 5_000),
        (10_000, 10_000),
        (20_000, 10_000),
        (30_000, 10_000),
    ]
    scaled = suite._medium_replay_plan(entry, 1_000)
    assert sum(n for _, n in scaled) == 1_000
    assert [rec and rec["step"] for rec, _ in scaled] == [None, 0, 10_000, 20_000, 30_000]


def test_list_datasets_has_every_name():
    rows = suite.list_datasets()
    assert [r["name"] for r in rows] == list(suite.SUITE_NAMES)
    sizes = {r["name"]: r["size"] for r in rows}
    assert sizes["walker2d-medium-expert"] == 2_000_000 and sizes["hopper-expert"] == 1_000_000
    for row in rows:
        assert set(row) >= {"name", "cached", "size", "behavior_normalized_score", "path"}


@needs_hopper
def test_same_name_size_seed_same_fingerprint_and_card(tmp_path):
    a = suite.make_dataset(
        "hopper-medium-expert", size=600, seed=3, out=tmp_path / "a", progress=False
    )
    b = suite.make_dataset(
        "hopper-medium-expert", size=600, seed=3, out=tmp_path / "b", progress=False
    )
    c = suite.make_dataset(
        "hopper-medium-expert", size=600, seed=4, out=tmp_path / "c", progress=False
    )
    assert len(a) == 600 and a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.timeouts[-1] or a.terminals[-1]
    assert a.episode_lengths.max() <= 1000
    medium = suite.make_dataset("hopper-medium", size=300, seed=3, progress=False)
    np.testing.assert_array_equal(a.observations[:300], medium.observations)  # medium + expert

    md = a.metadata
    assert md["env_id"] == "Hopper-v5"
    assert (md["ref_min_score"], md["ref_max_score"]) == (-20.272305, 3234.3)
    assert md["observation_space"]["type"] == "box" and len(md["action_space"]["low"]) == 3
    card = md["card"]
    assert (
        card["generating_command"] == "policyfit data make hopper-medium-expert --size 600 --seed 3"
    )
    assert card["size"] == 600 and card["seed"] == 3
    assert [p["policy"] for p in card["parts"]] == ["medium", "expert"]
    assert set(card["behavior_normalized_score"]) == {"medium", "expert"}
    assert {"jax", "mujoco", "gymnasium", "minari"} <= set(card["library_versions"])
    differences = " ".join(card["differences_from_d4rl"])
    assert "-v5" in differences and "-v2" in differences and "snapshots" in differences


@needs_hopper
def test_written_dataset_is_read_by_minari_and_cached(tmp_path, monkeypatch):
    import minari

    monkeypatch.setenv("POLICYFIT_HOME", str(tmp_path / "home"))
    ds = suite.make_dataset("hopper-random", size=500, progress=False)
    path = suite._cache_path("hopper-random", 500, 0)
    mds = minari.MinariDataset(path / "data")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "home" / "datasets"))
    assert minari.load_dataset(suite.minari_dataset_id("hopper-random", 500, 0)).total_steps == 500
    assert mds.total_steps == 500 and mds.total_episodes == ds.num_episodes
    first = next(iter(mds.iterate_episodes()))
    np.testing.assert_allclose(first.actions, ds.actions[: len(first.actions)])

    def fail(*args, **kwargs):
        raise AssertionError("the cached dataset should have been reused")

    monkeypatch.setattr(suite, "generate_arrays", fail)
    again = suite.make_dataset("hopper-random", size=500, progress=False)
    assert again.fingerprint() == ds.fingerprint()
    row = {r["name"]: r for r in suite.list_datasets()}["hopper-random"]
    assert row["behavior_normalized_score"] is not None


@needs_hopper
def test_expert_beats_medium_beats_random_on_short_rollouts():
    returns = {}
    for kind in ("random", "medium", "expert"):
        policy = shipped.load_behavior_policy("hopper", kind)
        returns[kind] = evaluate_actor("Hopper-v5", policy, episodes=2).mean()
        assert policy.normalized_score is not None
    assert returns["expert"] > returns["medium"] > returns["random"], returns


def test_shipped_policy_files_match_the_index():
    """Every weight file named in policies.json exists, matches its sha256 and has a score;
    nothing unlisted is shipped (pickle-free msgpack only)."""
    import hashlib

    index = shipped.policies_index()
    listed = set()
    for env_id, entry in index.items():
        assert set(entry["policies"]) == {"random", "medium", "expert"}, env_id
        for rec in [*entry["policies"].values(), *entry["medium_replay"]]:
            data = (shipped.POLICIES_DIR / rec["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == rec["sha256"], rec["file"]
            assert np.isfinite(rec["normalized_score"])
            listed.add(rec["file"])
        steps = [r["step"] for r in entry["medium_replay"]]
        assert steps == sorted(steps) and steps[-1] < entry["medium_replay_size"]
        assert entry["policies"]["medium"]["step"] == entry["medium_replay_size"]
    files = {p.name for p in shipped.POLICIES_DIR.glob("*") if p.is_file()}
    assert {name for name in files if not name.endswith(".json")} == listed
