"""kill -9 under load: every request that got a 200 is in the decision log exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time

import httpx
import numpy as np

from policyfit.serving.decision_log import read_log_dir
from policyfit.serving.launch import start_server_process


def start_server(policy_dir, log_dir) -> tuple[subprocess.Popen, str]:
    """``policyfit serve`` in a subprocess on a free port; returns it and its URL."""
    args = ["--log", str(log_dir), "--explore", "epsilon:0.1"]
    return start_server_process(policy_dir, args)


def test_kill_9_under_load_loses_no_answered_decision(discrete_policy, tmp_path):
    proc, url = start_server(discrete_policy, tmp_path / "logs")
    answered: list[tuple[str, int]] = []
    stop = threading.Event()

    def client(worker: int):
        rng = np.random.default_rng(worker)
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(100_000):
                if stop.is_set():
                    return
                rows = int(rng.integers(1, 5))
                request_id = f"w{worker}-{i}"
                body = {"obs": rng.normal(size=(rows, 3)).tolist(), "request_id": request_id}
                try:
                    response = http.post("/act", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    answered.append((request_id, rows))

    workers = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(answered) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # while the clients are still sending
        proc.wait(10)
    finally:
        stop.set()
        for w in workers:
            w.join(15)
        if proc.poll() is None:
            proc.kill()
    assert len(answered) >= 150
    logged = collections.Counter(
        (r["request_id"], r["index"]) for f in read_log_dir(tmp_path / "logs") for r in f.records
    )
    assert max(logged.values()) == 1  # nothing written twice
    missing = [(rid, i) for rid, rows in answered for i in range(rows) if (rid, i) not in logged]
    assert missing == []
