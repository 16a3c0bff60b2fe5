"""A report for people: text tables for terminals, HTML for notebooks, a pandas frame and a plot.

Predictions are model output, so nothing of theirs reaches a terminal or a page raw: control
characters (terminal escape codes among them) are written as escapes, and HTML is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._batch._results import usd
from .._utils import require

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ._report import EvalReport
    from ._summary import Comparison, VariantSummary
    from ._types import Cell

__all__ = ["comparison_html", "plot", "report_html", "rows_table", "summary_table", "to_pandas"]

# C0 and C1 control characters, DEL included, shown as their escapes.
_CONTROL = {code: repr(chr(code))[1:-1] for code in (*range(32), *range(127, 160))}


def clean(value: Any, width: int | None = None) -> str:
    """``value`` on one plain line: strings as they are, anything else as its repr, control
    characters escaped, cut to ``width`` characters with an ellipsis.

    >>> clean("a\\x1b[31mred\\nline", 12)
    'a\\\\x1b[31mre…'
    """
    text = value if isinstance(value, str) else repr(value)
    text = text.translate(_CONTROL)
    if width is not None and len(text) > width:
        text = text[: max(0, width - 1)] + "…"
    return text


def _grid(header: Sequence[str], lines: Sequence[Sequence[str]], *, left: int = 1) -> str:
    """Aligned columns: the first ``left`` columns flush left, the rest flush right."""
    widths = [max([len(header[i]), *(len(line[i]) for line in lines)]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def _cost(cost: float | None) -> str:
    return "unknown" if cost is None else usd(cost)


def _methods(report: EvalReport, metric: str) -> str:
    methods = sorted({report.summary(v).metrics[metric].method for v in report.variants})
    return "/".join(methods)


def _summary_cells(summary: VariantSummary, judged: bool) -> list[str]:
    cells = [str(m) for m in summary.metrics.values()]
    cells += [
        f"{summary.parse_failure_rate:.1%}",
        f"{summary.error_rate:.1%}",
        f"{summary.usage.total_tokens:,}",
        _cost(summary.cost),
    ]
    if judged:
        cells.append(_cost(summary.judge_cost))
    cells.append("n/a" if summary.latency is None else f"{summary.latency.p50:.2f} s")
    return cells


def _summary_header(report: EvalReport, judged: bool) -> list[str]:
    header = ["variant", *(f"{m} ({_methods(report, m)})" for m in report.metrics)]
    header += ["parse fail", "errors", "tokens", "cost"]
    if judged:
        header.append("judge cost")
    header.append("p50 latency")
    return header


def _judged(report: EvalReport) -> bool:
    return any(s.judge_cost != 0.0 or s.judge_usage.total_tokens for s in report.summaries.values())


def summary_table(report: EvalReport) -> str:
    """Variants as lines: each metric's mean [low, high], parse failures, errors, tokens, cost, latency."""
    judged = _judged(report)
    header = _summary_header(report, judged)
    lines = [[clean(variant, 40), *_summary_cells(report.summary(variant), judged)] for variant in report.variants]
    title = (
        f"{len(report.variants)} variants x {len(report.rows)} rows"
        + (f", {report.epochs} epochs ({report.reducer})" if report.epochs > 1 else "")
        + f"; means with {report.confidence:.0%} intervals"
    )
    excluded = {v: n for v, n in report.exclusions.items() if n}
    notes = []
    if excluded:
        shown = ", ".join(f"{clean(v, 40)} {n}" for v, n in excluded.items())
        notes.append(f"few-shot examples excluded to avoid leaking answers: {shown}")
    return "\n".join([title, _grid(header, lines), *notes])


def _score(value: float | None, cell: Cell) -> str:
    if value is None:
        return cell.status
    return f"{value:.3g}"


