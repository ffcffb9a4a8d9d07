"""BanditFeedback: validation messages, npz and OBP-dict round trips, one-step Dataset conversion."""

from __future__ import annotations

import numpy as np
import pytest

from policyfit.bandit.feedback import (
    BanditFeedback,
    from_dataset,
    load_feedback,
    save_feedback,
)
from policyfit.data import Dataset
from policyfit.data.io import load_dataset, save_dataset
from policyfit.errors import DatasetError


def fields(**changes):
    base = {
        "context": np.arange(8.0).reshape(4, 2),
        "action": np.array([0, 2, 1, 2]),
        "reward": np.array([1.0, 0.0, 0.5, 1.0]),
        "pscore": np.array([0.5, 0.25, 0.25, 0.25]),
        "n_actions": 3,
    }
    base.update(changes)
    return base


def message(**changes) -> str:
    with pytest.raises(DatasetError) as info:
        BanditFeedback(**fields(**changes), source="logs.npz")
    return str(info.value)


def test_defaults_fill_position_action_context_and_counts():
    fb = BanditFeedback(**fields())
    assert fb.n_rounds == 4 and len(fb) == 4 and fb.n_actions == 3 and fb.len_list == 1
    assert fb.position.tolist() == [0, 0, 0, 0] and fb.position.dtype == np.int64
    assert fb.action_context.tolist() == np.eye(3).tolist()
    assert fb.context.dtype == np.float64 and fb.action.dtype == np.int64
    # n_actions inferred from the largest logged action when nothing else says it
    assert BanditFeedback(**{**fields(), "n_actions": None}).n_actions == 3
    assert (
        BanditFeedback(
            **{**fields(), "n_actions": None, "action_context": np.ones((5, 2))}
        ).n_actions
        == 5
    )


def test_arrays_are_read_only_and_the_callers_array_stays_writable():
    ctx = np.zeros((4, 2))
    fb = BanditFeedback(**fields(context=ctx))
    with pytest.raises(ValueError):
        fb.context[0, 0] = 1.0
    ctx[0, 0] = 2.0  # the caller's array is not frozen
    with pytest.raises(AttributeError):
        fb.n_actions = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"pscore": [0.5, 0.0, 0.25, 0.25]},
            "logs.npz: pscore: 1 values outside (0, 1] (first at round 1: 0); pscore is the "
            "logger's probability of the logged action",
        ),
        ({"pscore": [0.5, 1.5, 0.25, 0.25]}, "logs.npz: pscore: 1 values outside (0, 1]"),
        (
            {"action": [0, 3, 1, 2]},
            "logs.npz: action: 1 values outside [0, 3) (first at round 1: 3)",
        ),
        ({"action": [0, -1, 1, 2]}, "logs.npz: action: 1 values outside [0, 3)"),
        ({"action": [0.0, 1.5, 1.0, 2.0]}, "logs.npz: action: holds values that are not whole"),
        ({"action": [[0, 1], [1, 1]]}, "logs.npz: action: has shape (2, 2); expected [n]"),
        ({"action": ["a", "b", "c", "d"]}, "logs.npz: action: has dtype <U1 but must be integers"),
        (
            {"reward": [1.0, np.nan, 0.0, np.inf]},
            "logs.npz: reward: contains 2 NaN or infinite values (first at round 1)",
        ),
        ({"reward": [1.0, 0.0]}, "logs.npz: reward: has 2 rows but action has 4"),
        ({"context": np.zeros((3, 2))}, "logs.npz: context: has 3 rows but action has 4"),
        ({"context": np.zeros((4, 2, 2))}, "logs.npz: context: has shape (4, 2, 2)"),
        ({"n_rounds": 5}, "logs.npz: n_rounds: is 5 but action has 4 rows; they must agree"),
        ({"n_actions": 0}, "logs.npz: n_actions: must be at least 1, got 0"),
        ({"n_actions": 2.5}, "logs.npz: n_actions: must be a whole number, got 2.5"),
        ({"position": [0, -1, 0, 0]}, "logs.npz: position: 1 values outside [0, 2**31)"),
        ({"position": [0, 0]}, "logs.npz: position: has 2 rows but action has 4"),
        (
            {"action_context": np.eye(4)},
            "logs.npz: action_context: has 4 rows but n_actions is 3; one row per action",
        ),
        (
            {"expected_reward": np.zeros((4, 2))},
            "logs.npz: expected_reward: has shape (4, 2); expected [n, n_actions] = [4, 3]",
        ),
        ({"pscore": None}, "logs.npz: pscore: is missing; bandit feedback needs context, action"),
        ({"action": []}, "logs.npz: action: the feedback is empty (0 rounds)"),
    ],
)
def test_each_problem_is_one_line_naming_file_and_field(changes, expected):
    text = message(**changes)
    assert text.startswith(expected), text
    assert "\n" not in text


