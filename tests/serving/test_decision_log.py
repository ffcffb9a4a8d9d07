"""The decision log: fsync-ed appends with group commit, and a reader that survives a torn end."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
from serving_helpers import running

from policyfit.errors import DatasetError
from policyfit.serving.app import PolicyServer
from policyfit.serving.decision_log import (
    LOG_FORMAT,
    DecisionLog,
    encode_records,
    read_log_dir,
    read_log_file,
)


def lines_for(request_id: str, rows: int = 1) -> bytes:
    return encode_records(
        request_id,
        1_700_000_000.25,
        [[float(i), 0.5] for i in range(rows)],
        list(range(rows)),
        [0.5] * rows,
        "fp",
        "greedy",
    )


def write_log(directory, request_ids, sync="group") -> DecisionLog:
    log = DecisionLog(directory, {"algorithm": "x"}, sync=sync)

    async def main():
        await asyncio.gather(*(log.append(lines_for(r)) for r in request_ids))

    asyncio.run(main())
    return log


@pytest.mark.parametrize("sync", ["group", "each"])
def test_concurrent_appends_are_all_written_once(tmp_path, sync):
    ids = [f"r{i}" for i in range(40)]
    log = write_log(tmp_path, ids, sync=sync)
    log.close()
    read = read_log_file(log.path)
    assert read.header["format"] == LOG_FORMAT and read.header["algorithm"] == "x"
    assert sorted(r["request_id"] for r in read.records) == sorted(ids)
    assert log.records == 40
    if sync == "each":
        assert log.commits == 40
    else:  # requests that waited together shared an fsync
        assert 1 <= log.commits < 40


def test_a_batch_request_is_one_line_per_observation(tmp_path):
    log = DecisionLog(tmp_path, {})
    asyncio.run(log.append(lines_for("b", rows=3)))
    log.close()
    records = read_log_file(log.path).records
    assert [(r["request_id"], r["index"], r["obs"], r["action"]) for r in records] == [
        ("b", 0, [0.0, 0.5], 0),
        ("b", 1, [1.0, 0.5], 1),
        ("b", 2, [2.0, 0.5], 2),
    ]
    assert records[0]["time_iso"] == "2023-11-14T22:13:20.250000Z"


def test_a_torn_last_line_is_dropped_and_reported(tmp_path):
    log = write_log(tmp_path, ["a", "b"])
    log.close()
    whole = lines_for("c")
    with open(log.path, "ab") as fh:
        fh.write(whole[: len(whole) // 2])  # a crash in the middle of the write
    read = read_log_file(log.path)
    assert [r["request_id"] for r in read.records] == ["a", "b"]
    assert read.torn_line == 4  # header, a, b, torn
    # complete JSON without its newline was still never acknowledged: torn as well
    with open(log.path, "rb+") as fh:
        fh.truncate(os.path.getsize(log.path) - len(whole) // 2)
        fh.seek(0, os.SEEK_END)
        fh.write(whole[:-1])
    read = read_log_file(log.path)
    assert [r["request_id"] for r in read.records] == ["a", "b"] and read.torn_line == 4


def test_a_bad_line_before_the_end_is_an_error_naming_file_and_line(tmp_path):
    log = write_log(tmp_path, ["a"])
    log.close()
    with open(log.path, "ab") as fh:
        fh.write(b'{"request_id": "oops"\n' + lines_for("b"))
    with pytest.raises(DatasetError, match=r"decisions-.*\.jsonl: record: line 3: not valid JSON"):
        read_log_file(log.path)


def test_a_record_missing_a_field_is_named(tmp_path):
    log = write_log(tmp_path, ["a"])
    log.close()
    with open(log.path, "ab") as fh:
        fh.write(b'{"request_id": "b", "index": 0, "time": 1, "obs": [1], "action": 0}\n')
    with pytest.raises(DatasetError, match="propensity: line 3: missing"):
        read_log_file(log.path)


def test_files_that_are_not_decision_logs_are_refused(tmp_path):
    (tmp_path / "decisions-x-1.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(DatasetError, match="header: line 1: not a policyfit decision log"):
        read_log_dir(tmp_path)
    with pytest.raises(DatasetError, match="no decision logs"):
        read_log_dir(tmp_path / "..")


def test_when_the_log_cannot_be_written_the_server_answers_503_not_500(discrete_policy, tmp_path):
    server = PolicyServer.from_path(discrete_policy, "greedy", log_dir=tmp_path)
    with running(server) as url, httpx.Client(base_url=url) as client:
        assert client.post("/act", json={"obs": [0, 0, 0]}).status_code == 200
        read_only = os.open(os.devnull, os.O_RDONLY)
        os.dup2(read_only, server.log._fd)  # writes now fail (EBADF), as on a lost disk
        os.close(read_only)
        failed = client.post("/act", json={"obs": [0, 0, 0]})
        again = client.post("/act", json={"obs": [0, 0, 0]})
        health = client.get("/health")
    assert failed.status_code == 503 and "could not be written" in failed.json()["error"]
    assert again.status_code == 503  # no answers without a log, from then on
    assert health.status_code == 503 and health.json()["status"] == "error"
