"""The report's figures (PNG), drawn with matplotlib's object API (no pyplot state, no display).

Each figure is written whole (:func:`~sweeper.folder.write_atomic`), so a browser refreshing
the report while it is redrawn never shows half a PNG.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

from sweeper.folder import write_atomic
from sweeper.race import comparison
from sweeper.records import counted, param_column, show
from sweeper.report.race import RaceConfig, RaceSummary
from sweeper.report.ranking import ConfigResult

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["curves", "draw_all", "heatmap", "importance", "parallel", "race", "samples"]

# The heatmaps the write-up's two questions ask for; other sweeps get their first two parameters.
_PAIRS = (("optimizer", "loss"), ("learning_rate", "rho"))
# A sample strip is labelled with the parameters of those two questions.
_SAMPLE_PARAMS = tuple(name for pair in _PAIRS for name in pair)
_TOP_CURVES = 5
_DPI = 110


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig: "Figure", path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, buffer.getvalue())


def _cmap(goal: str) -> str:
    return "viridis" if goal == "maximize" else "viridis_r"  # brighter is always better


def _levels(column: "pd.Series") -> list[Any]:
    # Sorted by type first, so a column mixing ints and strings (an edited spec) still sorts.
    return sorted(column.dropna().unique(), key=lambda v: (str(type(v)), v))


def heatmap(trials: "pd.DataFrame", rows: str, cols: str, metric: str, goal: str, path: Path) -> Path | None:
    """Mean ``metric`` of ok trials for each (``rows``, ``cols``) cell; the best cell outlined."""
    ok = trials[trials["status"] == "ok"]
    if ok.empty:
        return None
    # Every level any trial reached, so a configuration whose trials all failed shows as a gap.
    levels = {k: _levels(trials[param_column(k)]) for k in (rows, cols)}
    table, counts = (
        ok.pivot_table(index=param_column(rows), columns=param_column(cols), values=metric, aggfunc=how)
        .reindex(index=levels[rows], columns=levels[cols])
        for how in ("mean", "count")
    )
    fig = _figure(max(6.0, 2.2 + 1.1 * table.shape[1]), 1.4 + 0.6 * table.shape[0])
    ax = fig.add_subplot()
    image = ax.imshow(table.to_numpy(dtype=float), cmap=_cmap(goal), aspect="auto")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(table.shape[1]), [show(v) for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [show(v) for v in table.index])
    ax.set_xlabel(cols)
    ax.set_ylabel(rows)
    values = table.to_numpy(dtype=float)
    finite = values[~(values != values)]
    best = (finite.max() if goal == "maximize" else finite.min()) if finite.size else math.nan
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = values[i, j]
            if v == v:
                n = int(counts.iloc[i, j])  # ok trials behind the mean
                # viridis is bright at its top end (viridis_r at its bottom): dark text there.
                brightness = float(image.norm(v)) if goal == "maximize" else 1.0 - float(image.norm(v))
                light = v == best or brightness > 0.55
                ax.text(j, i, f"{v:.2f}\n(n={n})", ha="center", va="center", fontsize=8,
                        color="black" if light else "white", weight="bold" if v == best else "normal",
                        bbox=dict(facecolor="white", edgecolor="red", boxstyle="round") if v == best else None)
    ax.set_title(f"{metric} by {rows} x {cols} (mean over seeds)")
    return _save(fig, path)


def curves(epochs: "pd.DataFrame", ranking: Sequence[ConfigResult], metric: str, path: Path,
           baseline: float | None = None) -> Path | None:
    """Per-epoch ``metric`` of every trial of the top configurations (and the blurred input's)."""
    from matplotlib.ticker import MaxNLocator

    top = [c for c in ranking if c.n > 0][:_TOP_CURVES]
    if not top or epochs.empty:
        return None
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(len(top))]
    for colour, config in zip(colours, top):
        for k, tid in enumerate(config.trial_ids):
            rows = epochs[epochs["trial_id"] == tid].sort_values("epoch")
            if rows.empty:
                continue
            ax.plot(rows["epoch"], rows[metric], color=colour, marker="o", markersize=3,
                    label=f"#{config.rank} {config.label()}" if k == 0 else None)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label="blurred input (no model)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curves of the top {counted(len(top), 'configuration')} (one line per seed)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def samples(sweep_dir: Path, trials: "pd.DataFrame", metric: str, goal: str, path: Path) -> Path | None:
    """Blurred | restored | sharp for the best and the worst ok trial (first test image)."""
    import numpy as np
    from PIL import Image

    ok = trials[(trials["status"] == "ok") & trials[metric].notna()].sort_values(metric, ascending=goal != "maximize")
    picks = []
    for which, row in (("best", ok.head(1)), ("worst", ok.tail(1))):
        if row.empty:
            continue
        strip = sweep_dir / "samples" / f"{row['trial_id'].iloc[0]}.png"
        if strip.is_file():
            picks.append((which, row.iloc[0], np.asarray(Image.open(strip).convert("RGB"))))
    if not picks:
        # A committed reference run keeps the figure but not the per-trial strips it came from.
        return path if path.is_file() else None
    fig = _figure(7.5, 2.7 * len(picks))
    for r, (which, row, image) in enumerate(picks):
        side = image.shape[1] // 3  # the strip is blurred|restored|sharp, square images, one row each
        first = image[: min(side, image.shape[0])]
        params = "\n".join(f"{name}={show(row[param_column(name)])}" for name in _SAMPLE_PARAMS)
        for c, title in enumerate(("blurred", "restored", "sharp")):
            ax = fig.add_subplot(len(picks), 3, 3 * r + c + 1)
            ax.imshow(first[:, c * side:(c + 1) * side])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if c != 1 else f"{which}: {row[metric]:.2f} {metric}", fontsize=8)
            if c == 0:
                ax.set_ylabel(params, fontsize=6)
    return _save(fig, path)


