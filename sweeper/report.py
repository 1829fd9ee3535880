"""``sweeper report``: a sweep's ledger turned into a ranking, plots and a verdict on the write-up.

One row per configuration (the searched parameters except the seed), with the mean and a
95% Student-t interval over seeds; the write-up's two claims checked against the ranking
with Welch intervals of the gaps; Optuna's parameter importance; plots; ``report.md``,
a self-contained ``report.html`` and ``report.json`` in the sweep folder.

Safe while the sweep runs (the ledger is read whole and report files are replaced
atomically). No TensorFlow, Ray or Keras.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from model.errors import ConfigError, UserError, suggest

if TYPE_CHECKING:
    import pandas as pd

    from sweeper.spec import SweepSpec

__all__ = [
    "CLAIMS",
    "Claim",
    "ConfigResult",
    "FORMATS",
    "OUTCOMES",
    "Interval",
    "Report",
    "Verdict",
    "build_report",
    "difference_interval",
    "load_ledger",
    "mean_interval",
    "report",
]

FORMATS = ("table", "md", "csv", "html", "json")
METRIC_COLUMNS = ("val_psnr", "val_ssim", "val_mae")
LEVEL = 0.95  # confidence level of every interval in the report
_UNITS = {"val_psnr": " dB"}
OUTCOMES = ("reproduced", "not reproduced", "inconclusive", "not tested")


# ---------------------------------------------------------------------------------------------
# Statistics


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) with its 95% confidence interval.

    ``low``/``high`` are NaN when there are too few values for an interval (fewer than two).
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def known(self) -> bool:
        """Whether the interval exists (two or more values on each side)."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; NaN becomes ``None``."""
        return {k: _json_number(v) for k, v in dataclasses.asdict(self).items()}


def _t_quantile(df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + LEVEL / 2, df))


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean_var(x: list[float]) -> tuple[float, float]:
    mean = sum(x) / len(x)
    return mean, (sum((v - mean) ** 2 for v in x) / (len(x) - 1) if len(x) > 1 else math.nan)


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean and 95% Student-t interval of the finite ``values``."""
    x = _finite(values)
    if not x:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean, var = _mean_var(x)
    if len(x) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = _t_quantile(len(x) - 1) * math.sqrt(var / len(x))
    return Interval(mean, mean - half, mean + half, len(x))


def difference_interval(a: Sequence[float], b: Sequence[float]) -> Interval:
    """``mean(a) - mean(b)`` with Welch's 95% interval (unequal variances)."""
    xa, xb = _finite(a), _finite(b)
    if not xa or not xb:
        return Interval(math.nan, math.nan, math.nan, len(xa) + len(xb))
    (ma, va), (mb, vb) = _mean_var(xa), _mean_var(xb)
    diff = ma - mb
    if len(xa) < 2 or len(xb) < 2:
        return Interval(diff, math.nan, math.nan, len(xa) + len(xb))
    sa, sb = va / len(xa), vb / len(xb)
    if sa + sb == 0:  # identical repeats on both sides: no noise to speak of
        return Interval(diff, diff, diff, len(xa) + len(xb))
    df = (sa + sb) ** 2 / (sa**2 / (len(xa) - 1) + sb**2 / (len(xb) - 1))
    half = _t_quantile(df) * math.sqrt(sa + sb)
    return Interval(diff, diff - half, diff + half, len(xa) + len(xb))


# ---------------------------------------------------------------------------------------------
# Ranking and verdict


@dataclasses.dataclass(frozen=True)
class ConfigResult:
    """One configuration: the searched parameters other than the seed, over its trials."""

    rank: int
    params: dict[str, Any]  # the searched parameters that define it
    n: int  # trials with status ok (the ones its statistics use)
    metrics: dict[str, Interval]
    seconds: float  # mean trial wall time
    statuses: dict[str, int]
    trial_ids: tuple[str, ...]
    values: tuple[float, ...]  # the report metric of its ok trials
    fixed: dict[str, Any]  # every parameter of its first trial (for matching claims)

    def label(self) -> str:
        """``optimizer=rmsprop, loss=mae`` (or ``all trials`` when nothing is searched)."""
        return ", ".join(f"{k}={_show(v)}" for k, v in self.params.items()) or "all trials"


