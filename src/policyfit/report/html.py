"""One self-contained HTML report for datasets and training runs (``policyfit report``).

Everything is inline — CSS, and plots as base64 PNG — so the file can be mailed, attached to an
issue or opened offline. It is written to a temporary file and renamed into place.

Example:
    >>> write_report(["hopper-medium"], "report.html")                              # doctest: +SKIP
    >>> write_report(["runs/iql-hopper-medium-s0", "runs/bc-hopper-medium-s0"], "runs.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policyfit.common.files import atomic_write_text
from policyfit.diagnostics.render import fmt, measure_rows
from policyfit.errors import ConfigError, PolicyfitError
from policyfit.report import plots
from policyfit.report.runs import Run, is_run_dir, load_run
from policyfit.training.rundir import RunDir

if TYPE_CHECKING:
    from policyfit.data.dataset import Dataset
    from policyfit.diagnostics.card import DataCard

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { background: #eef7ee; border-left: 5px solid #3a3; padding: .6em 1em; margin: 1em 0; }
.verdict p { margin: .3em 0; }
.note { color: #777; font-size: .88em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.plots figure { margin: 0; } figcaption { font-size: .85em; color: #555; text-align: center; }
img.plot { max-width: 100%; border: 1px solid #eee; }
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool] | None = None
) -> str:
    """An HTML table; ``numeric[i]`` right-aligns column ``i`` (class ``num``)."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if numeric[i] else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(uri: str | None, caption: str, plot_id: str) -> str:
    if uri is None:
        return f'<p class="note">({esc(caption)}: not enough data to plot)</p>'
    return (
        f'<figure><img class="plot" id="{esc(plot_id)}" src="{uri}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


# ------------------------------------------------------------------------------------- datasets
def dataset_section(dataset: Dataset, card: DataCard, index: int = 0) -> str:
    """The data card of one dataset, with its plots, as an HTML ``<section>``."""
    s = card.summary
    parts = [
        f'<section class="dataset" id="dataset-{index}">',
        f"<h2>Dataset: {esc(card.source)}</h2>",
    ]
    parts.append(
        '<div class="verdict">' + "".join(f"<p>{esc(v)}</p>" for v in card.verdict) + "</div>"
    )
    parts.append(
        table(
            [
                "environment",
                "transitions",
                "episodes",
                "obs dim",
                "action dim",
                "terminals",
                "timeouts",
            ],
            [
                [
                    card.env_id or "unknown",
                    fmt(s["transitions"]),
                    fmt(s["episodes"]),
                    s["observation_dim"],
                    str(s["action_dim"]) + (" (discrete)" if s["discrete"] else ""),
                    fmt(s["terminals"]),
                    fmt(s["timeouts"]),
                ]
            ],
            [False, True, True, True, True, True, True],
        )
    )
    parts.append("<h3>Quality measures</h3>")
    parts.append(table(["measure", "value", "detail"], measure_rows(card), [False, True, False]))

    returns = dataset.episode_returns()
    plot_html = [
        figure(
            plots.plot_or_none(
                plots.histogram_png, returns, "episode return", "episodes", "Episode returns"
            ),
            "return histogram",
            f"plot-returns-{index}",
        ),
        figure(
            plots.plot_or_none(
                plots.histogram_png,
                dataset.episode_lengths,
                "episode length",
                "episodes",
                "Episode lengths",
            ),
            "episode lengths",
            f"plot-lengths-{index}",
        ),
        figure(
            plots.plot_or_none(plots.coverage_png, dataset, card.reference),
            "state coverage (principal axes)",
            f"plot-coverage-{index}",
        ),
    ]
    if card.flags is not None and card.anomalies["counts"]["any"]:
        plot_html.append(
            figure(
                plots.plot_or_none(plots.anomalies_png, card.flags, dataset.episode_ends),
                "where the flagged transitions are",
                f"plot-anomalies-{index}",
            )
        )
    parts.append('<h3>Plots</h3><div class="plots">' + "".join(plot_html) + "</div>")

    parts.append("<h3>Distributions</h3>")
    rows = []
    for key in ("episode_returns", "normalized_returns", "episode_lengths", "rewards"):
        d = card.distributions.get(key)
        if d:
            rows.append(
                [key.replace("_", " ")]
                + [fmt(d[c], 2) for c in ("mean", "std", "min", "p25", "median", "p75", "max")]
            )
    parts.append(
        table(
            ["quantity", "mean", "std", "min", "p25", "median", "p75", "max"],
            rows,
            [False] + [True] * 7,
        )
    )

    parts.append('<h3>State and action marginals</h3><div class="plots">')
    parts.append(
        figure(
            plots.plot_or_none(plots.marginals_png, dataset.observations, "obs"),
            "observation marginals",
            f"plot-obs-marginals-{index}",
        )
    )
    if not dataset.discrete:
        parts.append(
            figure(
                plots.plot_or_none(plots.marginals_png, dataset.actions, "action"),
                "action marginals",
                f"plot-action-marginals-{index}",
            )
        )
    parts.append("</div>")

    parts.append("<h3>Per-dimension ranges</h3>")
    dim_rows = [
        [name, row["dim"], *(fmt(row[c], 3) for c in ("min", "max", "mean", "std"))]
        for name, rows_ in card.dimensions.items()
        for row in rows_
        if "dim" in row
    ]
    parts.append(
        table(["array", "dim", "min", "max", "mean", "std"], dim_rows, [False] + [True] * 5)
    )

    examples = card.anomalies.get("examples") or []
    if examples:
        parts.append("<h3>Most anomalous transitions</h3>")
        parts.append(
            table(
                ["index", "episode", "step", "flags", "score"],
                [
                    [e["index"], e["episode"], e["step"], ", ".join(e["types"]), fmt(e["score"], 1)]
                    for e in examples
                ],
                [True, True, True, False, True],
            )
        )
    pr = card.anomalies.get("precision_recall")
    if pr:
        parts.append("<h3>Flags against the stored corruption mask</h3>")
        pr_rows = [
            [name, fmt(v["tp"]), fmt(v["fp"]), fmt(v["fn"]), fmt(v["precision"]), fmt(v["recall"])]
            for name, v in pr.items()
            if isinstance(v, dict) and "tp" in v
        ]
        parts.append(
            table(["flag", "TP", "FP", "FN", "precision", "recall"], pr_rows, [False] + [True] * 5)
        )
    for note in card.anomalies.get("notes", []):
        parts.append(f'<p class="note">note: {esc(note)}</p>')
    provenance = dataset.metadata.get("card")
    if isinstance(provenance, dict) and provenance:
        parts.append("<h3>Provenance (the dataset's own card)</h3>")
        parts.append(
            table(
                ["field", "value"],
                [
                    [k, v if isinstance(v, str) else json.dumps(v, default=str)]
                    for k, v in provenance.items()
                ],
            )
        )
    parts.append(
        f"<details><summary>data card (JSON)</summary><pre>{esc(json.dumps(card.to_dict(), indent=1))}</pre></details>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def datasets_comparison(cards: Sequence[DataCard]) -> str:
    """One row per dataset: the measures side by side, and TQ against SACo as a scatter plot
    (the plane Schweighofer et al. 2022 use to explain which algorithm suits which data)."""
    rows = [
        [
            c.source,
            fmt(c.summary["transitions"]),
            fmt(c.tq.get("value")),
            fmt(c.coverage.get("saco")),
            fmt(c.coverage.get("lsaco")),
            fmt(c.action_consistency.get("consistency")),
            f"{c.anomalies['fraction']:.2%}",
        ]
        for c in cards
    ]
    parts = [
        '<section class="datasets-comparison">',
        f"<h2>Datasets compared ({len(cards)})</h2>",
        table(
            ["dataset", "transitions", "TQ", "SACo", "lSACo", "action consistency", "flagged"],
            rows,
            [False] + [True] * 6,
        ),
    ]
    points = [
        (c.source, c.tq.get("value"), c.coverage.get("saco"))
        for c in cards
        if c.tq.get("value") is not None and c.coverage.get("saco") is not None
    ]
    if points:
        parts.append(
            '<div class="plots">'
            + figure(
                plots.plot_or_none(plots.tq_saco_png, points),
                "TQ vs SACo",
                "plot-tq-saco",
            )
            + "</div>"
        )
    parts.append("</section>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- runs
def runs_section(runs: Sequence[Run]) -> str:
    """Learning curves of each run and, for several runs, a comparison table and plot."""
    parts = [
        '<section class="runs">',
        f"<h2>Training runs ({len(runs)})</h2>",
        runs_table(runs),
        '<div class="plots">' + "".join(runs_plots(runs)) + "</div>",
    ]
    for i, run in enumerate(runs):
        parts.extend(run_details(run, i))
    parts.append("</section>")
    return "\n".join(parts)


def runs_table(runs: Sequence[Run]) -> str:
    """One row per run: algorithm, dataset, steps, final and best normalized score, wall time."""
    rows = []
    for run in runs:
        final, best = run.final_and_best()
        steps = run.summary.get("steps") or (run.metrics[-1]["step"] if run.metrics else None)
        rows.append(
            [
                run.name,
                run.algorithm or "?",
                run.dataset or "?",
                fmt(steps),
                fmt(final, 1),
                fmt(best, 1),
                fmt(run.summary.get("wall_seconds"), 0),
            ]
        )
    return table(
        [
            "run",
            "algorithm",
            "dataset",
            "steps",
            "final normalized score",
            "best normalized score",
            "wall s",
        ],
        rows,
        [False, False, False, True, True, True, True],
    )


def runs_plots(runs: Sequence[Run]) -> list[str]:
    """The learning curves of all runs, their final scores side by side, performance profiles."""
    plot_html = []
    curves = learning_curves_figure(runs)
    if curves is not None:
        plot_html.append(curves)
    finals = [run.final_and_best()[0] for run in runs]
    if len(runs) > 1 and any(f is not None for f in finals):
        plot_html.append(
            figure(
                plots.plot_or_none(
                    plots.bars_png,
                    [r.name for r in runs],
                    finals,
                    "normalized score",
                    "Final score per run",
                ),
                "comparison of final scores",
                "plot-comparison",
            )
        )
    profile = performance_profile_figure(runs)
    if profile is not None:
        plot_html.append(profile)
    return plot_html


def learning_curves_figure(runs: Sequence[Run]) -> str | None:
    """The evaluation score of every run against training steps; None when no run has one."""
    score_curves = []
    for run in runs:
        key = run.score_key()
        if key is not None:
            x, y = run.curve(key)
            score_curves.append((run.name, x, y))
    if not score_curves:
        return None
    keys = [r.score_key() for r in runs if r.score_key()]
    ylabel = "normalized score" if all(k == SCORE for k in keys) else "score"
    return figure(
        plots.plot_or_none(plots.curves_png, score_curves, ylabel, "Evaluation during training"),
        "learning curves",
        "plot-learning-curves",
    )


def run_details(run: Run, index: int) -> list[str]:
    """One run's own part: its losses, summary.json, OPE estimates, certificate and notes."""
    parts = [f'<h3 id="run-{index}">{esc(run.name)}</h3>']
    losses = [(k, *run.curve(k)) for k in run.loss_keys()]
    losses = [(k, x, y) for k, x, y in losses if len(x)]
    if losses:
        parts.append(
            '<div class="plots">'
            + figure(
                plots.plot_or_none(
                    plots.small_multiples_png, losses, f"Training losses: {run.name}"
                ),
                f"losses of {run.name}",
                f"plot-losses-{index}",
            )
            + "</div>"
        )
    scalars = [
        [k, fmt(v) if isinstance(v, int | float) else str(v)]
        for k, v in run.summary.items()
        if isinstance(v, int | float | str)
    ]
    if scalars:
        parts.append(
            "<details><summary>summary.json</summary>"
            + table(["key", "value"], scalars, [False, True])
            + "</details>"
        )
    ope = ope_table(run)
    if ope:
        parts.append(ope)
    parts.extend(certificate_parts(run, index))
    for note in run.notes:
        parts.append(f'<p class="note">note: {esc(note)}</p>')
    return parts


SCORE = "eval/normalized_score"


def ope_table(run: Run) -> str | None:
    """The run's stored FQE estimates (``policyfit ope`` writes ``ope.json``) beside its own score.

    Read through :meth:`RunDir.read_ope`; None when the run has no ``ope.json``, a note when the
    file holds no readable estimate.
    """
    run_dir = RunDir(run.path)
    estimates = run_dir.read_ope()
    if not estimates:
        if run_dir.ope_path.is_file():
            where = esc(str(run_dir.ope_path))
            return f'<p class="note">note: {where} has no readable estimates; skipped</p>'
        return None

    def interval(value: Any, ci: Any) -> str:
        if value is None:
            return "n/a"
        if not ci:
            return fmt(value)
        return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"

    rollout = run.summary.get("final_normalized_score")
    rows = [
        [
            str(e.get("dataset", "?")),
            interval(e.get("normalized_score"), e.get("normalized_ci")),
            interval(e.get("return_estimate"), e.get("return_ci")),
            fmt(rollout) if isinstance(rollout, int | float) else "n/a",
            "yes" if e.get("in_bounds", True) else "no (extrapolating)",
        ]
        for e in estimates
    ]
    return f"<h4>Off-policy estimate (FQE, Le et al. 2019) of {esc(run.name)}</h4>" + table(
        [
            "dataset",
            "estimated normalized score [95% CI]",
            "estimated return [95% CI]",
            "rollout normalized score",
            "within value bounds",
        ],
        rows,
        [False, True, True, True, False],
    )


def certificate_parts(run: Run, index: int) -> list[str]:
    """The run's smoothing certificate (``policyfit certify``): its table and its plot, if stored.

    The numbers come from :meth:`RunDir.read_certificate`, the plot from ``certificate.png``.
    """
    run_dir = RunDir(run.path)
    parts = []
    cert = run_dir.read_certificate()
    rows = cert.get("rows") if cert else None
    if isinstance(rows, list) and rows:
        budget = cert.get("budget")
        parts.append(
            f"<h4>Policy-smoothing certificate of {esc(run.name)} (budget {esc(fmt(budget))}, "
            f"alpha {esc(fmt(cert.get('alpha')))})</h4>"
            + table(
                ["sigma", "clean return", "certified bound at budget", "attacked return"],
                [
                    [
                        fmt(r.get("sigma")),
                        fmt(r.get("clean_return_mean"), 1),
                        fmt(r.get("bound_at_budget"), 1),
                        fmt(r.get("attacked_return_mean"), 1),
                    ]
                    for r in rows
                    if isinstance(r, dict)
                ],
                [True, True, True, True],
            )
        )
    png = run_dir.certificate_plot_path
    if png.is_file():
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        parts.append(
            '<div class="plots">'
            + figure(
                uri,
                f"policy-smoothing certificate of {run.name} (policyfit certify)",
                f"plot-certificate-{index}",
            )
            + "</div>"
        )
    return parts


def performance_profile_figure(runs: Sequence[Run]) -> str | None:
    """Performance profiles (Agarwal et al. 2021) of the final scores, one curve per algorithm.

    Runs are grouped by algorithm; each dataset is a task and its seeds are the task's runs. Only
    algorithms that cover the same datasets are compared; None when fewer than two runs qualify.
    """
    from policyfit.evaluation.stats import (
        figure_png_bytes,
        performance_profile,
        plot_performance_profiles,
    )

    table_: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        final = run.final_and_best()[0]
        if final is not None and np.isfinite(final):
            per_task = table_.setdefault(run.algorithm or "?", {})
            per_task.setdefault(run.dataset or "?", []).append(float(final))
    if sum(len(v) for tasks in table_.values() for v in tasks.values()) < 2:
        return None
    shared = set.intersection(*(set(tasks) for tasks in table_.values()))
    if not shared:
        return None
    scores = {algo: [tasks[d] for d in sorted(shared)] for algo, tasks in table_.items()}
    try:
        fig = plot_performance_profiles(performance_profile(scores, reps=500))
        uri = "data:image/png;base64," + base64.b64encode(figure_png_bytes(fig)).decode()
    except Exception as exc:  # a plot must never break the report
        return f'<p class="note">performance profile unavailable: {esc(exc)}</p>'
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    return figure(
        uri,
        f"performance profiles over {len(shared)} dataset(s), 95% stratified-bootstrap bands",
        "plot-performance-profile",
    )


# ------------------------------------------------------------------------------------- page
def page(title: str, sections: Sequence[str]) -> str:
    from policyfit import __version__

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="note">policyfit {esc(__version__)}, {stamp}</p>'
        + "\n".join(sections)
        + "</body></html>\n"
    )


def write_html(text: str, out: str | Path) -> Path:
    """Write atomically (:func:`policyfit.common.files.atomic_write_text`), readable by others."""
    return atomic_write_text(out, text)


def _bandit_part(target: str | os.PathLike, index: int) -> str | None:
    """The bandit section for a file of bandit feedback or a generations result, else None."""
    import json

    from policyfit.report import bandit

    if bandit.is_bandit_feedback_file(target):
        from policyfit.bandit.feedback import load_feedback

        return bandit.feedback_section(load_feedback(target), index, table, figure, esc)
    if bandit.is_generations_file(target):
        result = json.loads(Path(target).read_text())
        return bandit.generations_section(result, index, figure, esc)
    return None


def _sort_targets(targets: Sequence[Any]) -> tuple[list[Run], list[Dataset], list[str]]:
    """Runs, datasets and the finished bandit sections, from what the user named."""
    from policyfit.data.dataset import Dataset
    from policyfit.envs.datasets import load_dataset

    runs: list[Run] = []
    datasets: list[Dataset] = []
    bandit_parts: list[str] = []
    for t in targets:
        if isinstance(t, Run):
            runs.append(t)
        elif isinstance(t, Dataset):
            datasets.append(t)
        elif not isinstance(t, str | os.PathLike):
            raise ConfigError(
                f"a report target is a run directory, a dataset path or name, a Dataset or a Run, "
                f"not {type(t).__name__} {t!r}",
                field="targets",
            )
        elif (part := _bandit_part(t, len(bandit_parts))) is not None:
            bandit_parts.append(part)
        elif is_run_dir(t):
            runs.append(load_run(t))
        else:
            datasets.append(load_dataset(t))
    return runs, datasets, bandit_parts


def build_report(
    targets: Sequence[str | Path | Dataset | Run],
    reference: str | Path | Dataset | None = "auto",
    ref_scores: tuple[float, float] | None = None,
    title: str | None = None,
) -> str:
    """The report's HTML for run directories and datasets (paths, suite names or objects).

    ``reference`` is SACo's reference for every dataset: ``"auto"`` (the suite's
    ``<env>-medium-replay`` when built), a path/name, a Dataset, or ``None``.
    """
    from policyfit.data.dataset import Dataset
    from policyfit.diagnostics.card import diagnose
    from policyfit.envs.datasets import load_dataset, suite_reference

    if not (reference is None or isinstance(reference, Dataset | str | os.PathLike)):
        raise ConfigError(
            f"must be 'auto', a dataset path or name, a Dataset or None, not "
            f"{type(reference).__name__} {reference!r}",
            field="reference",
        )
    runs, datasets, bandit_parts = _sort_targets(targets)
    ref_ds: Dataset | str | None = reference
    if reference is not None and not isinstance(reference, Dataset) and reference != "auto":
        ref_ds = load_dataset(reference)
    sections = []
    if runs:
        sections.append(runs_section(runs))
    cards = [
        diagnose(ds, reference=ref_ds, ref_scores=ref_scores, reference_resolver=suite_reference)
        for ds in datasets
    ]
    if len(datasets) > 1:
        sections.append(datasets_comparison(cards))
    for i, (ds, card) in enumerate(zip(datasets, cards, strict=True)):
        sections.append(dataset_section(ds, card, index=i))
    sections.extend(bandit_parts)
    if title is None:
        names = [r.name for r in runs] + [d.source for d in datasets]
        names += [Path(t).name for t in targets if isinstance(t, str | os.PathLike)][
            : 4 - len(names)
        ]
        names = list(dict.fromkeys(names))
        title = (
            "policyfit report: "
            + ", ".join(str(n) for n in names[:4])
            + (" ..." if len(names) > 4 else "")
        )
    return page(title, sections)


def write_report(
    targets: Sequence[str | Path | Dataset | Run],
    out: str | Path = "report.html",
    reference: str | Path | Dataset | None = "auto",
    ref_scores: tuple[float, float] | None = None,
    title: str | None = None,
) -> Path:
    """Build the report for ``targets`` and write it to ``out`` (atomically); returns the path."""
    if not targets:
        raise PolicyfitError(
            "nothing to report: give at least one run directory or dataset", field="targets"
        )
    return write_html(build_report(targets, reference, ref_scores, title), out)