def pi_b_for(action, pscore, k=3):
    pi = np.zeros((len(action), k, 1))
    for i, (a, p) in enumerate(zip(action, pscore, strict=True)):
        pi[i, :, 0] = (1 - p) / (k - 1)
        pi[i, a, 0] = p
    return pi


def test_pi_b_is_checked_against_shape_sums_positions_and_pscore():
    base = fields()
    good = pi_b_for(base["action"], base["pscore"])
    assert BanditFeedback(**fields(pi_b=good)).len_list == 1
    bad_sum = good.copy()
    bad_sum[2, 0, 0] += 0.1
    assert "pi_b: must sum to 1 over the actions in every round and slot (first bad at round 2" in (
        message(pi_b=bad_sum)
    )
    assert "pi_b: has shape (4, 2, 1)" in message(pi_b=good[:, :2])
    assert "position: holds 1 but pi_b has 1 slots" in message(pi_b=good, position=[0, 1, 0, 0])
    swapped = pi_b_for(base["action"], [0.5, 0.5, 0.25, 0.25])
    assert (
        "pi_b: disagrees with pscore at 1 rounds (first at round 1: pi_b[1, 2, 0] = 0.5, "
        "pscore = 0.25)" in message(pi_b=swapped)
    )


def test_npz_round_trip_keeps_every_value(tmp_path):
    base = fields()
    fb = BanditFeedback(
        **fields(
            position=[0, 0, 0, 0],
            expected_reward=np.linspace(0, 1, 12).reshape(4, 3),
            pi_b=pi_b_for(base["action"], base["pscore"]),
            action_context=np.arange(6.0).reshape(3, 2),
        )
    )
    path = save_feedback(fb, tmp_path / "logs.npz")
    with np.load(path) as z:
        assert sorted(z.files) == sorted(
            [
                "n_rounds",
                "n_actions",
                "context",
                "action_context",
                "action",
                "position",
                "reward",
                "expected_reward",
                "pi_b",
                "pscore",
            ]
        )
        assert z["n_rounds"].shape == () and int(z["n_actions"]) == 3
    back = load_feedback(path)
    assert back.source == str(path)
    for name in ("context", "action", "reward", "pscore", "position", "action_context", "pi_b"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fb, name))
    np.testing.assert_array_equal(back.expected_reward, fb.expected_reward)


def test_plain_npz_as_import_log_writes_it_loads(tmp_path):
    """What ``policyfit data import-log --format bandit`` writes: OBP keys, plain numpy."""
    path = tmp_path / "log.npz"
    np.savez(
        path,
        n_rounds=np.int64(3),
        n_actions=np.int64(2),
        context=np.zeros((3, 4), dtype=np.float32),
        action=np.array([1, 0, 1], dtype=np.int32),
        reward=np.array([1, 0, 1], dtype=np.int64),
        pscore=np.array([0.9, 0.1, 0.9], dtype=np.float32),
        position=np.zeros(3, dtype=np.int64),
        action_context=np.eye(2),
    )
    fb = load_feedback(path)
    assert fb.n_rounds == 3 and fb.reward.tolist() == [1.0, 0.0, 1.0]
    assert fb.pscore.dtype == np.float64