@dataclasses.dataclass(frozen=True)
class Claim:
    """A finding of the write-up: the configuration ``params`` is the best one."""

    key: str
    text: str
    params: Mapping[str, Any]


CLAIMS: tuple[Claim, ...] = (
    Claim("rmsprop_mae", "RMSprop + MAE is the best optimizer x loss pair", {"optimizer": "rmsprop", "loss": "mae"}),
    Claim("lr_rho", "learning rate 0.001 with rho 0.9 is RMSprop's best setting", {"learning_rate": 0.001, "rho": 0.9}),
)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How a claim fares in this sweep.

    ``difference`` is the claim's configuration minus ``compared_with`` (the best other
    configuration; the runner-up when the claim's configuration ranks first), in metric units.
    """

    claim: Claim
    outcome: str
    reason: str
    rank: int | None = None
    of: int = 0
    compared_with: dict[str, Any] | None = None
    difference: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "claim": self.claim.text, "params": dict(self.claim.params), "outcome": self.outcome,
            "reason": self.reason, "rank": self.rank, "of": self.of, "compared_with": self.compared_with,
            "difference": self.difference.to_dict() if self.difference else None,
        }


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _rank_configs(trials: "pd.DataFrame", keys: list[str], metric: str, goal: str) -> list[ConfigResult]:
    from sweeper.study import _plain

    sign = 1.0 if goal == "maximize" else -1.0
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in trials.to_dict("records"):
        key = tuple(_plain(row.get(f"params_{k}")) for k in keys)
        groups.setdefault(key, []).append(row)
    unranked = []
    for key, rows in groups.items():
        ok = [r for r in rows if r["status"] == "ok"]
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        metrics = {m: mean_interval([r[m] for r in ok]) for m in METRIC_COLUMNS}
        seconds = _finite([r["seconds"] for r in rows])
        unranked.append(ConfigResult(
            rank=0, params=dict(zip(keys, key)), n=metrics[metric].n, metrics=metrics,
            seconds=sum(seconds) / len(seconds) if seconds else math.nan, statuses=dict(sorted(statuses.items())),
            trial_ids=tuple(r["trial_id"] for r in rows), values=tuple(_finite([r[metric] for r in ok])),
            fixed={c.removeprefix("params_"): _plain(v) for c, v in rows[0].items() if c.startswith("params_")},
        ))

    def order(c: ConfigResult) -> tuple:
        mean = c.metrics[metric].mean
        scored = c.n > 0 and math.isfinite(mean)
        return (not scored, -sign * mean if scored else 0.0, c.label())

    return [dataclasses.replace(c, rank=i) for i, c in enumerate(sorted(unranked, key=order), start=1)]


def _fmt_gap(d: Interval, unit: str) -> str:
    text = f"{abs(d.mean):.3g}{unit}"
    if d.known:
        text += f" (95% CI of the difference {d.low:+.3g} to {d.high:+.3g})"
    else:
        text += " (no interval: fewer than two ok seeds on a side)"
    return text


def _verdict(claim: Claim, ranking: list[ConfigResult], keys: list[str], metric: str, goal: str) -> Verdict:
    shown = ", ".join(f"{k}={_show(v)}" for k, v in claim.params.items())
    if not any(k in keys for k in claim.params):
        return Verdict(claim, "not tested", f"this sweep does not vary {' or '.join(claim.params)}")
    mine = [c for c in ranking if all(_same(c.fixed.get(k), v) for k, v in claim.params.items())]
    if not mine:
        return Verdict(claim, "not tested", f"no configuration with {shown} is recorded in this sweep")
    scored = [c for c in ranking if c.n > 0]
    claim_cfg = mine[0]  # ranking order: the best of the claim's configurations
    others = [c for c in scored if c not in mine]
    if not others:
        return Verdict(claim, "not tested", f"no other configuration has an ok trial to compare {shown} with",
                       rank=claim_cfg.rank, of=len(ranking))
    unit = _UNITS.get(metric, "")
    if claim_cfg.n == 0:
        return Verdict(claim, "not reproduced", f"no {shown} trial finished ok ({claim_cfg.statuses})",
                       rank=claim_cfg.rank, of=len(ranking), compared_with=others[0].params)
    sign = 1.0 if goal == "maximize" else -1.0
    best_other = others[0]
    gap = difference_interval(claim_cfg.values, best_other.values)
    where = f"{shown} ranks {claim_cfg.rank} of {len(ranking)} by {metric}"
    common = dict(rank=claim_cfg.rank, of=len(ranking), compared_with=best_other.params, difference=gap)
    if sign * gap.mean > 0:  # the claim's configuration leads
        gaps = [difference_interval(claim_cfg.values, c.values) for c in others]
        if all(g.known and min(sign * g.low, sign * g.high) > 0 for g in gaps):
            return Verdict(claim, "reproduced", f"{where}; it leads the runner-up {best_other.label()} by "
                           f"{_fmt_gap(gap, unit)} and beats every other configuration beyond the seed noise", **common)
        return Verdict(claim, "inconclusive", f"{where}, but its lead over {best_other.label()}, "
                       f"{_fmt_gap(gap, unit)}, or over another configuration, is inside the seed noise", **common)
    if gap.known and max(sign * gap.low, sign * gap.high) < 0:
        return Verdict(claim, "not reproduced", f"{where}; the winner {best_other.label()} is better by "
                       f"{_fmt_gap(gap, unit)}, beyond the seed noise", **common)
    return Verdict(claim, "inconclusive", f"{where}, {_fmt_gap(gap, unit)} behind the winner "
                   f"{best_other.label()}: inside the seed noise", **common)


# ---------------------------------------------------------------------------------------------
# The report


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything ``sweeper report`` shows, computed from one read of the ledger."""

    sweep: str
    sweep_dir: Path
    metric: str
    goal: str
    recorded: int
    planned: int | None
    status_counts: dict[str, int]
    keys: tuple[str, ...]  # the parameters that define a configuration
    ranking: tuple[ConfigResult, ...]
    verdicts: tuple[Verdict, ...]
    failures: tuple[dict[str, Any], ...]
    importance: dict[str, float]
    importance_note: str
    figures: dict[str, Path]  # title -> PNG
    baseline: dict[str, Any] | None = None  # the blurred input scored as if it were the output

    @property
    def partial(self) -> bool:
        """Fewer trials recorded than the spec plans (still running, or interrupted)."""
        return self.planned is not None and self.recorded < self.planned

    def headline(self) -> str:
        """One line: the sweep, what is recorded and whether it is complete."""
        counts = ", ".join(f"{k} {v}" for k, v in self.status_counts.items()) or "none"
        line = f"{self.sweep}: {self.recorded}" + (f"/{self.planned}" if self.planned else "") + f" trials ({counts})"
        if self.partial:
            line += (f"; PARTIAL: {self.planned - self.recorded} trials not recorded yet (the sweep is still "
                     "running or was interrupted; `sweeper run SPEC` resumes it)")
        return line

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``{"ranking": [...], "verdict": {...}, ...}``."""
        return {
            "sweep": self.sweep, "metric": self.metric, "goal": self.goal, "recorded": self.recorded,
            "planned": self.planned, "partial": self.partial, "status_counts": self.status_counts,
            "config_params": list(self.keys),
            "ranking": [
                {"rank": c.rank, "params": c.params, "n": c.n, "seconds": _json_number(c.seconds),
                 "statuses": c.statuses, "trial_ids": list(c.trial_ids),
                 **{m: c.metrics[m].to_dict() for m in METRIC_COLUMNS}}
                for c in self.ranking
            ],
            "verdict": {v.claim.key: v.to_dict() for v in self.verdicts},
            "failures": list(self.failures),
            "importance": self.importance,
            "importance_note": self.importance_note,
            "figures": {k: p.name for k, p in self.figures.items()},
            "baseline": self.baseline,
        }

    # ---------------------------------------------------------------- tables, shared by all formats

    def ranking_table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the ranked table, as text."""
        header = ["rank", *self.keys, "n", *METRIC_COLUMNS, "seconds", "status"]
        rows = []
        for c in self.ranking:
            rows.append([
                str(c.rank), *(_show(c.params[k]) for k in self.keys), str(c.n),
                *(_fmt_interval(c.metrics[m], m) for m in METRIC_COLUMNS),
                "-" if not math.isfinite(c.seconds) else f"{c.seconds:.1f}",
                ", ".join(f"{k} {v}" for k, v in c.statuses.items()),
            ])
        return header, rows

    def failure_table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the error and diverged trials."""
        header = ["trial", *self.keys, "seed", "status", "message"]
        return header, [
            [f["trial_id"], *(_show(f["params"].get(k)) for k in self.keys), _show(f["params"].get("seed")),
             f["status"], f["error"]]
            for f in self.failures
        ]

    def baseline_text(self) -> str:
        """What restoring nothing scores, and how far the best configuration is above it."""
        b = self.baseline or {}
        text = (f"Scored like a trial's output, the blurred test images themselves give val_psnr "
                f"{b['val_psnr']:.3f} dB, val_ssim {b['val_ssim']:.4f}, val_mae {b['val_mae']:.4f} "
                f"({b['images']} images of {b['dataset']}).")
        best = self.ranking[0] if self.ranking and self.ranking[0].n else None
        if best is not None:
            gain = best.metrics[self.metric].mean - b[self.metric]
            text += f" The best configuration ({best.label()}) is {gain:+.3f}{_UNITS.get(self.metric, '')} from it in {self.metric}."
        return text

    def verdict_table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the verdict block."""
        return ["claim (the write-up)", "verdict", "why"], [
            [v.claim.text, v.outcome.upper(), v.reason] for v in self.verdicts
        ]

    def importance_table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the parameter importances."""
        return ["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in self.importance.items()]

    # ---------------------------------------------------------------- formats

    def render(self, fmt: str) -> str:
        """The report as ``md``, ``csv``, ``html`` or ``json`` text (``table`` is for a terminal)."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if fmt == "csv":
            return self._csv()
        if fmt == "md":
            return self._markdown()
        if fmt == "html":
            return self._html()
        raise ConfigError(f"--format: {fmt!r} has no text rendering; use one of md, csv, html, json")

    def _csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["rank", *self.keys, "n", *(f"{m}_{p}" for m in METRIC_COLUMNS for p in ("mean", "low", "high")),
                         "seconds", *(f"n_{s}" for s in ("ok", "error", "diverged"))])
        for c in self.ranking:
            writer.writerow([
                c.rank, *(c.params[k] for k in self.keys), c.n,
                *(_csv_number(getattr(c.metrics[m], p)) for m in METRIC_COLUMNS for p in ("mean", "low", "high")),
                _csv_number(c.seconds), *(c.statuses.get(s, 0) for s in ("ok", "error", "diverged")),
            ])
        return out.getvalue()

    def _sections(self) -> list[tuple[str, Any]]:
        """(title, content) in report order; content is text, a table or a figure path."""
        sections: list[tuple[str, Any]] = [
            ("Verdict on the write-up", self.verdict_table()),
            (f"Ranking by {self.metric} ({self.goal}; mean and 95% CI over seeds)", self.ranking_table()),
        ]
        if self.baseline is not None:
            sections.insert(1, ("Baseline: the blurred input, no model", self.baseline_text()))
        if self.failures:
            sections.append(("Failed trials (error or diverged; not in the means above)", self.failure_table()))
        sections.append(("Parameter importance (Optuna PED-ANOVA on the ledger)",
                         self.importance_table() if self.importance else self.importance_note))
        sections += [(title, path) for title, path in self.figures.items()]
        return sections

    def _markdown(self) -> str:
        lines = [f"# Sweep report: {self.sweep}", "", self.headline(), ""]
        for title, content in self._sections():
            lines += [f"## {title}", ""]
            if isinstance(content, Path):
                lines.append(f"![{title}]({content.relative_to(self.sweep_dir).as_posix()})")
            elif isinstance(content, tuple):
                lines += _md_table(*content)
            else:
                lines.append(str(content))
            lines.append("")
        return "\n".join(lines)

    def _html(self) -> str:
        parts = [
            "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Sweep report: {html.escape(self.sweep)}</title>", f"<style>{_CSS}</style></head><body>",
            f"<h1>Sweep report: {html.escape(self.sweep)}</h1>",
            f'<p class="{"partial" if self.partial else "headline"}">{html.escape(self.headline())}</p>',
        ]
        for title, content in self._sections():
            parts.append(f"<h2>{html.escape(title)}</h2>")
            if isinstance(content, Path):
                data = base64.b64encode(content.read_bytes()).decode("ascii")
                parts.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
            elif isinstance(content, tuple):
                parts.append(_html_table(*content))
            else:
                parts.append(f"<p>{html.escape(str(content))}</p>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def rich_table(self) -> Any:
        """The ranking (and verdicts) as a rich renderable for the terminal."""
        from rich.console import Group
        from rich.table import Table

        tables = []
        for title, (header, rows) in (
            (f"{self.headline()}\nranked by {self.metric} ({self.goal}); mean ± 95% CI over seeds",
             self.ranking_table()),
            ("Verdict on the write-up", self.verdict_table()),
            *((("Failed trials", self.failure_table()),) if self.failures else ()),
        ):
            table = Table(title=title, title_justify="left")
            for name in header:
                table.add_column(name, overflow="fold")
            for row in rows:
                table.add_row(*row)
            tables.append(table)
        return Group(*tables)


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}.partial{color:#a40;font-weight:bold}"
)


