"""The run directory: the one module that knows its layout and reads and writes its files.

A run directory (``./runs/<algo>-<dataset>-s<seed>`` by default) holds:

====================  ===========================================================================
``config.json``       algorithm, hyperparameters, seed, steps, dataset id and fingerprint, versions
``metrics.jsonl``     one JSON line per training chunk and per evaluation (``step`` in each)
``summary.json``      final and best scores, timings, device — written when training ends
``policy/``           ``policy.json`` + ``params.msgpack``: what :func:`policyfit.load_policy` reads
``checkpoints/``      ``step_N/`` with the full train state, for exact ``--resume``
``ope.json``          off-policy estimates (``policyfit ope``), one entry per dataset
``certificate.json``  the smoothing certificate (``policyfit certify``) and ``certificate.png``
``tensorboard/``      TensorBoard event files of the metrics (``policyfit train --tensorboard``)
====================  ===========================================================================

The trainer, :func:`policyfit.load_policy`, reports, sweeps, the CLI and the benchmarks all go
through :class:`RunDir`; nobody else builds these paths. See ``docs/architecture.md``.

Example:
    >>> run = RunDir("runs/iql-hopper-medium-s0")          # doctest: +SKIP
    >>> run.read_summary()["final_normalized_score"]        # doctest: +SKIP
    55.0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policyfit.algos.policy import Policy, is_policy_dir, read_policy
from policyfit.common.files import (
    atomic_write_bytes,
    dumps,
    ensure_dir,
    output_error,
    read_json,
    write_json,
)
from policyfit.errors import PolicyfitError

RUN_FORMAT = "policyfit-run/1"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
POLICY_DIR = "policy"
CHECKPOINTS_DIR = "checkpoints"
OPE_FILE = "ope.json"
CERTIFICATE_FILE = "certificate.json"
CERTIFICATE_PLOT = "certificate.png"
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)


class RunDir:
    """One run directory. Cheap to build; nothing is read until asked."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def policy_dir(self) -> Path:
        return self.path / POLICY_DIR

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def ope_path(self) -> Path:
        return self.path / OPE_FILE

    @property
    def certificate_path(self) -> Path:
        return self.path / CERTIFICATE_FILE

    @property
    def certificate_plot_path(self) -> Path:
        return self.path / CERTIFICATE_PLOT

    # ------------------------------------------------------------------ what it is
    def exists(self) -> bool:
        """Any of ``config.json`` / ``metrics.jsonl`` / ``summary.json`` is there."""
        return self.path.is_dir() and any((self.path / f).is_file() for f in RUN_FILES)

    def is_training_run(self) -> bool:
        """``config.json`` is there and says it is a policyfit training run."""
        config = self.read_config()
        return config.get("format") == RUN_FORMAT

    def require_training_run(self, field: str = "run") -> dict[str, Any]:
        """``config.json`` of a training run, or a PolicyfitError saying what is missing."""
        config = self.read_config()
        if config.get("format") != RUN_FORMAT:
            raise PolicyfitError(
                "not a policyfit run directory (no config.json)", path=str(self.path), field=field
            )
        return config

    # ------------------------------------------------------------------ config / summary
    def read_config(self) -> dict[str, Any]:
        """``config.json`` (an empty dict when absent); bad JSON raises naming the file."""
        if not self.config_path.is_file():
            return {}
        value = read_json(self.config_path)
        return value if isinstance(value, dict) else {}

    def create(self, field: str = "out") -> RunDir:
        """Create the directory (and its parents); a PolicyfitError naming it and ``field`` when
        it cannot be created or written into."""
        ensure_dir(self.path, field)
        return self

    def write_config(self, config: dict[str, Any]) -> None:
        self.create()
        write_json(self.config_path, config)

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json``, or None while the run has not finished."""
        if not self.summary_path.is_file():
            return None
        value = read_json(self.summary_path)
        return value if isinstance(value, dict) else None

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    # ------------------------------------------------------------------ metrics
    def read_metrics(self) -> tuple[list[dict[str, Any]], int]:
        """The rows of ``metrics.jsonl`` and how many lines could not be read (a torn last line
        of a killed run, hand edits). Rows without a numeric ``step`` count as unreadable."""
        rows: list[dict[str, Any]] = []
        bad = 0
        if not self.metrics_path.is_file():
            return rows, bad
        for line in self.metrics_path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int | float):
                rows.append(row)
            else:
                bad += 1
        return rows, bad

    def open_metrics(self):
        """``metrics.jsonl`` opened for appending (the trainer writes a line per chunk)."""
        self.create()
        try:
            return open(self.metrics_path, "a")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise output_error(self.metrics_path, exc) from None

    def trim_metrics(self, last_step: int) -> None:
        """Drop metric lines written after ``last_step`` (the checkpoint a resume starts from)."""
        rows, _ = self.read_metrics()
        kept = [dumps(r, indent=None) for r in rows if r["step"] <= last_step]
        if self.metrics_path.is_file():
            atomic_write_bytes(self.metrics_path, ("\n".join(kept) + "\n" if kept else "").encode())

    # ------------------------------------------------------------------ evaluations kept with the run
    def read_ope(self) -> list[dict[str, Any]]:
        """The stored FQE estimates (one per dataset); empty when none or unreadable."""
        try:
            value = read_json(self.ope_path) if self.ope_path.is_file() else {}
            entries = value["estimates"] if value else []
        except (PolicyfitError, KeyError, TypeError):
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def write_ope(self, entry: dict[str, Any]) -> None:
        """Add an FQE estimate; the latest estimate for the same ``entry["dataset"]`` wins."""
        entries = [e for e in self.read_ope() if e.get("dataset") != entry.get("dataset")]
        write_json(self.ope_path, {"estimates": [*entries, entry]})

    def read_certificate(self) -> dict[str, Any] | None:
        if not self.certificate_path.is_file():
            return None
        try:
            value = read_json(self.certificate_path)
        except PolicyfitError:
            return None
        return value if isinstance(value, dict) else None

    def write_certificate(self, certificate: dict[str, Any], png: bytes | None = None) -> None:
        write_json(self.certificate_path, certificate, indent=None)
        if png is not None:
            atomic_write_bytes(self.certificate_plot_path, png)


def load_policy(path: str | Path, **overrides: Any) -> Policy:
    """The learned policy of a run directory (or of a bare ``policy/`` folder).

    Returns a :class:`~policyfit.algos.policy.Policy`: numpy in, numpy out, with the carry-aware
    call every policy has (``initial_carry``, ``act``, ``observe_reward``); stateless policies can
    also be called directly, ``policy(obs) -> action``. ``overrides`` replace config fields that
    matter when acting, e.g. RvS-R's ``target_return``.

    Example:
        >>> policy = load_policy("runs/iql-hopper-medium-s0")          # doctest: +SKIP
        >>> policy(np.zeros(11)).shape                                # doctest: +SKIP
        (3,)
        >>> rvs = load_policy("runs/rvs_r-hopper-medium-s0", target_return=3000.0)  # doctest: +SKIP
        >>> carry = rvs.initial_carry(batch_size=1)                   # doctest: +SKIP
        >>> action, carry = rvs.act(obs[None], carry)                 # doctest: +SKIP
        >>> carry = rvs.observe_reward(carry, np.array([reward]))    # doctest: +SKIP
    """
    path = Path(path)
    run = RunDir(path)
    if is_policy_dir(run.policy_dir):
        return read_policy(run.policy_dir, **overrides)
    if is_policy_dir(path):
        return read_policy(path, **overrides)
    raise PolicyfitError(
        "no policy found (expected policy/policy.json and policy/params.msgpack); "
        "is this a run directory of `policyfit train`?",
        path=str(path),
        field="policy",
    )
