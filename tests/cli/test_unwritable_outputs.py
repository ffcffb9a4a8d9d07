"""An output path the OS refuses is one line, ``error: <path>: out: ...``, and exit code 2.

``/proc/forbidden/...`` cannot be created even by root; a read-only folder (mode 0o500) is tested
where it is read-only, i.e. not as root. Every command is checked to fail before its long work
(no dataset built, no training) and to leave nothing behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyfit.cli.main import cli
from policyfit.common.files import atomic_write_text, check_writable, ensure_dir, write_json
from policyfit.data.io import save_dataset
from policyfit.errors import PolicyfitError
from policyfit.training.rundir import RunDir

FORBIDDEN = "/proc/forbidden"


def one_line_error(result, path: str, field: str = "out") -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {path}: {field}: cannot write here: "), lines[0]
    return lines[0]


@pytest.fixture
def src(tmp_path, small_dataset):
    return str(save_dataset(small_dataset, tmp_path / "src.npz"))


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def needs_permissions(folder: Path) -> None:
    """Skip where the 0o500 folder is writable all the same (root, unless it dropped its
    CAP_DAC_OVERRIDE: ``setpriv --inh-caps=-dac_override --bounding-set=-dac_override``)."""
    if os.access(folder, os.W_OK):
        pytest.skip(f"a 0o500 folder is writable here (euid {os.geteuid()})")


# ----------------------------------------------------------------------------- the helpers
def test_check_writable_and_ensure_dir_name_the_path():
    with pytest.raises(PolicyfitError) as info:
        check_writable(f"{FORBIDDEN}/run")
    assert str(info.value) == (
        f"{FORBIDDEN}/run: out: cannot write here: No such file or directory (/proc); "
        "choose a writable location"
    )
    with pytest.raises(PolicyfitError) as info:
        ensure_dir(f"{FORBIDDEN}/run", field="dest")
    assert str(info.value) == (
        f"{FORBIDDEN}/run: dest: cannot write here: No such file or directory ({FORBIDDEN}); "
        "choose a writable location"
    )


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PolicyfitError, match="a file stands where a directory is needed"):
        check_writable(tmp_path / "file" / "run")
    with pytest.raises(PolicyfitError, match="a file stands where a directory is needed"):
        write_json(tmp_path / "file" / "run" / "config.json", {})


def test_check_writable_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b" / "out.npz"
    assert check_writable(target) == target
    assert list(tmp_path.iterdir()) == []


def test_atomic_writers_and_run_dir(tmp_path):
    with pytest.raises(PolicyfitError, match=rf"^{FORBIDDEN}/x.json: out: cannot write here"):
        atomic_write_text(f"{FORBIDDEN}/x.json", "{}")
    run = RunDir(f"{FORBIDDEN}/run")
    with pytest.raises(PolicyfitError, match=rf"^{FORBIDDEN}/run: out: cannot write here"):
        run.write_config({})
    with pytest.raises(PolicyfitError, match=rf"^{FORBIDDEN}/run: out: cannot write here"):
        run.open_metrics()


def test_read_only_folder(read_only):
    needs_permissions(read_only)
    with pytest.raises(PolicyfitError) as info:
        write_json(read_only / "x.json", {})
    assert str(info.value).startswith(f"{read_only}/x.json: out: cannot write here: Permission")
    with pytest.raises(PolicyfitError, match="Permission denied"):
        check_writable(read_only / "run")
    assert list(read_only.iterdir()) == []


# ----------------------------------------------------------------------------- the commands
def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("dst", ["x.npz", "x.hdf5", "x_minari"])
def test_data_convert(src, dst):
    one_line_error(run("data", "convert", src, f"{FORBIDDEN}/{dst}"), f"{FORBIDDEN}/{dst}")


def test_data_convert_into_read_only_folder(src, read_only):
    needs_permissions(read_only)
    for dst in ("x.npz", "x_minari"):
        one_line_error(run("data", "convert", src, str(read_only / dst)), str(read_only / dst))
    assert list(read_only.iterdir()) == []


def test_data_corrupt(src):
    result = run("data", "corrupt", src, "--target", "rewards", "--out", f"{FORBIDDEN}/c.npz")
    one_line_error(result, f"{FORBIDDEN}/c.npz")


def test_data_make_fails_before_building(monkeypatch):
    from policyfit.envs import datasets

    def build(*args, **kwargs):
        raise AssertionError("the dataset was built before the output was checked")

    monkeypatch.setattr(datasets, "make_dataset", build)
    result = run("data", "make", "cartpole-medium", "--out", f"{FORBIDDEN}/c.npz")
    one_line_error(result, f"{FORBIDDEN}/c.npz")


def test_report(src):
    one_line_error(run("report", src, "--out", f"{FORBIDDEN}/r.html"), f"{FORBIDDEN}/r.html")


def test_sweep(tmp_path, src):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"algorithms: [bc]\ndatasets: [{src}]\nseeds: [0]\n")
    one_line_error(run("sweep", str(spec), "--out", f"{FORBIDDEN}/s"), f"{FORBIDDEN}/s")


def test_behavior_train(tmp_path):
    result = run("behavior", "train", "Pendulum-v1", "--steps", "10", "--out", f"{FORBIDDEN}/b")
    one_line_error(result, f"{FORBIDDEN}/b")


def test_train_fails_before_loading_the_data(tmp_path, monkeypatch):
    from policyfit.training import trainer

    def resolve(dataset):
        raise AssertionError("the dataset was loaded before the output was checked")

    monkeypatch.setattr(trainer, "_resolve_dataset", resolve)
    result = run("train", "bc", "--dataset", "hopper-medium", "--out", FORBIDDEN)
    one_line_error(result, FORBIDDEN)


def test_train_into_read_only_folder(read_only, src):
    needs_permissions(read_only)
    result = run("train", "bc", "--dataset", src, "--steps", "10", "--out", str(read_only / "r"))
    one_line_error(result, str(read_only / "r"))


def test_train_in_a_real_process(tmp_path, small_dataset):
    """The report of issue 20: a traceback and exit 1; now one line and exit 2."""
    data = save_dataset(small_dataset, tmp_path / "d.npz")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "policyfit.cli", "train", "bc", "--dataset", str(data),
         "--out", FORBIDDEN],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {FORBIDDEN}: out: cannot write here: No such file or directory (/proc); "
        "choose a writable location"
    ]


def test_policyfit_home_unwritable(monkeypatch):
    monkeypatch.setenv("POLICYFIT_HOME", f"{FORBIDDEN}/home")
    from policyfit import paths

    with pytest.raises(PolicyfitError) as info:
        paths.home()
    assert str(info.value).startswith(
        f"{FORBIDDEN}/home: POLICYFIT_HOME: cannot create the cache directory"
    )


def test_ope_and_certify_check_the_run_dir(tmp_path, monkeypatch):
    """Both write into RUN_DIR after minutes of work: an unwritable one fails first."""
    import policyfit

    calls = []
    monkeypatch.setattr(policyfit, "load_policy", lambda path: calls.append(path))
    result = run("ope", f"{FORBIDDEN}/run", "--dataset", "unused")
    one_line_error(result, f"{FORBIDDEN}/run", field="run")
    certify = ("certify", "--sigma", "0.1", "--budget", "1", "--env", "Pendulum-v1")
    result = run(*certify[:1], f"{FORBIDDEN}/run", *certify[1:])
    one_line_error(result, f"{FORBIDDEN}/run", field="run")
    assert calls == [f"{FORBIDDEN}/run"] * 2
    result = run(*certify[:1], str(tmp_path), *certify[1:], "--out", f"{FORBIDDEN}/c.png")
    one_line_error(result, f"{FORBIDDEN}/c.png")
