"""tests/pref: the preference extra. Skipped as a whole when torch/trl are not installed
(``make install`` installs them); torch runs on one thread (pytest runs two workers)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def enumerable_ref():
    """The enumerable task's reference (built once per session, cached on disk)."""
    from policyfit.pref.tasks import get_task

    return get_task("enumerable").reference(0)
