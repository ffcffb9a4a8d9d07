"""TensorBoard event files beside ``metrics.jsonl``: the same rows, as scalars.

``policyfit train ... --tensorboard`` (or ``tensorboard: true`` in a sweep's config) writes every
numeric field of every metrics row — the losses (``train/...``), the evaluation scores
(``eval/...``), ``steps_per_second`` and the pretraining rows — as a TensorBoard scalar at the row's
step, into ``RUN/tensorboard/`` (``RunDir.tensorboard_dir``). The files are written with TensorBoard's own writer
(``tensorboard.summary.writer``), so ``tensorboard --logdir runs/`` shows every run of a sweep side
by side. Only the ``tensorboard`` package is needed (``pip install 'policyfit[tensorboard]'``), not
TensorFlow.

A resumed run opens a new event file that starts with a ``SessionLog.START`` event at the step it
resumes from: TensorBoard then drops the points the killed process wrote after its last checkpoint
(they are recomputed), exactly as ``metrics.jsonl`` is trimmed.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     writer = TensorBoardWriter(d)
    ...     writer.write({"step": 10, "train/loss": 0.5, "note": "not a number"})
    ...     writer.close()
    ...     sorted(read_scalars(d))
    ['train/loss']
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from policyfit.errors import PolicyfitError

# rows' fields that are bookkeeping, not curves
_SKIP = {"step", "pretrain_step"}


def _require_tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise PolicyfitError(
            "TensorBoard logging needs the 'tensorboard' package: "
            "pip install 'policyfit[tensorboard]'",
            field="tensorboard",
        ) from None
    return event_pb2, summary_pb2, EventFileWriter


class TensorBoardWriter:
    """Writes metrics rows (dicts with a ``step``) as TensorBoard scalars into ``logdir``.

    ``resumed_from``: the step a resumed run continues from; recorded as a ``SessionLog.START`` so
    TensorBoard discards the older points past it.
    """

    def __init__(self, logdir: str | Path, resumed_from: int | None = None):
        self._event_pb2, self._summary_pb2, writer_cls = _require_tensorboard()
        self.logdir = Path(logdir)
        try:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self._writer = writer_cls(str(self.logdir), flush_secs=10)
        except OSError as exc:
            raise PolicyfitError(
                f"cannot write TensorBoard files: {exc.strerror or exc}",
                path=str(self.logdir),
                field="tensorboard",
            ) from None
        if resumed_from is not None:
            start = self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)
            # TensorBoard purges the points at steps >= this one; the checkpoint's own step stays
            event = self._event_pb2.Event(
                wall_time=time.time(), step=resumed_from + 1, session_log=start
            )
            self._writer.add_event(event)

    def write(self, row: dict[str, Any]) -> None:
        """One metrics row: every int/float field except the step counters becomes a scalar."""
        step = int(row.get("step", 0))
        if "pretrain_step" in row and step == 0:
            step = int(row["pretrain_step"])
        values = [
            self._summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
            for tag, value in row.items()
            if tag not in _SKIP and isinstance(value, int | float) and not isinstance(value, bool)
        ]
        if values:
            summary = self._summary_pb2.Summary(value=values)
            self._writer.add_event(
                self._event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
            )

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` read back with TensorBoard's own event reader.

    Uses ``EventAccumulator`` with orphaned-data purging, so what a resumed run superseded is gone
    here as it is in TensorBoard's UI.
    """
    _require_tensorboard()
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={event_accumulator.SCALARS: 0}, purge_orphaned_data=True
    )
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
