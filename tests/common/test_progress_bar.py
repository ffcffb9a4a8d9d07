"""The one progress bar: drawn on a terminal with the columns asked for, silent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from policyfit.common.progress import ProgressBar


def _terminal(buf: io.StringIO) -> Console:
    return Console(file=buf, force_terminal=True, width=160, color_system=None)


def test_disabled_when_asked_or_not_a_terminal():
    assert not ProgressBar("x", 10, enabled=False).enabled
    not_a_tty = Console(file=io.StringIO(), force_terminal=False, force_jupyter=False)
    bar = ProgressBar("x", 10, console=not_a_tty)
    assert not bar.enabled
    bar.update(5, rate="1")  # no-ops, no errors
    bar.advance(2)
    bar.close()
    assert not_a_tty.file.getvalue() == ""


def test_trainer_columns_on_a_terminal():
    buf = io.StringIO()
    with ProgressBar(
        "bc hopper-medium",
        1000,
        completed=100,
        texts=("{task.fields[rate]} steps/s", "eval {task.fields[score]}"),
        fields={"rate": "-", "score": "-"},
        elapsed=True,
        console=_terminal(buf),
    ) as bar:
        assert bar.enabled
        bar.update(500, rate="12,345", score="42.0")
    text = buf.getvalue()
    for part in ("bc hopper-medium", "500/1000", "12,345 steps/s", "eval 42.0", "ETA"):
        assert part in text, part


def test_advance_retitle_and_total():
    buf = io.StringIO()
    bar = ProgressBar("trials", 4, console=_terminal(buf))
    bar.advance()
    bar.advance(2)
    bar.update(description="iql pretraining", total=10)
    bar.close()
    assert "iql pretraining" in buf.getvalue()
    assert "3/10" in buf.getvalue()
    bar.close()  # a second close is harmless
