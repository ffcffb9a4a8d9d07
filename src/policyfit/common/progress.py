"""The one progress bar: rich on a terminal (or in Jupyter), nothing otherwise or when disabled.

Every long loop of policyfit (training, behavior-policy training, dataset generation, sweeps) shows
the same bar: the description, the bar, ``done/total``, any text columns the loop fills in (steps/s,
the last evaluation), optionally the elapsed time, and ``ETA`` with the time remaining. The bar goes
to stderr, so a command's output (``--json``) stays clean; when stderr is not a terminal (a log
file, CI, a test) or ``enabled=False`` every call is a no-op and rich is not imported.

Example:
    >>> with ProgressBar("training", total=100, texts=("{task.fields[rate]} steps/s",),
    ...                  fields={"rate": "-"}, enabled=False) as bar:
    ...     bar.update(50, rate="1,000")
    ...     bar.advance(50)
    >>> bar.enabled
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ProgressBar:
    """A rich progress bar, or nothing.

    Args:
        description: the label at the left (bold); change it with :meth:`update`.
        total: the number of units (steps, trials, transitions) at 100%.
        completed: units already done (a resumed run).
        texts: rich ``TextColumn`` templates shown after ``done/total``, e.g.
            ``"eval {task.fields[score]}"``; their fields start at ``fields``.
        fields: initial values of the template fields.
        elapsed: also show the time elapsed.
        enabled: False for no bar at all.
        console: the rich console to draw on (default: stderr); the bar is shown only when it is
            a terminal or a Jupyter notebook.
    """

    def __init__(
        self,
        description: str,
        total: int,
        *,
        completed: int = 0,
        texts: Sequence[str] = (),
        fields: dict[str, Any] | None = None,
        elapsed: bool = False,
        enabled: bool = True,
        console: Any = None,
    ):
        self._progress: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console

        console = Console(stderr=True) if console is None else console
        if not (console.is_terminal or console.is_jupyter):
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns: list[Any] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
        ]
        columns += [TextColumn(text) for text in texts]
        if elapsed:
            columns.append(TimeElapsedColumn())
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=console)
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, completed=completed, **(fields or {})
        )

    @property
    def enabled(self) -> bool:
        """Whether a bar is shown."""
        return self._progress is not None

    def update(
        self,
        completed: int | None = None,
        *,
        total: int | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        """Set the units done (and optionally the total, the description, template fields)."""
        if self._progress is None:
            return
        changes: dict[str, Any] = dict(fields)
        if completed is not None:
            changes["completed"] = completed
        if total is not None:
            changes["total"] = total
        if description is not None:
            changes["description"] = description
        self._progress.update(self._task, **changes)

    def advance(self, n: float = 1) -> None:
        """``n`` more units done."""
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        """Stop drawing (the bar's last state stays on the terminal)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
