"""Results files that accumulate: jax_versions.py keeps earlier variants' rows, and two parity.py
processes (one per library) add rows to one file without losing each other's."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from bench_modules import benchmark


@pytest.fixture
def jax_versions():
    with benchmark("jax_versions") as module:
        yield module


@pytest.fixture
def parity():
    with benchmark("parity") as module:
        yield module


def test_jax_versions_keeps_other_variants_and_replaces_a_rerun(jax_versions, tmp_path):
    path = tmp_path / "jv.json"
    path.write_text(json.dumps({"rows": [{"jax": "0.7.2", "x": 1}, {"jax": "0.9.2", "x": 2}]}))
    rows = jax_versions.merged_rows(path, [{"jax": "0.9.2", "x": 3}, {"jax": "0.6.2 --f", "x": 4}])
    assert [(r["jax"], r["x"]) for r in rows] == [("0.7.2", 1), ("0.9.2", 3), ("0.6.2 --f", 4)]
    assert jax_versions.merged_rows(tmp_path / "none.json", rows[:1]) == rows[:1]


def _add_rows(parity, library, n):
    for seed in range(n):
        row = {"library": library, "algo": "iql", "dataset": "d", "seed": seed}
        parity.record_row("p", {**row, "steps": 1, "episodes": 1}, {})


def test_two_parity_processes_lose_no_row(parity, tmp_path, monkeypatch):
    path = tmp_path / "p.json"

    def write_all(name, rows, setup, plot_too=True):  # the real one also writes md and summary
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"runs": rows}))
        tmp.replace(path)
        return path

    monkeypatch.setattr(parity, "result_path", lambda name: path)
    monkeypatch.setattr(parity, "write_all", write_all)
    ctx = multiprocessing.get_context("fork")  # the children inherit the patches
    procs = [ctx.Process(target=_add_rows, args=(parity, lib, 25)) for lib in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = json.loads(path.read_text())["runs"]
    assert sorted((r["library"], r["seed"]) for r in rows) == [
        (lib, s) for lib in ("a", "b") for s in range(25)
    ]
    # the same run again replaces its row
    _add_rows(parity, "a", 1)
    assert len(json.loads(path.read_text())["runs"]) == 50
