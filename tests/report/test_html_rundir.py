"""The report reads a run's ope.json and certificate.json through RunDir; bad targets are errors."""

from __future__ import annotations

import re

import pytest

from policyfit.errors import ConfigError
from policyfit.report.html import build_report, write_report
from policyfit.training.rundir import RunDir


def test_ope_estimates_written_by_rundir_are_reported(tmp_path, make_run):
    run = make_run(tmp_path / "iql-toy-s0", "iql", 1.5)
    RunDir(run).write_ope(
        {
            "dataset": "toy-dataset",
            "normalized_score": 41.25,
            "normalized_ci": [30.5, 52.0],
            "return_estimate": 812.0,
            "return_ci": None,
            "in_bounds": False,
        }
    )
    text = build_report([run])
    assert "Off-policy estimate (FQE, Le et al. 2019) of iql-toy-s0" in text
    row = (
        '<td>toy-dataset</td><td class="num">41.250 [30.500, 52.000]</td>'
        '<td class="num">812.000</td><td class="num">60.000</td><td>no (extrapolating)</td>'
    )
    assert row in text  # 60.0: the run's own final score (summary.json), beside the estimate


def test_unreadable_ope_json_is_a_note_not_a_failure(tmp_path, make_run):
    run = make_run(tmp_path / "bc-toy-s0", "bc", 1.0)
    (run / "ope.json").write_text('{"estimates": [1, 2')
    text = build_report([run])
    assert re.search(r"note: \S+ope\.json has no readable estimates; skipped", text)
    assert "Off-policy estimate" not in text


def test_certificate_numbers_and_plot(tmp_path, make_run):
    run = make_run(tmp_path / "iql-toy-s1", "iql", 1.5)
    rows = [
        {"sigma": 0.1, "clean_return_mean": 250.0, "bound_at_budget": 180.25,
         "attacked_return_mean": 230.0},
        "not a row",
    ]  # fmt: skip
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    RunDir(run).write_certificate({"budget": 0.5, "alpha": 0.05, "rows": rows}, png)
    text = build_report([run])
    assert "Policy-smoothing certificate of iql-toy-s1 (budget 0.500, alpha 0.050)" in text
    assert (
        '<td class="num">0.100</td><td class="num">250.0</td><td class="num">180.2</td>'
        '<td class="num">230.0</td>'
    ) in text
    assert 'id="plot-certificate-0"' in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"targets": [42]},
            "targets: a report target is a run directory, a dataset path or name, a Dataset or "
            "a Run, not int 42",
        ),
        (
            {"targets": ["x"], "reference": 3.5},
            "reference: must be 'auto', a dataset path or name, a Dataset or None, not float 3.5",
        ),
    ],
)
def test_bad_targets(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        write_report(out=tmp_path / "r.html", **kwargs)
    assert not (tmp_path / "r.html").exists()
