"""A :class:`~sweeper.report.document.Report` as text: Markdown, CSV, a self-contained HTML page
(figures embedded as base64 PNGs), JSON, and rich tables for the terminal.

Every format shows the same tables in the same order (:func:`_sections`); only their markup differs.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from model.errors import ConfigError
from model.metrics import VAL_METRICS, metric_unit
from sweeper.records import STATUSES, counted, show
from sweeper.report.display import csv_number, digits
from sweeper.report.document import Report
from sweeper.report.stats import Interval

__all__ = ["FORMATS", "render", "rich_table"]

FORMATS = ("table", "md", "csv", "html", "json")
"""What ``sweeper report --format`` prints: ``table`` on a terminal (:func:`rich_table`), the rest as text."""

_BOUNDS = ("mean", "low", "high")  # an interval's fields, as CSV columns
_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}.partial{color:#a40;font-weight:bold}"
)

_Table = tuple[list[str], list[list[str]]]  # header, rows


def render(report: Report, fmt: str) -> str:
    """The report as ``md``, ``csv``, ``html`` or ``json`` text (``table`` is for a terminal).

    Raises:
        ConfigError: ``fmt`` has no text rendering.
    """
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, allow_nan=False)
    if fmt == "csv":
        return _csv(report)
    if fmt == "md":
        return _markdown(report)
    if fmt == "html":
        return _html(report)
    raise ConfigError(f"--format: {fmt!r} has no text rendering; use one of md, csv, html, json")


def rich_table(report: Report) -> Any:
    """The ranking (and verdicts, and failures if any) as a rich renderable for the terminal."""
    from rich.console import Group
    from rich.table import Table

    tables = []
    for title, (header, rows) in (
        (f"{report.headline()}\nranked by {report.metric} ({report.goal}); mean ± 95% CI over seeds",
         _ranking_table(report)),
        ("Verdict on the write-up", _verdict_table(report)),
        *((("Failed trials", _failure_table(report)),) if report.failures else ()),
    ):
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return Group(*tables)


# ---------------------------------------------------------------------------------------------
# Tables, shared by all formats


def _fmt_interval(iv: Interval, metric: str) -> str:
    if iv.n == 0:
        return "-"
    places = digits(metric)
    if not iv.known:
        return f"{iv.mean:.{places}f}"
    return f"{iv.mean:.{places}f} ± {(iv.high - iv.low) / 2:.{places}f}"


def _ranking_table(report: Report) -> _Table:
    header = ["rank", *report.keys, "n", *VAL_METRICS, "seconds", "status"]
    rows = []
    for c in report.ranking:
        rows.append([
            str(c.rank), *(show(c.params[k]) for k in report.keys), str(c.n),
            *(_fmt_interval(c.metrics[m], m) for m in VAL_METRICS),
            "-" if not math.isfinite(c.seconds) else f"{c.seconds:.1f}",
            ", ".join(f"{k} {v}" for k, v in c.statuses.items()),
        ])
    return header, rows


def _failure_table(report: Report) -> _Table:
    header = ["trial", *report.keys, "seed", "status", "message"]
    return header, [
        [f["trial_id"], *(show(f["params"].get(k)) for k in report.keys), show(f["params"].get("seed")),
         f["status"], f["error"]]
        for f in report.failures
    ]


def _baseline_text(report: Report) -> str:
    """What restoring nothing scores, and how far the best configuration is above it."""
    b = report.baseline or {}
    scores = ", ".join(f"{m} {b[m]:.{digits(m, precise=True)}f}{metric_unit(m)}" for m in VAL_METRICS)
    text = (f"Scored like a trial's output, the blurred test images themselves give {scores} "
            f"({b['images']} images of {b['dataset']}).")
    best = report.ranking[0] if report.ranking and report.ranking[0].n else None
    if best is not None:
        gain = best.metrics[report.metric].mean - b[report.metric]
        # its mean, as ranked: a gain read off one lucky seed would overstate what it gains
        text += (f" The best configuration ({best.label()}) is {gain:+.3f}{metric_unit(report.metric)} from it "
                 f"in {report.metric}, its mean over {counted(best.n, 'trial')}.")
    return text


def _verdict_table(report: Report) -> _Table:
    return ["claim (the write-up)", "verdict", "why"], [
        [v.claim.text, v.outcome.upper(), v.reason] for v in report.verdicts
    ]


def _race_table(report: Report) -> _Table:
    race = report.race
    assert race is not None
    header = ["configuration", "seeds", "mean " + report.metric, "trial-seconds", "in the race?"]
    places = digits(report.metric)
    return header, [
        [c.label(), str(c.seeds), f"{c.mean:.{places}f}" if math.isfinite(c.mean) else "-", f"{c.seconds:.0f}",
         "yes" if c.eliminated_after is None else f"out after {c.eliminated_after} seeds: {c.reason}"]
        for c in race.configs
    ]


def _importance_table(report: Report) -> _Table:
    return ["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in report.importance.items()]


def _sections(report: Report) -> list[tuple[str, Any]]:
    """(title, content) in report order; content is text, a table or a figure path."""
    sections: list[tuple[str, Any]] = [
        ("Verdict on the write-up", _verdict_table(report)),
        (f"Ranking by {report.metric} ({report.goal}; mean and 95% CI over seeds)", _ranking_table(report)),
    ]
    if report.baseline is not None:
        sections.insert(1, ("Baseline: the blurred input, no model", _baseline_text(report)))
    if report.race is not None:
        sections.insert(1, ("The race", report.race.headline()))
        sections.insert(2, ("Configurations in the race (in, best first; then out, last out first)",
                            _race_table(report)))
    if report.failures:
        sections.append(("Failed trials (error or diverged; not in the means above)", _failure_table(report)))
    sections.append(("Parameter importance (Optuna PED-ANOVA on the ledger)",
                     _importance_table(report) if report.importance else report.importance_note))
    sections += [(title, path) for title, path in report.figures.items()]
    return sections


# ---------------------------------------------------------------------------------------------
# Formats


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", *report.keys, "n", *(f"{m}_{p}" for m in VAL_METRICS for p in _BOUNDS),
                     "seconds", *(f"n_{s}" for s in STATUSES)])
    for c in report.ranking:
        writer.writerow([
            c.rank, *(c.params[k] for k in report.keys), c.n,
            *(csv_number(getattr(c.metrics[m], p)) for m in VAL_METRICS for p in _BOUNDS),
            csv_number(c.seconds), *(c.statuses.get(s, 0) for s in STATUSES),
        ])
    return out.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(map(_md_cell, header)) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(map(_md_cell, row)) + " |" for row in rows),
    ]


def _markdown(report: Report) -> str:
    lines = [f"# Sweep report: {report.sweep}", "", report.headline(), ""]
    for title, content in _sections(report):
        lines += [f"## {title}", ""]
        if isinstance(content, Path):
            lines.append(f"![{title}]({content.relative_to(report.sweep_dir).as_posix()})")
        elif isinstance(content, tuple):
            lines += _md_table(*content)
        else:
            lines.append(str(content))
        lines.append("")
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report: Report) -> str:
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Sweep report: {html.escape(report.sweep)}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>Sweep report: {html.escape(report.sweep)}</h1>",
        f'<p class="{"partial" if report.partial else "headline"}">{html.escape(report.headline())}</p>',
    ]
    for title, content in _sections(report):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(content, Path):
            # Embedded, so the page is one file that can be mailed or committed on its own.
            data = base64.b64encode(content.read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
        elif isinstance(content, tuple):
            parts.append(_html_table(*content))
        else:
            parts.append(f"<p>{html.escape(str(content))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
