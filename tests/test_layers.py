"""The import layers of issue 13 hold, and an import that breaks them fails ``lint-imports``.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``); ``make lint`` runs them. These
tests run import-linter on the package as it is (must pass) and on a temporary copy with one bad
import added (must fail, naming the offence), so a contract that stopped checking anything would
show up here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "policyfit"
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on ``root/src/policyfit`` with ``root/pyproject.toml``."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_the_layers_name_every_top_level_module_once():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert layers["exhaustive"] is True and layers["containers"] == ["policyfit"]
    named = [m.strip() for layer in layers["layers"] for m in re.split(r"[|:]", layer)]
    on_disk = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert sorted(named) == sorted(on_disk)
    assert named[0] == "cli" and named[-1] == "errors"


@pytest.fixture(scope="module")
def lint_copy(tmp_path_factory):
    """``lint(edit)``: lint a fresh copy of the sources after ``edit(package_dir)``."""
    base = tmp_path_factory.mktemp("layers")
    counter = iter(range(100))

    def lint(edit) -> str:
        root = base / f"copy{next(counter)}"
        shutil.copytree(
            PACKAGE, root / "src" / "policyfit", ignore=shutil.ignore_patterns("policies", "*.pyc")
        )
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
        edit(root / "src" / "policyfit")
        result = lint_imports(root)
        assert result.returncode != 0, f"lint-imports passed after the edit:\n{result.stdout}"
        return result.stdout

    return lint


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n\n" + text + "\n")


def test_an_upward_import_fails(lint_copy):
    # data.io resolving suite names again, even lazily inside a function
    out = lint_copy(
        lambda pkg: _append(
            pkg / "data" / "io.py", "def _suite():\n    from policyfit.envs import suite  # noqa"
        )
    )
    assert "policyfit.data is not allowed to import policyfit.envs" in out
    assert "policyfit.data.io -> policyfit.envs.suite" in out


def test_an_import_between_independent_siblings_fails(lint_copy):
    out = lint_copy(
        lambda pkg: _append(pkg / "diagnostics" / "card.py", "import policyfit.envs.suite  # noqa")
    )
    assert "policyfit.diagnostics is not allowed to import policyfit.envs" in out


def test_a_cycle_inside_a_package_fails(lint_copy):
    # data.io imports data.spaces; spaces importing io back closes a cycle
    out = lint_copy(
        lambda pkg: _append(
            pkg / "data" / "spaces.py", "def _io():\n    from policyfit.data import io  # noqa"
        )
    )
    assert "No cycles are allowed in policyfit.data." in out


def test_a_new_top_level_package_needs_a_layer(lint_copy):
    def add_package(pkg: Path) -> None:
        (pkg / "plugins").mkdir()
        (pkg / "plugins" / "__init__.py").write_text("")

    out = lint_copy(add_package)
    assert "policyfit.plugins" in out


def test_no_module_imports_policyfit_modules_behind_static_analysis():
    """``importlib.import_module`` hides an import from the contracts; only the CLI's command
    registry (within ``cli``) and the lazy public API (``policyfit/__init__.py``) may use it —
    and the ONNX export, which loads jax2onnx's own plugin modules by name (never policyfit's)."""
    allowed = {
        PACKAGE / "__init__.py",
        PACKAGE / "cli" / "main.py",
        PACKAGE / "export" / "onnx.py",
    }
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path not in allowed and re.search(r"import_module\(|__import__\(", path.read_text())
    ]
    assert offenders == []


def test_only_the_cli_uses_the_lazy_public_api():
    """``import policyfit`` then ``policyfit.train(...)`` would be an upward import the graph
    cannot see (the names resolve lazily); below the CLI, import from the defining module."""
    grimp = pytest.importorskip("grimp")
    sys.path.insert(0, str(ROOT / "src"))
    try:
        graph = grimp.build_graph("policyfit", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT / "src"))
    importers = graph.find_modules_that_directly_import("policyfit")
    outside_cli = {
        m
        for m in importers
        if not m.startswith("policyfit.cli")
        and any(
            "__version__" not in d["line_contents"]
            for d in graph.get_import_details(importer=m, imported="policyfit")
        )
    }
    assert outside_cli == set()
