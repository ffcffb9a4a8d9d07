"""Matplotlib figures for reports, returned as base64 PNG data URIs (so a report is one file).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, no
global backend switch, nothing left open.

Example:
    >>> import numpy as np
    >>> uri = histogram_png(np.random.default_rng(0).normal(size=100), "return", "episodes")
    >>> uri.startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from policyfit.data.dataset import Dataset
    from policyfit.diagnostics.anomalies import AnomalyFlags

DPI = 90
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> str:
    """Render a figure to a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _draw(width: float, height: float, draw: Callable[[Axes], None]) -> str:
    fig = _figure(width, height)
    draw(fig.add_subplot())
    return figure_png(fig)


def histogram_png(
    values: np.ndarray, xlabel: str, ylabel: str, title: str = "", bins: int = 40
) -> str:
    """One histogram with its mean marked."""

    def draw(ax: Axes) -> None:
        v = np.asarray(values, dtype=np.float64)
        ax.hist(v, bins=bins, color=COLORS[0], alpha=0.85)
        ax.axvline(float(v.mean()), color=COLORS[1], ls="--", label=f"mean {v.mean():.4g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(frameon=False)

    return _draw(5.0, 3.2, draw)


def marginals_png(x: np.ndarray, name: str, max_dims: int = 24, sample: int = 200_000) -> str:
    """A grid of per-dimension histograms (first ``max_dims`` dimensions)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) > sample:
        x = x[np.random.default_rng(0).choice(len(x), sample, replace=False)]
    dims = min(x.shape[1], max_dims)
    cols = min(dims, 6)
    rows = -(-dims // cols)
    fig = _figure(1.9 * cols + 0.4, 1.5 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= dims:
            ax.set_visible(False)
            continue
        ax.hist(x[:, d], bins=30, color=COLORS[0] if name.startswith("obs") else COLORS[2])
        ax.set_title(f"{name}[{d}]", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    suffix = f" (first {dims} of {x.shape[1]})" if x.shape[1] > dims else ""
    fig.suptitle(f"{name} marginals{suffix}", fontsize=10)
    return figure_png(fig)


def coverage_png(dataset: Dataset, reference: Dataset | None, sample: int = 20_000) -> str:
    """States projected on their two principal axes: the dataset as density, the reference in grey."""
    rng = np.random.default_rng(0)

    def take(x: np.ndarray) -> np.ndarray:
        return x if len(x) <= sample else x[rng.choice(len(x), sample, replace=False)]

    obs = take(dataset.observations).astype(np.float64)
    ref = None if reference is None else take(reference.observations).astype(np.float64)
    both = obs if ref is None else np.concatenate([obs, ref])
    mean, std = both.mean(axis=0), np.maximum(both.std(axis=0), 1e-6)
    _, _, vt = np.linalg.svd((both - mean) / std, full_matrices=False)
    axes2 = vt[:2].T if vt.shape[0] >= 2 else np.eye(both.shape[1], 2)

    def draw(ax: Axes) -> None:
        p = ((obs - mean) / std) @ axes2
        if ref is not None:
            q = ((ref - mean) / std) @ axes2
            ax.scatter(q[:, 0], q[:, 1], s=2, c="#bbbbbb", alpha=0.5, label="reference", lw=0)
        hb = ax.hexbin(p[:, 0], p[:, 1], gridsize=50, bins="log", cmap="viridis", mincnt=1)
        ax.figure.colorbar(hb, ax=ax, label="log count (dataset)")
        ax.set_xlabel("principal axis 1 (standardized states)")
        ax.set_ylabel("principal axis 2")
        ax.set_title("state coverage" + (" vs reference (grey)" if ref is not None else ""))

    return _draw(5.6, 4.0, draw)


def anomalies_png(flags: AnomalyFlags, episode_ends: np.ndarray) -> str:
    """Where the flagged transitions are: one row of ticks per flag type along the dataset."""

    def draw(ax: Axes) -> None:
        for i, flag in enumerate(flags.flags.values()):
            idx = np.flatnonzero(flag)
            ax.scatter(idx, np.full(idx.shape, i), marker="|", s=120, color=COLORS[i % 8])
        ax.set_yticks(
            range(len(flags.flags)), [f"{k} ({int(v.sum())})" for k, v in flags.flags.items()]
        )
        n = len(next(iter(flags.flags.values())))
        ax.set_xlim(0, n)
        ax.set_ylim(-0.7, len(flags.flags) - 0.3)
        ax.set_xlabel("transition index")
        ax.set_title(f"flagged transitions ({len(episode_ends)} episodes)")

    return _draw(7.0, 2.4, draw)


def curves_png(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ylabel: str,
    title: str,
    log_y: bool = False,
) -> str:
    """Several (label, steps, values) curves on one axis."""

    def draw(ax: Axes) -> None:
        for i, (label, x, y) in enumerate(curves):
            ax.plot(
                x,
                y,
                color=COLORS[i % len(COLORS)],
                label=label,
                lw=1.5,
                marker="." if len(x) < 30 else None,
            )
        if log_y and all(np.all(np.asarray(y) > 0) for _, _, y in curves):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(curves) > 1 or curves and curves[0][0]:
            ax.legend(frameon=False, fontsize=8)

    return _draw(6.0, 3.4, draw)


def small_multiples_png(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, cols: int = 3
) -> str:
    """One small panel per (label, steps, values) curve, each on its own scale (losses differ by
    orders of magnitude and in sign, so one shared axis hides most of them); log scale where a
    positive curve spans more than a factor of 20."""
    cols = min(cols, len(curves))
    rows = -(-len(curves) // cols)
    fig = _figure(3.2 * cols + 0.3, 2.4 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= len(curves):
            ax.set_visible(False)
            continue
        label, x, y = curves[i]
        ax.plot(x, y, color=COLORS[i % len(COLORS)], lw=1.4, marker="." if len(x) < 30 else None)
        if np.all(y > 0) and y.max() > 20 * y.min():
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figure_png(fig)


def tq_saco_png(points: Sequence[tuple[str, float, float]]) -> str:
    """Datasets in the (SACo, TQ) plane of Schweighofer et al. 2022 (Fig. 1), labelled."""

    def draw(ax: Axes) -> None:
        for i, (label, tq, saco) in enumerate(points):
            ax.scatter([saco], [tq], color=COLORS[i % len(COLORS)], s=40)
            ax.annotate(
                str(label).split("/")[-1],
                (saco, tq),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
        ax.set_xlabel("SACo (state-action coverage)")
        ax.set_ylabel("TQ (trajectory quality)")
        ax.set_title("datasets by quality and coverage")
        ax.grid(alpha=0.3)

    return _draw(5.0, 4.0, draw)


def bars_png(labels: Sequence[str], values: Sequence[float], ylabel: str, title: str) -> str:
    """A bar chart (e.g. final normalized score per run)."""

    def draw(ax: Axes) -> None:
        vals = [np.nan if v is None else float(v) for v in values]
        ax.bar(range(len(vals)), vals, color=[COLORS[i % len(COLORS)] for i in range(len(vals))])
        ax.set_xticks(range(len(vals)), labels, rotation=20, ha="right", fontsize=8)
        for i, v in enumerate(vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)

    return _draw(max(4.0, 1.1 * len(labels) + 2), 3.4, draw)


def plot_or_none(make: Callable[..., str], *args: Any, **kwargs: Any) -> str | None:
    """Draw a plot; a plot that cannot be drawn (odd data) is left out rather than failing the report."""
    try:
        return make(*args, **kwargs)
    except (ValueError, np.linalg.LinAlgError, IndexError):
        return None
