"""Every example in a docstring of ``src/policyfit`` runs and prints what it says (``+SKIP`` marks
the ones that need a run directory or minutes of work)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import policyfit

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(policyfit.__path__, prefix="policyfit.")
    if not m.name.startswith("policyfit.cli")  # click commands: their --help is their example
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    if name.startswith("policyfit.pref"):
        pytest.importorskip("torch", reason="policyfit[pref] is not installed")
        pytest.importorskip("trl", reason="policyfit[pref] is not installed")
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