def test_obp_dict_round_trip_and_none_position():
    obp = {**fields(), "position": None, "n_rounds": 4, "extra_key": "ignored"}
    fb = load_feedback(obp)
    assert fb.position.tolist() == [0, 0, 0, 0] and fb.source == "<dict>"
    out = fb.to_obp_dict()
    assert set(out) == {
        "n_rounds",
        "n_actions",
        "context",
        "action_context",
        "action",
        "position",
        "reward",
        "pscore",
    }
    out["reward"][0] = 9.0  # a writable copy, not the frozen array
    assert fb.reward[0] == 1.0
    assert BanditFeedback.from_obp_dict(out).reward[0] == 9.0


def test_bad_paths_and_files_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere.npz: path: no such file"):
        load_feedback(tmp_path / "nowhere.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello world")
    with pytest.raises(DatasetError, match=r"junk.npz: file: not an .npz file"):
        load_feedback(junk)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled, context=np.array([{"a": 1}], dtype=object), action=[0], reward=[0], pscore=[1]
    )
    with pytest.raises(DatasetError, match=r"pickled.npz: file: holds Python objects"):
        load_feedback(pickled)
    missing = tmp_path / "missing.npz"
    np.savez(missing, context=np.zeros((2, 1)), action=[0, 1], reward=[0, 1])
    with pytest.raises(DatasetError, match=r"missing.npz: pscore: is missing"):
        load_feedback(missing)
    with pytest.raises(DatasetError, match=r"feedback: expected a BanditFeedback"):
        load_feedback(3)  # type: ignore[arg-type]


def test_dataset_round_trip_through_a_file(tmp_path):
    base = fields()
    fb = BanditFeedback(
        **fields(pi_b=pi_b_for(base["action"], base["pscore"]), action_context=np.ones((3, 2)))
    )
    ds = fb.to_dataset()
    assert ds.num_episodes == 4 and ds.discrete and ds.action_dim == 3
    path = save_dataset(ds, tmp_path / "one_step.npz")
    back = from_dataset(load_dataset(path))
    assert back.action.tolist() == [0, 2, 1, 2] and back.n_actions == 3
    np.testing.assert_allclose(back.pscore, fb.pscore)
    np.testing.assert_allclose(back.reward, fb.reward)
    np.testing.assert_allclose(back.context, fb.context)
    np.testing.assert_array_equal(back.action_context, np.ones((3, 2)))
    np.testing.assert_allclose(back.pi_b, fb.pi_b)


def test_from_dataset_needs_one_step_discrete_data_and_pscores():
    obs = np.zeros((3, 2))
    one_step = Dataset(
        observations=obs, actions=np.array([0, 1, 1]), rewards=np.ones(3), terminals=np.ones(3)
    )
    fb = from_dataset(one_step, pscore=[0.5, 0.5, 0.5], n_actions=2)
    assert fb.n_actions == 2 and fb.reward.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(DatasetError, match=r"pscore: not given and the dataset has no extra array"):
        from_dataset(one_step)
    with pytest.raises(DatasetError, match=r"pscore: the dataset has no extra array named 'p'"):
        from_dataset(one_step, pscore="p")
    episodic = Dataset(
        observations=obs, actions=np.array([0, 1, 1]), rewards=np.ones(3), terminals=[0, 0, 1]
    )
    with pytest.raises(DatasetError, match=r"terminals: not a one-step dataset: transition 0"):
        from_dataset(episodic, pscore=[1, 1, 1])
    continuous = Dataset(
        observations=obs, actions=np.zeros((3, 1)), rewards=np.ones(3), terminals=np.ones(3)
    )
    with pytest.raises(DatasetError, match=r"actions: bandit feedback needs discrete actions"):
        from_dataset(continuous, pscore=[1, 1, 1])