def parallel(trials: "pd.DataFrame", keys: Sequence[str], metric: str, goal: str, path: Path) -> Path | None:
    """Parallel coordinates: one line per ok trial through each searched parameter, coloured by ``metric``."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    ok = trials[(trials["status"] == "ok") & trials[metric].notna()]
    axes = [k for k in (*keys, "seed") if param_column(k) in ok.columns and ok[param_column(k)].notna().any()]
    if ok.empty or not axes:
        return None
    positions: list[np.ndarray] = []
    ticks: list[tuple[list[float], list[str]]] = []
    for k in axes:
        column = ok[param_column(k)]
        levels = _levels(column)
        spread = max(len(levels) - 1, 1)
        where = {v: i / spread for i, v in enumerate(levels)}
        positions.append(column.map(where).to_numpy(dtype=float))
        ticks.append(([where[v] for v in levels], [show(v) for v in levels]))
    values = ok[metric].to_numpy(dtype=float)
    low, high = float(values.min()), float(values.max())
    positions.append((values - low) / (high - low) if high > low else np.full(len(values), 0.5))
    norm = Normalize(low, high)
    cmap = colormaps[_cmap(goal)]
    fig = _figure(1.6 * (len(axes) + 1) + 1.5, 4.2)
    ax = fig.add_subplot()
    xs = np.arange(len(axes) + 1)
    ys = np.vstack(positions).T
    order = np.argsort(values if goal == "maximize" else -values, kind="stable")  # best drawn last, on top
    # One collection, not a line per trial: a thousand ax.plot calls took most of a second.
    lines = LineCollection([np.column_stack([xs, ys[i]]) for i in order], colors=cmap(norm(values[order])),
                           alpha=0.8, linewidths=1.2)
    ax.add_collection(lines)
    ax.set_xlim(-0.3, len(axes) + 0.3)
    ax.set_ylim(-0.05, 1.05)
    for x, (where, labels) in enumerate(ticks):
        for y, text in zip(where, labels):
            ax.text(x, y, text, fontsize=7, ha="right", va="center", bbox=dict(facecolor="white", alpha=0.7, lw=0))
    ax.text(len(axes), 0, f"{low:.2f}", fontsize=7, ha="left")
    ax.text(len(axes), 1, f"{high:.2f}", fontsize=7, ha="left")
    for x in xs:
        ax.axvline(x, color="grey", linewidth=0.8)
    ax.set_xticks(xs, [*axes, metric])
    ax.set_yticks([])
    ax.set_title(f"Parallel coordinates: every ok trial, coloured by {metric}")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    return _save(fig, path)


def importance(scores: dict[str, float], path: Path) -> Path | None:
    """Horizontal bars of Optuna's parameter importances."""
    if not scores:
        return None
    names = list(scores)[::-1]
    fig = _figure(6, 0.8 + 0.45 * len(names))
    ax = fig.add_subplot()
    ax.barh(names, [scores[n] for n in names], color="C0")
    ax.set_xlabel("importance (PED-ANOVA, sums to 1)")
    ax.set_title("Which parameters matter")
    return _save(fig, path)


