"""Rich rendering of a :class:`~policyfit.diagnostics.card.DataCard` (what ``data inspect --full`` prints).

Example:
    >>> from rich.console import Console
    >>> Console().print(card)          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from policyfit.diagnostics.card import DataCard


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers for humans: ``None`` as n/a, floats with ``digits`` significant decimals."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != x:
            return "n/a"
        if abs(x) >= 1e4 or (0 < abs(x) < 1e-3):
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}"
    return str(x)


def measure_rows(card: DataCard) -> list[tuple[str, str, str]]:
    """(measure, value, detail) rows shared by the terminal card and the HTML report."""
    tq, cov = card.tq, card.coverage
    cons, div = card.action_consistency, card.transition_diversity
    an = card.anomalies
    rows = [
        (
            "TQ (trajectory quality)",
            fmt(tq.get("value")),
            f"random {fmt(tq.get('ref_min_score'), 1)}, expert {fmt(tq.get('ref_max_score'), 1)} "
            f"({tq.get('source')})"
            if tq.get("value") is not None
            else str(tq.get("reason")),
        ),
        (
            "SACo (state-action coverage)",
            fmt(cov.get("saco")),
            f"{fmt(cov.get('unique_pairs'))} / {fmt(cov.get('reference_unique_pairs'))} unique pairs "
            f"vs {cov.get('reference')} ({cov.get('bins')} bins, "
            f"{'exact' if cov.get('exact') else 'HyperLogLog'})"
            if cov.get("saco") is not None
            else str(cov.get("reason")),
        ),
        ("lSACo (log coverage)", fmt(cov.get("lsaco")), "log u(D) / log u(reference)"),
        (
            "action consistency",
            fmt(cons.get("consistency")),
            f"1 - divergence; divergence {fmt(cons.get('divergence'))} of random pairs "
            f"(k={cons.get('k')}, {fmt(cons.get('sample_size'))} states)",
        ),
        (
            "transition diversity",
            fmt(div.get("diversity")),
            f"next-state spread of neighbouring (s, a) vs random pairs (k={div.get('k')})",
        ),
        (
            "anomalous transitions",
            f"{fmt(an['counts']['any'])} ({an['fraction']:.2%})",
            ", ".join(f"{k} {fmt(v)}" for k, v in an["counts"].items() if k != "any"),
        ),
    ]
    pr = an.get("precision_recall")
    if pr is not None:
        rows.append(
            (
                "flags vs corruption mask",
                f"P {fmt(pr['any']['precision'])} / R {fmt(pr['any']['recall'])}",
                f"{fmt(pr['corrupted'])} corrupted transitions in the stored mask",
            )
        )
    return rows


def card_renderable(card: DataCard) -> Group:
    """The whole card for a rich console: verdict, summary, measures, tables and notes."""
    parts: list[Any] = [
        Panel("\n".join(card.verdict), title="Verdict", border_style="green"),
        _header_table(card),
        _measures_table(card),
        _distributions_table(card),
    ]
    examples = card.anomalies.get("examples") or []
    if examples:
        parts.append(_examples_table(examples))
    parts.append(_dimensions_table(card))
    for note in card.anomalies.get("notes", []):
        parts.append(f"[dim]note: {note}[/dim]")
    return Group(*parts)


def _header_table(card: DataCard) -> Table:
    s = card.summary
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("source", str(card.source))
    head.add_row("environment", str(card.env_id))
    head.add_row(
        "size",
        f"{fmt(s['transitions'])} transitions, {fmt(s['episodes'])} episodes, "
        f"obs dim {s['observation_dim']}, action dim {s['action_dim']}"
        + (" (discrete)" if s["discrete"] else ""),
    )
    head.add_row("terminals / timeouts", f"{fmt(s['terminals'])} / {fmt(s['timeouts'])}")
    return head


def _measures_table(card: DataCard) -> Table:
    measures = Table(title="Quality measures", show_lines=False)
    measures.add_column("measure", style="bold")
    measures.add_column("value", justify="right")
    measures.add_column("detail", style="dim")
    for row in measure_rows(card):
        measures.add_row(*row)
    return measures


def _distributions_table(card: DataCard) -> Table:
    dist = Table(title="Distributions")
    dist.add_column("quantity", style="bold")
    for col in ("mean", "std", "min", "median", "max"):
        dist.add_column(col, justify="right")
    for key in ("episode_returns", "normalized_returns", "episode_lengths", "rewards"):
        d = card.distributions.get(key)
        if d:
            dist.add_row(
                key.replace("_", " "),
                *(fmt(d[c], 2) for c in ("mean", "std", "min", "median", "max")),
            )
    return dist


def _dimensions_table(card: DataCard) -> Table:
    dims = Table(title="Per-dimension ranges")
    dims.add_column("array", style="bold")
    dims.add_column("dim", justify="right")
    for col in ("min", "max", "mean", "std"):
        dims.add_column(col, justify="right")
    for name, table in card.dimensions.items():
        for row in table:
            if "dim" in row:
                dims.add_row(
                    name, str(row["dim"]), *(fmt(row[c], 3) for c in ("min", "max", "mean", "std"))
                )
    return dims


def _examples_table(examples: list[dict[str, Any]]) -> Table:
    ex = Table(title="Most anomalous transitions")
    for col in ("index", "episode", "step", "flags", "score"):
        ex.add_column(col, justify="right" if col != "flags" else "left")
    for e in examples[:10]:
        ex.add_row(
            str(e["index"]),
            str(e["episode"]),
            str(e["step"]),
            ", ".join(e["types"]),
            fmt(e["score"], 1),
        )
    return ex
