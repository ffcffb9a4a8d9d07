"""policyfit data import-log: decision logs + rewards -> a Dataset or bandit feedback, exactly."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from click.testing import CliRunner

import policyfit
from policyfit.cli.main import cli
from policyfit.errors import DatasetError
from policyfit.serving.decision_log import DecisionLog, encode_records
from policyfit.serving.import_log import BANDIT_KEYS, import_log

DISCRETE = {"algorithm": "t", "observation_dim": 2, "action_space": {"type": "discrete", "n": 3}}

# (request_id, rows of (obs, action, propensity, episode_id, step))
REQUESTS = [
    ("r1", [([1, 0], 0, 0.5, None, None)]),
    ("r2", [([2, 0], 1, 0.25, "A", 1), ([3, 0], 2, 0.75, "A", 0)]),  # steps out of order
    ("r3", [([4, 0], 0, 1.0, "A", 2)]),
    ("r4", [([5, 0], 1, 0.5, "A", 3)]),  # no reward: dropped, cuts episode A
    ("r5", [([6, 0], 1, 0.5, "A", 4)]),
    ("r6", [([9, 9], 2, 0.5, None, None)]),  # no reward: dropped
    ("r7", [([7, 0], 2, 0.3, "B", 0)]),
    ("r8", [([8, 0], 0, 0.2, "B", 2)]),  # step 1 never logged: B is cut after step 0
]
REWARDS_CSV = """request_id,index,reward,terminal
r1,,1.0,
r2,0,0.5,
r2,1,0.25,false
r3,0,0.125,
r5,,2,1
r7,0,3,
r8,0,4,
zz,0,9,
"""


def write_requests(directory, requests, header=DISCRETE, torn: bytes = b""):
    log = DecisionLog(directory, header)

    async def main():
        for request_id, rows in requests:
            obs, actions, props, episodes, steps = (list(c) for c in zip(*rows, strict=True))
            await log.append(
                encode_records(request_id, 1.0, obs, actions, props, "fp", "x", episodes, steps)
            )

    asyncio.run(main())
    log.close()
    if torn:
        with open(log.path, "ab") as fh:
            fh.write(torn)
    return log.path


def test_import_to_a_dataset_builds_episodes_exactly(tmp_path):
    write_requests(tmp_path / "logs", REQUESTS, torn=b'{"request_id": "r9", "ind')
    (tmp_path / "rewards.csv").write_text(REWARDS_CSV)
    summary = import_log(tmp_path / "logs", tmp_path / "rewards.csv", tmp_path / "d.npz")
    assert summary == {
        "format": "dataset",
        "out": str(tmp_path / "d.npz"),
        "log_files": 1,
        "torn_lines": 1,
        "decisions": 9,
        "with_reward": 7,
        "dropped_without_reward": 2,
        "rewards": 8,
        "rewards_unmatched": 1,
        "policies": 1,
        "transitions": 7,
        "episodes": 5,
        "unknown_next_observations": 2,
    }
    ds = policyfit.load_dataset(tmp_path / "d.npz")
    # r1 | A steps 0, 1, 2 (cut: step 3 has no reward) | A step 4 | B step 0 (cut) | B step 2
    assert ds.observations[:, 0].tolist() == [1, 3, 2, 4, 6, 7, 8]
    assert ds.next_observations[:, 0].tolist() == [1, 2, 4, 5, 6, 7, 8]
    assert ds.actions.tolist() == [0, 2, 1, 0, 1, 2, 0]
    assert ds.rewards.tolist() == [1.0, 0.25, 0.5, 0.125, 2.0, 3.0, 4.0]
    assert ds.terminals.tolist() == [True, False, False, False, True, False, False]
    assert ds.timeouts.tolist() == [False, False, False, True, False, True, True]
    assert ds.metadata["extra_arrays"]["propensities"].tolist() == [
        0.5, 0.75, 0.25, 1.0, 0.5, 0.3, 0.2
    ]  # fmt: skip
    assert ds.metadata["action_space"] == {"type": "discrete", "n": 3}
    assert ds.metadata["card"]["policies"] == ["fp"]


def test_import_to_bandit_feedback_has_obps_keys_and_exact_values(tmp_path):
    write_requests(tmp_path / "logs", REQUESTS)
    rows = []
    for line in REWARDS_CSV.splitlines()[1:]:
        rid, index, reward, terminal = line.split(",")
        row = {"request_id": rid, "reward": float(reward)}
        if index:
            row["index"] = int(index)
        rows.append(row)
    (tmp_path / "rewards.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = import_log(
        tmp_path / "logs", tmp_path / "rewards.jsonl", tmp_path / "fb.npz", fmt="bandit"
    )
    assert (summary["rounds"], summary["n_actions"], summary["rewards_unmatched"]) == (7, 3, 1)
    with np.load(tmp_path / "fb.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(BANDIT_KEYS)
        assert int(z["n_rounds"]) == 7 and int(z["n_actions"]) == 3
        # log order: r1, r2 (rows 0, 1), r3, r5, r7, r8
        assert z["context"].tolist() == [[1, 0], [2, 0], [3, 0], [4, 0], [6, 0], [7, 0], [8, 0]]
        assert z["action"].tolist() == [0, 1, 2, 0, 1, 2, 0]
        assert z["reward"].tolist() == [1.0, 0.5, 0.25, 0.125, 2.0, 3.0, 4.0]
        assert z["pscore"].tolist() == [0.5, 0.25, 0.75, 1.0, 0.5, 0.3, 0.2]
        assert z["position"].tolist() == [0] * 7
        np.testing.assert_array_equal(z["action_context"], np.eye(3))


def test_continuous_logs_round_trip_to_a_dataset_and_refuse_bandit(tmp_path):
    header = {
        "algorithm": "t",
        "observation_dim": 2,
        "action_space": {"type": "box", "low": [-1.0, None], "high": [1.0, None]},
    }
    action = [np.float32(0.1).item(), -3.5]
    write_requests(tmp_path / "logs", [("c1", [([0.5, 0.25], action, 0.7, None, None)])], header)
    (tmp_path / "r.csv").write_text("request_id,reward\nc1,2.5\n")
    import_log(tmp_path / "logs", tmp_path / "r.csv", tmp_path / "d.hdf5")
    ds = policyfit.load_dataset(tmp_path / "d.hdf5")
    assert ds.actions.tolist() == [[np.float32(0.1), -3.5]] and ds.terminals.tolist() == [True]
    assert ds.metadata["action_space"]["high"] == [1.0, float("inf")]
    with pytest.raises(DatasetError, match="bandit feedback needs discrete actions"):
        import_log(tmp_path / "logs", tmp_path / "r.csv", tmp_path / "b.npz", fmt="bandit")


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "r.csv",
            "request_id,value\nr1,1\n",
            "r.csv: reward: the CSV header has no 'reward' column",
        ),
        (
            "r.csv",
            "request_id,reward\nr1,1\nr2,abc\n",
            "r.csv: reward: line 3: 'abc' is not a number",
        ),
        ("r.csv", "request_id,reward\nr1,nan\n", "reward: line 2: 'nan' is not a finite number"),
        ("r.csv", "request_id,reward,index\nr1,1,-1\n", "index: line 2: '-1' is not an integer"),
        ("r.csv", "request_id,reward,terminal\nr1,1,maybe\n", "terminal: line 2: 'maybe' is not"),
        (
            "r.csv",
            "request_id,reward\nr1,1\nr1,2\n",
            "request_id: line 3: request 'r1' index 0 already has a reward (line 2)",
        ),
        ("r.jsonl", '{"request_id": "r1", "reward": 1}\n{"request_id": ', "line 2: not valid JSON"),
        ("r.jsonl", '{"request_id": 5, "reward": 1}\n', "request_id: line 1: 5 is not a non-empty"),
        ("r.jsonl", '{"request_id": "r1"}\n', "r.jsonl: reward: line 1: missing"),
        (
            "r.jsonl",
            '{"request_id": "r1", "reward": true}\n',
            "reward: line 1: True is not a number",
        ),
    ],
)
def test_malformed_reward_files_name_the_file_line_and_field(tmp_path, name, text, message):
    write_requests(tmp_path / "logs", REQUESTS[:1])
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError) as err:
        import_log(tmp_path / "logs", tmp_path / name, tmp_path / "out.npz")
    assert message in str(err.value)
    assert not (tmp_path / "out.npz").exists()


def test_inconsistent_logs_are_refused(tmp_path):
    write_requests(tmp_path / "dup", [REQUESTS[0], REQUESTS[0]])
    (tmp_path / "r.csv").write_text("request_id,reward\nr1,1\n")
    with pytest.raises(DatasetError, match=r"line 3: request 'r1' index 0 was logged twice \(also"):
        import_log(tmp_path / "dup", tmp_path / "r.csv", tmp_path / "o.npz")
    write_requests(tmp_path / "term", REQUESTS[1:3])
    (tmp_path / "t.csv").write_text("request_id,index,reward,terminal\nr2,1,1,1\n")
    with pytest.raises(DatasetError, match="episode 'A' ends here .* but has later steps"):
        import_log(tmp_path / "term", tmp_path / "t.csv", tmp_path / "o.npz")


def test_the_cli_prints_a_summary_and_one_line_errors(tmp_path):
    write_requests(tmp_path / "logs", REQUESTS)
    (tmp_path / "rewards.csv").write_text(REWARDS_CSV)
    runner = CliRunner()
    args = [
        "data",
        "import-log",
        str(tmp_path / "logs"),
        "--rewards",
        str(tmp_path / "rewards.csv"),
    ]
    ok = runner.invoke(cli, [*args, "--out", str(tmp_path / "fb.npz"), "--format", "bandit"])
    assert ok.exit_code == 0, ok.output
    assert "9 decisions from 1 log file(s); 7 with a reward, 2 dropped without one" in ok.output
    assert "1 of 8 rewards matched no decision" in ok.output
    assert "(bandit: 7 rounds, 3 actions)" in ok.output
    (tmp_path / "bad.csv").write_text("request_id,reward\nr1,x\n")
    bad = runner.invoke(cli, [*args[:3], "--rewards", str(tmp_path / "bad.csv"), "--out", "o.npz"])
    assert bad.exit_code == 2
    assert f"error: {tmp_path / 'bad.csv'}: reward: line 2: 'x' is not a number" in bad.output