def rows_table(report: EvalReport, row_ids: Sequence[str] | None, metrics: Sequence[str], width: int) -> str:
    """One line per row: each variant's prediction beside its scores."""
    ids = list(report._index) if row_ids is None else list(row_ids)
    header = ["row"]
    for variant in report.variants:
        name = clean(variant, 30)
        header.append(name)
        header += [f"{clean(metric, 30)}" for metric in metrics]
    lines = []
    for row_id in ids:
        line = [clean(row_id, 30)]
        for variant in report.variants:
            cell = report.cell(variant, row_id)
            shown = cell.prediction if cell.status in ("ok", "parse_error") else f"<{cell.status}>"
            if cell.prediction is None and cell.status == "parse_error":
                text = next((t.text for t in cell.trials if t.text is not None), None)
                shown = f"<unparsed: {clean(text)}>" if text is not None else "<parse_error>"
            line.append(clean(shown, width))
            line += [_score(cell.scores.get(metric), cell) for metric in metrics]
        lines.append(line)
    # the prediction columns read best flush left, scores flush right: align by hand
    per_variant = 1 + len(metrics)
    widths = [max([len(header[i]), *(len(line[i]) for line in lines)]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        parts = []
        for i, (text, w) in enumerate(zip(cells, widths, strict=True)):
            flush_left = i == 0 or (i - 1) % per_variant == 0
            parts.append(text.ljust(w) if flush_left else text.rjust(w))
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def _table_html(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_html(report: EvalReport, *, rows: int = 20) -> str:
    """The summary table, then the first ``rows`` rows side by side under a disclosure."""
    judged = _judged(report)
    header = _summary_header(report, judged)
    lines = [[variant, *_summary_cells(report.summary(variant), judged)] for variant in report.variants]
    title = html.escape(
        f"{len(report.variants)} variants x {len(report.rows)} rows; means with {report.confidence:.0%} intervals"
    )
    row_header = ["row"]
    for variant in report.variants:
        row_header += [variant, *report.metrics]
    row_lines = []
    for row in report.rows[:rows]:
        line = [row.id]
        for variant in report.variants:
            cell = report.cell(variant, row.id)
            line.append(clean(cell.prediction, 200) if cell.status in ("ok", "parse_error") else f"<{cell.status}>")
            line += [_score(cell.scores.get(metric), cell) for metric in report.metrics]
        row_lines.append(line)
    shown = f"first {rows} of {len(report.rows)} rows" if len(report.rows) > rows else f"{len(report.rows)} rows"
    return (
        f"<div><b>EvalReport</b> ({title}){_table_html(header, lines)}"
        f"<details><summary>{html.escape(shown)}</summary>{_table_html(row_header, row_lines)}</details></div>"
    )


def comparison_html(comparison: Comparison) -> str:
    """A comparison's figures and its changed rows, escaped."""
    c = comparison
    facts = [
        ("metric", c.metric),
        ("effect", f"{c.b} - {c.a} = {c.effect:+.3f} [{c.low:.3f}, {c.high:.3f}] ({c.confidence:.0%})"),
        ("test", f"{c.test_name}, p = {c.p_value:.3g}"),
        ("rows", f"{len(c.improved)} improved, {len(c.regressed)} regressed, {len(c.ties)} tied of {c.n} paired"),
    ]
    if c.unpaired:
        facts.append(("unpaired", f"{c.unpaired} rows (an error on either side)"))
    table = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts
    )
    changed = ""
    for label, ids in (("regressed", c.regressed), ("improved", c.improved)):
        if ids:
            shown = ", ".join(html.escape(i) for i in ids[:50]) + (" …" if len(ids) > 50 else "")
            changed += f"<details><summary>{label} ({len(ids)})</summary>{shown}</details>"
    return f"<div><b>Comparison</b><table>{table}</table>{changed}</div>"


def _costs(cells: Sequence[Cell]) -> tuple[float | None, float | None]:
    cost: float | None = 0.0
    seconds: float | None = None
    for cell in cells:
        for trial in cell.trials:
            if cost is not None:
                cost = None if trial.cost is None else cost + trial.cost
            if trial.seconds is not None:
                seconds = (seconds or 0.0) + trial.seconds
    return cost, seconds


def to_pandas(report: EvalReport) -> Any:
    """One frame line per (row, variant); see :meth:`EvalReport.to_pandas`."""
    pandas = require("pandas", extra="pandas")
    fixed = {"row_id", "variant", "expected", "prediction", "status", "input_tokens", "output_tokens", "cost"}
    fixed |= {"seconds", "error"}
    inputs = list(dict.fromkeys(name for row in report.rows for name in row.inputs))
    score_names = {m: (f"score.{m}" if m in fixed or m.startswith("input.") else m) for m in report.metrics}
    records = []
    for variant in report.variants:
        for row, cell in zip(report.rows, report.cells[variant], strict=True):
            usage = cell.usage
            cost, seconds = _costs((cell,))
            record: dict[str, Any] = {"row_id": row.id, "variant": variant}
            for name in inputs:
                record[f"input.{name}"] = row.inputs.get(name)
            record["expected"] = row.expected if row.has_expected else None
            record["prediction"] = cell.prediction
            record["status"] = cell.status
            for metric, column in score_names.items():
                record[column] = cell.scores.get(metric)
            record["input_tokens"] = usage.input_tokens
            record["output_tokens"] = usage.output_tokens
            record["cost"] = cost
            record["seconds"] = seconds
            record["error"] = next((t.error for t in cell.trials if t.error is not None), None)
            records.append(record)
    columns = ["row_id", "variant", *(f"input.{n}" for n in inputs), "expected", "prediction", "status"]
    columns += [*score_names.values(), "input_tokens", "output_tokens", "cost", "seconds", "error"]
    return pandas.DataFrame.from_records(records, columns=columns)


def plot(report: EvalReport, metric: str, ax: Axes | None) -> Axes:
    """Each variant's mean of ``metric`` against its cost, the interval as error bars."""
    require("matplotlib", extra="plot")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    summaries = [report.summary(variant) for variant in report.variants]
    by_cost = all(s.cost is not None for s in summaries)
    missing = []
    for summary in summaries:
        m = summary.metrics[metric]
        if m.mean is None or m.low is None or m.high is None:
            missing.append(summary.variant)
            continue
        x = float(summary.cost if summary.cost is not None else summary.usage.total_tokens)
        ax.errorbar(
            [x], [m.mean], yerr=[[m.mean - m.low], [m.high - m.mean]], fmt="o", capsize=4, label=summary.variant
        )
        ax.annotate(summary.variant, (x, m.mean), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel("cost (USD)" if by_cost else "tokens (a price is unknown)")
    ax.set_ylabel(f"{metric}: mean, {report.confidence:.0%} interval")
    title = f"{metric} against cost" if by_cost else f"{metric} against tokens"
    if missing:
        title += f" (no scores: {', '.join(missing)})"
    ax.set_title(title)
    if len(summaries) > len(missing):
        ax.legend()
    return ax