def race(summary: RaceSummary, metric: str, path: Path, claimed: Collection[str] = ()) -> Path | None:
    """Configurations x seeds: the seeds each ran, where the race eliminated it (and the
    p-value), the seeds racing saved, and each one's trial-seconds; the configurations in
    ``claimed`` (ids: a claim of the write-up names them) are set in bold."""
    from matplotlib.colors import ListedColormap

    configs = summary.configs
    if not configs:
        return None
    # 0: not run (saved), 1: ran and still in the race, 2: ran, eliminated later, 3: not run yet
    # and may be (a configuration left, on a seed up to the most the race can come to).
    def cell(c: RaceConfig, s: int) -> int:
        if s < c.seeds:
            return 1 if c.eliminated_after is None else 2
        return 3 if c.eliminated_after is None and not summary.done and s < summary.most_seeds else 0

    grid = [[cell(c, s) for s in range(summary.max)] for c in configs]
    fig = _figure(6.5 + 0.45 * summary.max, 1.8 + 0.3 * len(configs))
    ax = fig.add_subplot()
    ax.imshow(grid, cmap=ListedColormap(["#eeeeee", "#4c9a5b", "#e0a15a", "#cfe6d3"]), vmin=0, vmax=3,
              aspect="auto")
    for i, c in enumerate(configs):
        ax.text(summary.max - 0.3, i, f"{c.seconds:.0f} s", ha="left", va="center", fontsize=6)
        if c.eliminated_after is not None:
            ax.plot(c.eliminated_after - 1, i, marker="x", color="#a02020", markersize=5)
            note = (f"out after {c.eliminated_after}: {comparison(summary.test, c.p_value)}"
                    if c.p_value is not None else "out: a trial failed")
            ax.text(summary.max + 0.7, i, note, ha="left", va="center", fontsize=6, color="#a02020")
    ax.axvline(summary.first - 0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(summary.max), [str(s + 1) for s in range(summary.max)])
    ax.set_yticks(range(len(configs)), [f"{c.label()}  ({c.mean:.2f})" if math.isfinite(c.mean) else c.label()
                                        for c in configs], fontsize=7)
    for tick, c in zip(ax.get_yticklabels(), configs):
        if c.config_id in claimed:
            tick.set_fontweight("bold")
    green = "in the race at the end" if summary.done else "still in the race (it is running)"
    # Columns count seeds, as "out after 3" and the looks do; the ledger numbers them from 0.
    may = "" if summary.done else ", pale green: may still run"
    ax.set_xlabel(f"seeds run (the n-th is seed n-1; first test after {summary.first}, dotted)\ngreen: {green}, "
                  f"orange: eliminated (x){may}, grey: saved (never run)"
                  + ("; bold: the write-up's claim" if claimed else ""), fontsize=7)
    ax.set_xlim(-0.5, summary.max + 3.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    most = "" if summary.done else f" (at most {summary.most_trials})"
    ax.set_title(f"Race by {metric} ({summary.test}): {summary.trials_run}{most} of {summary.full_trials} trials,\n"
                 f"{summary.compute_fraction:.0%} of the compute of every configuration on {summary.max} seeds",
                 fontsize=9)
    return _save(fig, path)


def draw_all(
    sweep_dir: Path,
    trials: "pd.DataFrame",
    epochs: "pd.DataFrame",
    ranking: Sequence[ConfigResult],
    keys: Sequence[str],
    metric: str,
    goal: str,
    scores: dict[str, float],
    baseline: float | None = None,
    raced: RaceSummary | None = None,
    claimed: Collection[str] = (),
) -> dict[str, Path]:
    """Every figure that applies to this sweep, as ``{title: png}`` under ``<sweep>/plots/``.

    Args:
        sweep_dir: The sweep folder (its ``samples/`` strips feed the samples figure).
        trials: The ledger's trials.
        epochs: The ledger's epochs (the learning curves).
        ranking: The configurations, best first.
        keys: The parameters that define a configuration.
        metric: The report metric.
        goal: ``maximize`` or ``minimize``.
        scores: Parameter importances (no figure when empty).
        baseline: The blurred input's ``metric``, drawn as a line on the learning curves.
        raced: A raced sweep's race (its figure comes first).
        claimed: The race's configurations a claim of the write-up names (set in bold).
    """
    out = sweep_dir / "plots"
    pairs = [p for p in _PAIRS if p[0] in keys and p[1] in keys]
    if not pairs and len(keys) >= 2:
        pairs = [(keys[0], keys[1])]
    drawn: dict[str, Path | None] = {}
    if raced is not None:
        drawn["The race: seeds run, eliminations, compute"] = race(raced, metric, out / "race.png", claimed)
    for rows, cols in pairs:
        drawn[f"Heatmap: {rows} x {cols}"] = heatmap(trials, rows, cols, metric, goal, out / f"heatmap_{rows}_{cols}.png")
    drawn["Learning curves of the top configurations"] = curves(epochs, ranking, metric, out / "curves.png", baseline)
    drawn["Samples: the best and the worst trial"] = samples(sweep_dir, trials, metric, goal, out / "samples.png")
    drawn["Parallel coordinates"] = parallel(trials, keys, metric, goal, out / "parallel.png")
    drawn["Parameter importance"] = importance(scores, out / "importance.png")
    return {title: path for title, path in drawn.items() if path is not None}
