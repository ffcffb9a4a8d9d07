import base64
import re

import numpy as np
import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.diagnostics.card import diagnose
from policyfit.errors import PolicyfitError
from policyfit.report.runs import is_run_dir, load_run


def test_report_is_one_self_contained_file(report_html):
    text = report_html.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # no external resources: every image is inline, nothing is fetched
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert not [p.name for p in report_html.parent.iterdir() if p.name != "report.html"]
    assert oct(report_html.stat().st_mode & 0o044) == oct(0o044)  # readable, not mkstemp's 0600


def test_dataset_section_has_card_numbers_and_plots(report_html, toy_dataset):
    text = report_html.read_text()
    card = diagnose(toy_dataset, reference=toy_dataset)
    assert "Dataset: toy-dataset" in text
    assert f"{card.tq['value']:.3f}" in text  # TQ as printed in the measures table
    assert "SACo (state-action coverage)" in text and ">1.000<" in text  # SACo vs itself
    assert card.verdict[0].split(":")[0] in text
    for plot_id in (
        "returns",
        "lengths",
        "coverage",
        "anomalies",
        "obs-marginals",
        "action-marginals",
    ):
        assert re.search(
            rf'id="plot-{plot_id}-0" src="data:image/png;base64,[A-Za-z0-9+/=]{{500,}}"', text
        ), plot_id
    # the planted reward outlier is listed among the most anomalous transitions
    assert re.search(
        r"<td class=\"num\">123</td><td class=\"num\">2</td><td class=\"num\">23</td><td>reward",
        text,
    )


def test_runs_section_has_curves_table_and_comparison(report_html):
    text = report_html.read_text()
    assert "Training runs (2)" in text
    for plot_id in ("learning-curves", "comparison", "losses-0", "losses-1"):
        assert f'id="plot-{plot_id}"' in text, plot_id
    # final scores: iql from summary.json (60.0), bc from its metrics (30.0; no summary.json)
    assert '<td class="num">60.0</td>' in text and '<td class="num">30.0</td>' in text
    assert "1 unreadable line(s) in metrics.jsonl skipped" in text
    assert "summary.json missing" in text


def test_load_run_reads_defensively(tmp_path, make_run):
    run = load_run(make_run(tmp_path / "r", "td3bc", 1.0, summary=False, torn=True))
    steps, scores = run.curve("eval/normalized_score")
    assert steps.tolist() == [1000, 2000, 3000, 4000]
    assert np.allclose(scores, [10, 20, 30, 40])
    assert run.final_and_best() == (40.0, 40.0)
    assert run.algorithm == "td3bc" and run.dataset == "toy-dataset"
    assert set(run.loss_keys()) == {"train/critic_loss", "train/actor_loss"}
    assert not is_run_dir(tmp_path / "nothing")


def test_cli_report_writes_file_and_rejects_missing_target(tmp_path, toy_dataset, make_run):
    from policyfit.data.io import save_dataset

    save_dataset(toy_dataset, tmp_path / "toy.npz")
    run = make_run(tmp_path / "iql-toy-s0", "iql", 1.0)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        cli,
        ["report", str(tmp_path / "toy.npz"), str(run), "--out", str(out), "--reference", "none"],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "no reference dataset given" in text and "iql-toy-s0" in text
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "missing.hdf5"), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:")


def test_report_needs_a_target():
    from policyfit.report import write_report

    with pytest.raises(
        PolicyfitError,
        match=r"^targets: nothing to report: give at least one run directory or dataset$",
    ):
        write_report([], "x.html")


def test_report_on_a_users_hdf5_file(tmp_path, toy_dataset):
    from policyfit.data.io import save_dataset
    from policyfit.report import write_report

    path = tmp_path / "logs.hdf5"
    save_dataset(toy_dataset, path)
    out = write_report([path], tmp_path / "r.html", reference=None, ref_scores=(-10.0, 10.0))
    text = out.read_text()
    assert "logs.hdf5" in text and "random -10.0, expert 10.0 (user)" in text


def test_several_datasets_are_compared_in_the_tq_saco_plane(tmp_path, toy_dataset):
    from policyfit.report import build_report

    half = toy_dataset.select_episodes(range(10))
    text = build_report([toy_dataset, half], reference=toy_dataset)
    assert "Datasets compared (2)" in text
    assert 'id="plot-tq-saco" src="data:image/png;base64,' in text
    assert 'id="plot-returns-1"' in text  # each dataset still gets its own section


def test_several_runs_get_performance_profiles(tmp_path, make_run):
    from policyfit.report import write_report

    runs = [
        make_run(tmp_path / f"{algo}-toy-s{seed}", algo, slope + 0.1 * seed)
        for algo, slope in (("iql", 1.5), ("bc", 0.75))
        for seed in range(2)
    ]
    text = write_report(runs, tmp_path / "r.html").read_text()
    assert 'id="plot-performance-profile"' in text
    assert "performance profiles over 1 dataset(s)" in text
    one = write_report(runs[:1], tmp_path / "one.html").read_text()
    assert 'id="plot-performance-profile"' not in one  # a single run has no profile to compare


def test_run_certificate_plot_is_embedded(tmp_path, make_run):
    from policyfit.report import write_report

    run = make_run(tmp_path / "iql-toy-s0", "iql", 1.5)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    (run / "certificate.png").write_bytes(png)
    text = write_report([run], tmp_path / "r.html").read_text()
    assert 'id="plot-certificate-0"' in text
    assert base64.b64encode(png).decode() in text
