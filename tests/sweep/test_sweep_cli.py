"""``policyfit compare / sweep / ope / certify``: output and one-line user errors (exit 2)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from policyfit.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def fake_run(path, algo, dataset, seed, score):
    path.mkdir(parents=True)
    summary = {"algorithm": algo, "dataset": dataset, "seed": seed, "steps": 10,
               "final_normalized_score": score, "final_return_mean": 10.0 * score}  # fmt: skip
    (path / "summary.json").write_text(json.dumps(summary))
    return str(path)


def test_compare_prints_aggregates_and_json(tmp_path):
    runs = [
        fake_run(tmp_path / f"iql-s{s}", "iql", "hopper-medium", s, 50.0 + 10 * s) for s in range(3)
    ]
    runs += [fake_run(tmp_path / f"bc-s{s}", "bc", "hopper-medium", s, 30.0 + s) for s in range(3)]
    res = run("compare", *runs, "--reps", "200")
    assert res.exit_code == 0, res.output
    assert "| iql | 1 | 60.0 [" in res.output and "| bc | 1 | 31.0 [" in res.output
    res = run("compare", *runs, "--reps", "200", "--json", "--out", str(tmp_path / "cmp"))
    data = json.loads(res.output)
    assert data["aggregates"]["iql"]["iqm"]["estimate"] == 60.0
    assert (tmp_path / "cmp" / "results.md").is_file()


def test_user_errors_are_one_line_with_exit_code_2(tmp_path):
    for args, message in [
        (["compare", str(tmp_path / "missing")], "not a run directory"),
        (["sweep", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")], "no such file"),
        (["certify", str(tmp_path), "--sigma", "0", "--budget", "1"], "sigma"),
        (["ope", str(tmp_path), "--dataset", "x.npz"], "no policy found"),
    ]:
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1


def test_certify_keeps_the_certificate_with_the_run(tmp_path, monkeypatch):
    """`policyfit certify` (policyfit.cli.offpolicy) on a tiny BC run: the printed certificate is
    the one stored with the run (certificate.json, certificate.png) and the plot goes to --out."""
    import policyfit
    from pendulum_data import pendulum_dataset
    from policyfit.data.io import save_dataset

    monkeypatch.setenv("POLICYFIT_FAST_COMPILE", "1")
    data = save_dataset(pendulum_dataset(episodes=2), tmp_path / "pend.npz")
    run_dir = tmp_path / "run"
    config = {"hidden_dims": [8, 8], "batch_size": 16}
    policyfit.train("bc", data, steps=20, config=config, out=run_dir, eval_episodes=1,
                    progress=False)  # fmt: skip
    plot = tmp_path / "plots" / "cert.png"
    args = ["certify", str(run_dir), "--sigma", "0.2", "--budget", "0.5", "--episodes", "4"]
    res = run(*args, "--attack-episodes", "2", "--out", str(plot), "--json")
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)
    stored = json.loads((run_dir / "certificate.json").read_text())
    assert stored["env_id"] == "Pendulum-v1" and stored["episodes"] == 4
    assert stored["rows"] == printed["rows"] and [r["sigma"] for r in stored["rows"]] == [0.2]
    assert printed["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "certificate.png").read_bytes() == plot.read_bytes()