def _fmt_interval(iv: Interval, metric: str) -> str:
    if iv.n == 0:
        return "-"
    digits = 2 if metric == "val_psnr" else 4
    if not iv.known:
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} ± {(iv.high - iv.low) / 2:.{digits}f}"


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _csv_number(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(map(_md_cell, header)) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(map(_md_cell, row)) + " |" for row in rows),
    ]


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------------------------------------
# Reading and writing


def load_ledger(sweep_dir: Path) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Trials and epochs of a sweep: its ledger, or the CSV export a reference run commits.

    Raises:
        LedgerError: a ledger file is unreadable.
    """
    from sweeper.ledger import Ledger

    ledger = Ledger(sweep_dir, create=False)
    trials = ledger.trials()
    epochs = ledger.epochs()
    # Epochs are read second and may include trials committed in between: keep the snapshot.
    return trials, epochs[epochs["trial_id"].isin(set(trials["trial_id"]))]


def _importance(trials: "pd.DataFrame", epochs: "pd.DataFrame", metric: str, goal: str,
                spec: "SweepSpec | None") -> tuple[dict[str, float], str]:
    import optuna

    from sweeper.study import ledger_study, searched_params

    ok = trials[(trials["status"] == "ok") & trials[metric].notna()]
    params = searched_params(trials, spec)
    if len(params) < 2:
        return {}, f"importance needs two or more searched parameters; this sweep searches {len(params)}"
    if len(ok) < 4:
        return {}, f"importance needs at least 4 ok trials; {len(ok)} so far"
    study = ledger_study(ok, epochs, metric=metric, goal=goal, study_name="report", spec=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA warns when the top quantile holds few trials
        try:
            scores = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError) as err:
            return {}, f"importance could not be computed: {err}"
    return ({k: float(v) for k, v in scores.items()},
            "PED-ANOVA: how much each parameter's distribution differs between the top 10% of trials and all of them")


def _baseline(sweep_dir: Path, spec: "SweepSpec | None") -> dict[str, Any] | None:
    """The blurred test images scored against the sharp ones, as a trial is scored (cached in
    ``<sweep>/baseline.json``, which a committed reference run keeps). ``None`` without the data."""
    cache = sweep_dir / "baseline.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except (OSError, ValueError):
            pass  # recomputed below
    if spec is None:
        return None
    from model.data import DatasetRef, eval_arrays, load_split
    from model.metrics import reference_metrics

    ref = DatasetRef(spec.dataset.dir, spec.dataset.name)
    try:
        pairs = eval_arrays(load_split(ref, "test"))
    except UserError:
        return None  # the data is elsewhere (or gone): the report goes on without it
    scores = [reference_metrics(sharp, blur) for blur, sharp in pairs]
    result = {"dataset": str(Path(ref.dir) / ref.name), "images": len(scores),
              **{f"val_{k}": sum(s[k] for s in scores) / len(scores) for k in ("psnr", "ssim", "mae")}}
    _write_atomic(cache, json.dumps(result, indent=2) + "\n")
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader (or a browser refresh) never sees half a report


def build_report(sweep_dir: Path, metric: str | None = None, *, plots: bool = True) -> Report:
    """Compute a sweep's report from its ledger, drawing the plots into ``<sweep>/plots/``.

    Args:
        sweep_dir: The sweep folder.
        metric: The ranking metric (default: the spec's, else ``val_psnr``).
        plots: Draw the figures (``False`` for a quick text-only report).

    Raises:
        UserError: unknown metric, no trials recorded, unreadable ledger.
    """
    from sweeper import _plots
    from sweeper.status import planned_trials, sweep_spec
    from sweeper.study import goal_of, searched_params

    spec = sweep_spec(sweep_dir)
    metric = metric or (spec.metric if spec is not None else "val_psnr")
    if metric not in METRIC_COLUMNS:
        raise ConfigError(f"--metric: unknown metric {metric!r}{suggest(metric, METRIC_COLUMNS)}; "
                          f"valid: {', '.join(METRIC_COLUMNS)}")
    goal = goal_of(metric, spec)
    trials, epochs = load_ledger(sweep_dir)
    if trials.empty:
        raise UserError(f"{sweep_dir}: no trials recorded yet; `sweeper status` shows progress")
    keys = [k for k in searched_params(trials, spec) if k != "seed"]
    ranking = _rank_configs(trials, keys, metric, goal)
    counts = trials["status"].value_counts()
    failures = tuple(
        {"trial_id": r["trial_id"], "status": r["status"],
         "error": (str(r["error"]).strip().splitlines() or [""])[0][:300],
         "params": {c.removeprefix("params_"): v for c, v in r.items() if c.startswith("params_") and v is not None}}
        for r in _records(trials[trials["status"] != "ok"])
    )
    importance, note = _importance(trials, epochs, metric, goal, spec)
    baseline = _baseline(sweep_dir, spec)
    figures = (_plots.draw_all(sweep_dir, trials, epochs, ranking, keys, metric, goal, importance,
                               (baseline or {}).get(metric)) if plots else {})
    return Report(
        sweep=spec.name if spec is not None else sweep_dir.name, sweep_dir=sweep_dir, metric=metric, goal=goal,
        recorded=len(trials), planned=planned_trials(sweep_dir),
        status_counts={str(k): int(v) for k, v in sorted(counts.items())}, keys=tuple(keys),
        ranking=tuple(ranking), verdicts=tuple(_verdict(c, ranking, keys, metric, goal) for c in CLAIMS),
        failures=failures, importance=importance, importance_note=note, figures=figures,
        baseline=baseline,
    )


def _records(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    from sweeper.study import _plain

    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def report(sweep: Path | None = None, results_dir: Path = Path("results"), metric: str | None = None) -> Report:
    """Build a sweep's report and write ``report.md``, ``report.html``, ``report.json`` and the
    ledger's CSV export into the sweep folder.

    Args:
        sweep: A sweep folder (default: the latest under ``results_dir``).
        results_dir: Where sweeps live.
        metric: The ranking metric (default: the spec's).

    Returns:
        The :class:`Report`.
    """
    from sweeper.ledger import Ledger
    from sweeper.status import find_sweep

    sweep_dir = find_sweep(sweep, results_dir)
    result = build_report(sweep_dir, metric)
    for name, fmt in (("report.md", "md"), ("report.html", "html"), ("report.json", "json")):
        _write_atomic(sweep_dir / name, result.render(fmt))
    ledger = Ledger(sweep_dir, create=False)
    if ledger.trials_path.is_file():  # a committed CSV-only reference run is left as it is
        ledger.export_csv()
    return result

