"""Fixtures of the serving tests: saved policies shared by the session."""

from __future__ import annotations

import pytest
from serving_helpers import save_initial_policy


@pytest.fixture(scope="session")
def discrete_policy(tmp_path_factory):
    return save_initial_policy(tmp_path_factory.mktemp("dbc") / "policy", "discrete_bc", {}, True)


@pytest.fixture(scope="session")
def continuous_policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("bcg") / "policy"
    return save_initial_policy(path, "bc", {"policy": "gaussian"}, False)
