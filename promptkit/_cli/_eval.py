"""``promptkit eval CONFIG``: every variant of a config on its dataset, scored, as a report.

The config (see :mod:`._config`) names the variants, the dataset and the metrics; this command
builds them, calls :func:`promptkit.evaluate` (or its ``dry_run`` estimate) and prints the
report's table and the paired comparison, or its JSON; ``--html`` and ``--output`` write it too.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import _options
from ._app import debug_option
from ._config import SUFFIXES
from ._options import _complete_model, json_option, model_options
from ._output import emit, error_record
from ._plan import Plan, load_config

if TYPE_CHECKING:
    from .._eval import EvalEstimate, EvalReport
    from ..backends import Backend

__all__ = ["eval_command", "html_page"]

SHOWN = 5  # rows named in a one-line summary before "..."


def _plan(config: Path, model: str | None, judge_model: str | None, base_url: str | None) -> Plan:
    """The config built, its backends closed when the command ends; a bad ``--model`` is a usage error."""
    from .._errors import ConfigurationError

    context = click.get_current_context()
    given = {model: "--model", judge_model: "--judge-model"}

    def build(spec: str) -> Backend:
        try:
            chosen = _options.make_backend(spec, base_url=base_url)  # looked up here: tests swap it
        except ConfigurationError as exc:
            if spec in given:
                raise click.BadParameter(str(exc), param_hint=given[spec]) from exc
            raise
        close = getattr(chosen, "close", None)  # every BaseBackend has it; the protocol does not ask for it
        if callable(close):
            context.call_on_close(close)  # its connections close when the command ends
        return chosen

    return load_config(config, make_backend=build, model=model, judge_model=judge_model)


# -- the estimate -----------------------------------------------------------------------------------
def _estimate_record(estimate: EvalEstimate, judge_calls: int) -> dict[str, Any]:
    return {
        "rows": estimate.rows,
        "variants": list(estimate.variants),
        "epochs": estimate.epochs,
        "calls": estimate.calls,
        "input_tokens": estimate.input_tokens,
        "output_tokens": estimate.output_tokens,
        "cost": estimate.cost,
        "exact": estimate.exact,
        "finished": estimate.finished,
        "judge_calls": judge_calls,
        "per_variant": {
            name: {
                "calls": one.calls,
                "input_tokens": one.input_tokens,
                "output_tokens": one.output_tokens,
                "cost": one.cost,
            }
            for name, one in estimate.per_variant.items()
        },
        "errors": [{"variant": v, "row_id": r, "error": error_record(e)} for v, r, e in estimate.errors],
    }


def _estimate_text(estimate: EvalEstimate, judge_calls: int) -> str:
    from .._batch._results import usd

    lines = [str(estimate)]
    for name, one in estimate.per_variant.items():
        approx = "" if one.exact else "~"
        output = "unknown" if one.output_tokens is None else f"{one.output_tokens:,}"
        cost = "unknown" if one.cost is None else usd(one.cost)
        lines.append(
            f"  {name}: {one.calls:,} calls, input tokens {approx}{one.input_tokens:,}, "
            f"output tokens {output}, cost {cost}"
        )
    for variant, row_id, error in estimate.errors[:SHOWN]:
        lines.append(f"  would fail: {variant} on row {row_id}: {error_record(error)['message']}")
    if judge_calls:
        lines.append(f"plus up to {judge_calls:,} judge calls, not estimated")
    return "\n".join(lines)


# -- the report -------------------------------------------------------------------------------------
def _comparisons(report: EvalReport, pair: tuple[str, str] | None) -> list[Any]:
    if pair is None:
        return []
    return [report.compare(*pair, metric=metric) for metric in report.metrics]


def _comparison_text(comparisons: Sequence[Any]) -> str:
    lines = []
    for comparison in comparisons:
        lines.append(str(comparison))
        for label, ids in (("regressed", comparison.regressed), ("improved", comparison.improved)):
            if ids:
                more = ", ..." if len(ids) > 20 else ""
                lines.append(f"  {label}: {', '.join(ids[:20])}{more}")
    return "\n".join(lines)


def html_page(report: EvalReport, comparisons: Sequence[Any], title: str) -> str:
    """The report (and its comparisons) as a whole HTML page: the notebook view, escaped."""
    body = report._repr_html_() + "".join(c._repr_html_() for c in comparisons)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _failures(report: EvalReport) -> tuple[str | None, int, int]:
    """(the stderr line about rows that errored, calls skipped by the cap, calls cancelled)."""
    failed: list[tuple[str, str, str]] = []
    skipped = cancelled = 0
    for variant in report.variants:
        for row, cell in zip(report.rows, report.cells[variant], strict=True):
            for trial in cell.trials:
                skipped += trial.status == "skipped"
                cancelled += trial.status == "cancelled"
            if cell.status == "error":
                reason = next((t.error for t in cell.trials if t.error), None) or "failed"
                failed.append((variant, row.id, reason))
    if not failed:
        return None, skipped, cancelled
    rows = len({row_id for _, row_id, _ in failed})
    shown = "; ".join(f"{variant} on {row_id}: {reason}" for variant, row_id, reason in failed[:SHOWN])
    more = f"; and {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
    line = f"promptkit: {rows} of {len(report.rows)} rows failed (not scored): {shown}{more}"
    return line, skipped, cancelled


# -- the command ------------------------------------------------------------------------------------
@click.command("eval", short_help="Evaluate prompt variants on a dataset and print the report.")
@click.argument("config", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@model_options
@click.option(
    "--judge-model",
    metavar="PROVIDER:MODEL",
    shell_complete=_complete_model,
    help="The backend of every LLM judge (default: each judge's 'model').",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="Stop before the variants' calls could cost more (over the config's max_cost); calls not sent are skipped.",
)
@click.option("--dry-run", is_flag=True, help="Print the estimate (calls, tokens, cost) and send nothing.")
@json_option
@click.option(
    "--html",
    "html_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as an HTML page.",
)
@click.option(
    "--output",
    "output_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report's JSON (a baseline for EvalReport.load and CI gates).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr (default: when stderr is a terminal).",
)
@debug_option
def eval_command(
    *,
    config: Path,
    model: str | None,
    base_url: str | None,
    judge_model: str | None,
    max_cost: float | None,
    dry_run: bool,
    as_json: bool,
    html_file: Path | None,
    output_file: Path | None,
    progress: bool | None,
) -> None:
    """Evaluate the variants of CONFIG on its dataset and print the report.

    CONFIG is a YAML (.yaml, .yml) or TOML (.toml) file naming the variants (.prompt files,
    each with an optional model, strategy and few-shot examples), the dataset, the metrics and
    the options (epochs, reducer, max_cost, compare...); see docs/cli.md. The table gives each
    metric's mean with its confidence interval, then the paired comparison when the config has
    'compare: [A, B]'. --json prints the report's JSON instead (EvalReport.from_json reads it).

    A config mistake is one line naming the file and key, exit status 2. Rows whose calls
    failed are not scored and are listed on stderr; the exit status is still 0. An error while
    working exits with 1, an interruption (Ctrl-C) with 130 after printing what finished.

    \b
    Examples:
      promptkit eval eval.yaml
      promptkit eval eval.yaml --model mock --dry-run
      promptkit eval eval.toml --json > report.json
      promptkit eval eval.yaml --html report.html --output baseline.json
    """
    from .._eval import evaluate

    if dry_run and (html_file is not None or output_file is not None):
        raise click.UsageError("--dry-run makes no report; it does not combine with --html or --output")
    if config.suffix.lower() not in SUFFIXES:
        raise click.BadParameter("a config is a YAML (.yaml, .yml) or TOML (.toml) file", param_hint="CONFIG")
    plan = _plan(config, model, judge_model, base_url)
    options = dict(plan.options)
    if max_cost is not None:
        options["max_cost"] = max_cost
    if dry_run:
        estimate = evaluate(plan.variants, plan.dataset, plan.metrics, dry_run=True, **options)
        judge_calls = plan.judges * estimate.rows * len(estimate.variants) * estimate.epochs  # one per trial
        if as_json:
            emit(_estimate_record(estimate, judge_calls), indent=2)
        else:
            click.echo(_estimate_text(estimate, judge_calls))
        return
    report = evaluate(plan.variants, plan.dataset, plan.metrics, progress=progress, **options)
    comparisons = _comparisons(report, plan.compare)
    if output_file is not None:
        report.to_json(output_file)
    if html_file is not None:
        html_file.write_text(html_page(report, comparisons, f"promptkit eval {config.name}"), encoding="utf-8")
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(report.table())
        if comparisons:
            click.echo()
            click.echo(_comparison_text(comparisons))
    failed, skipped, cancelled = _failures(report)
    if failed is not None:
        click.echo(failed, err=True)
    if skipped:
        click.echo(f"promptkit: {skipped} calls not sent: the spending cap would have been passed", err=True)
    if cancelled:
        click.echo(f"promptkit: interrupted: {cancelled} calls cancelled", err=True)
        click.get_current_context().exit(130)
