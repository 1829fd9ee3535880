"""``sweeper status``: a sweep's progress read from its ledger (no Ray, no TensorFlow).

Safe while the sweep runs: the ledger is replaced atomically, so a read sees a whole file.
"""

from __future__ import annotations

import heapq
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from model.metrics import metric_goal, metric_unit
from model.runtime import cpu_emulates
from sweeper.dispatch.cluster import cluster_address, local_cpu_warning
from sweeper.dispatch.lock import described, holder
from sweeper.folder import checkpoint_path, find_sweep, read_spec
from sweeper.ledger import Ledger, count_statuses
from sweeper.race import RaceState, race_state, smallest_p
from sweeper.records import counted, label, params_of
from sweeper.space import Trial, expand, searched_params, trial_count
from sweeper.spec import Race, SweepSpec

if TYPE_CHECKING:
    import pandas as pd

    from model.checkpoint import Progress

__all__ = ["Preview", "planned_trials", "preview", "sweep_status"]

# How many of the last recorded trials set an estimate's pace: enough that one slow trial does
# not set it, few enough to follow the host's own speed (lr_rho_race's trials took 47-49 min
# for a day on one host, then 38-43 min, and a mean of all 18 said 49).
_RECENT = 6
# A running trial's last epochs that give the pace now, and how many of them may pass since
# its checkpoint was written for it to count as running still (not cut short).
_RECENT_EPOCHS = 3
_RUNNING_WITHIN = 3.0


def planned_trials(spec: SweepSpec | None) -> int | None:
    """How many trials the sweep's spec plans (``None`` without a spec)."""
    return None if spec is None else trial_count(spec)


@dataclass(frozen=True)
class Preview:
    """What ``sweeper run --dry-run`` shows, read from the ledger (nothing runs).

    Attributes:
        trials: The trial table's rows: the grid's trials, or a race's round under way (none
            for Optuna TPE, which proposes its trials as it runs, or for a race that is over).
        done: The ids among ``trials`` the ledger holds.
        line: What the run does beyond the table (TPE's proposals, a race's plan), or ``""``.
    """

    trials: tuple[Trial, ...]
    done: frozenset[str]
    line: str = ""


def preview(spec: SweepSpec, results_dir: Path) -> Preview:
    """What ``sweeper run`` of ``spec`` would do next, given the ledger under ``results_dir``
    (none yet: everything). A race lists the round under way and bounds the trials it can
    come to (:meth:`~sweeper.race.RaceState.most_trials`)."""
    from sweeper.dispatch.plan import plan

    ledger = Ledger(results_dir / spec.name, create=False)
    trials = ledger.trials()  # one read serves the table's column and the race's replay
    done = set(trials["trial_id"])
    sweep = plan(spec, done)
    if sweep.searched:
        fewer = f" (all the space holds; run_cap is {spec.run_cap})" if sweep.planned < spec.run_cap else ""
        return Preview((), frozenset(), f"{spec.name}: bayes, {sweep.planned} trials{fewer} proposed by Optuna TPE "
                                        "at run time")
    if spec.race is None:
        return Preview(tuple(sweep.trials), frozenset(done))
    listed, line = _race_plan(spec, race_state(spec, trials, ledger.eliminations()))
    return Preview(listed, frozenset(done & {t.id for t in listed}), line)


def _race_plan(spec: SweepSpec, state: RaceState) -> tuple[tuple[Trial, ...], str]:
    """A race's trials to list and its one line: where it stands and the most trials it can
    come to."""
    race = spec.race
    assert race is not None  # race_state refused a spec that is not raced
    head = f"{spec.name}: a race ({race.test}, alpha {race.alpha:g})"
    most = f"{state.most_trials(race)} trials at the most"
    if state.done:
        return (), f"{head}, over after {state.seeds} seeds: {state.why}; nothing to run ({state.trials_run} recorded)"
    if not state.rounds:  # the first round, with what of it is recorded
        first = tuple(t for t in expand(spec) if t.params["seed"] < race.first)
        return first, (f"{head}; its first round is the {len(first)} trials above ({race.first} seeds each), then "
                       f"one seed a round for the configurations left, up to {race.max} seeds ({most})")
    seeds = sorted({int(t.params["seed"]) for t in state.pending})  # the table leaves out a column all alike
    return state.pending, (
        f"{head}, after {state.seeds} seeds: {len(state.alive)} of {len(state.configs)} configurations left; its "
        f"next round is the {counted(len(state.pending), 'trial')} above (seed{'s' * (len(seeds) > 1)} "
        f"{', '.join(map(str, seeds))}), then one seed a round for the "
        f"configurations left, up to {race.max} seeds ({most}, {state.trials_run} recorded)")


def sweep_status(sweep: Path | None, results_dir: Path) -> str:
    """A few lines: trials recorded by status out of those planned, and the best so far by
    the spec's metric and goal (``val_psnr``, higher is better, without a spec)."""
    sweep_dir = find_sweep(sweep, results_dir)
    spec = read_spec(sweep_dir)
    ledger = Ledger(sweep_dir, create=False)
    trials, epochs = ledger.snapshot()
    counts = count_statuses(trials)  # from the same read, so the counts add up to the trials listed
    raced = spec is not None and spec.race is not None
    planned = None if raced else planned_trials(spec)  # a race decides as it goes
    done = len(trials)
    lines = [
        # "4/4 trials recorded": the noun agrees with the planned count when there is one
        f"{sweep_dir.name}: " + (f"{done}/{planned} trials" if planned else counted(done, "trial")) + " recorded"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""),
    ]
    driver = holder(sweep_dir)
    if driver is not None:
        lines.append(f"running now: {described(driver)}")
    checkpointed = _checkpointed(sweep_dir, set(trials["trial_id"]))
    if raced:
        state = race_state(spec, trials, ledger.eliminations())
        where = f"over: {state.why}" if state.done else f"{counted(len(state.pending), 'trial')} of the next round to run"
        head = f"race after {state.seeds} seeds" if state.rounds else f"race before its first look (at {spec.race.first} seeds)"
        most = state.most_trials_left(spec.race)
        lines.append(f"{head}: {len(state.alive)} of {len(state.configs)} configurations "
                     f"left; {where} (at most {state.most_trials(spec.race)} trials)")
        to_go, started = len(state.pending), [checkpointed[t.id] for t in state.pending if t.id in checkpointed]
    else:
        to_go, started = max(0, (planned or done) - done), list(checkpointed.values())  # unrecorded: all to go
        most = to_go  # a grid runs exactly the trials it lacks: its bound is its count
        if planned:
            lines.append(f"remaining: {to_go}")
    local = cluster_address(None) is None
    slow = local_cpu_warning(spec, None) if spec is not None else None  # None when not local
    # Trials run at their CPU's pace: a local sweep goes on at this CPU's, so the trials that
    # were computed as this CPU computes them (``emulation``) set it when there are any.
    seconds, pace, matched = _pace(trials, epochs, local)
    running, running_pace = _running_pace(sweep_dir, checkpointed, driver is not None) if local else (seconds[:0], "")
    if not running.empty:
        # Trials running here now set the pace: the recorded ones may have run on another
        # machine (a race going on on a new host: 46-58 s an epoch on the last, 78 s here).
        seconds, pace, matched = running, running_pace, True
    elif seconds.empty or (local and not matched):
        # No trial recorded yet, or none computed as this CPU computes them (a race begun on an
        # AVX2-only CPU, going on on one with native bf16, 5x faster): the epochs this node has
        # checkpointed so far set the pace when there are any.
        here, here_pace = _checkpoint_pace(checkpointed.values())
        if seconds.empty or not here.empty:
            seconds, pace, matched = here, here_pace, True  # this node's own pace
    # The driver's own (``--max-concurrent`` overrides the spec's) while one runs the sweep.
    told = (driver or {}).get("max_concurrent")
    concurrency = told if isinstance(told, int) else spec.max_concurrent if spec is not None else None
    left = _time_left(to_go, started, seconds, pace, concurrency)
    if left:
        lines.append(("the next look " if raced else "done ") + left)
        if raced and most > to_go:
            # The longest the race can take: the looks may stop configurations sooner, never later.
            span = _span(most, started, float(seconds.mean()), concurrency)
            budget = ", within the budget" if spec.race.budget_trials or spec.race.budget_seconds else ""
            lines.append(f"the race ends {_when(span, concurrency, most=True)} ({most} trials: the "
                         f"{counted(len(state.alive), 'configuration')} left on every seed up to {spec.race.max}"
                         f"{budget}, if no look eliminates another)")
        if slow and not matched:
            lines.append(f"that estimate is the recorded trials' pace; continued on this machine's CPU: {slow}")
    if raced:
        lines.extend(_undecidable(spec.race, state))
    varied = searched_params(spec, trials)
    if checkpointed:
        lines.append("in progress or cut short (checkpointed): " + "; ".join(
            f"{_shown(dict(sorted(p.params.items())), varied) or tid} at epoch {p.epochs}/{p.params.get('epochs', '?')}"
            for tid, p in checkpointed.items()))
    metric = spec.metric if spec is not None else "val_psnr"
    goal = spec.goal if spec is not None else metric_goal(metric)
    ok = trials[(trials["status"] == "ok") & trials[metric].notna()]
    if len(ok):
        best = ok.loc[ok[metric].idxmax() if goal == "maximize" else ok[metric].idxmin()]
        params = _shown(params_of(best.to_dict()), varied)
        value = best[metric]
        lines.append(f"best {metric} {value:.3f}{metric_unit(metric)}" if math.isfinite(value) else f"best {metric} -")
        if params:
            lines[-1] += f" ({params})"
    if raced:
        lines.extend(_claims(spec, state, trials))
    return "\n".join(lines)


def _undecidable(race: Race, state: RaceState) -> list[str]:
    """A line when the next looks cannot eliminate anything, whatever the seeds still to run
    score (two left under ``friedman``: Wilcoxon's exact p has a floor, higher once a seed went
    the other way), and the trials that makes certain."""
    if state.done:
        return []
    deciding, next_look, most = state.first_deciding_seeds(race), state.under_way(race), state.most_seeds(race)
    if deciding == next_look:
        return []
    last = (deciding or most + 1) - 1
    why = (f"friedman with 2 left is Wilcoxon's signed-rank test: its p on n seeds is at least 2/2^n, and "
           f"with the seeds so far at least {smallest_p(race.test, len(state.alive), last, state.differences()):.2g} "
           f"on {last}, above the level {state.level:.2g}")
    if deciding is None:
        budget = " (or fewer, if the budget is spent first)" if race.budget_seconds else ""
        return [f"no look can eliminate one of the 2 left ({why}): both run to {most} seeds{budget}"]
    more = len(state.pending) + len(state.alive) * (deciding - next_look)
    return [f"no look before {deciding} seeds can eliminate one of the 2 left ({why}): "
            f"at least {counted(more, 'trial')} more"]


def _claims(spec: SweepSpec, state: RaceState, trials: "pd.DataFrame") -> list[str]:
    """The verdict so far on each claim of the write-up the race tests, as the report words it
    (a race's elimination is final, so "not reproduced" mid-race is the verdict)."""
    # Imported here: the report package imports this module (``planned_trials``).
    from sweeper.report.claims import race_verdicts

    _, verdicts = race_verdicts(spec, state, trials, spec.metric)
    return [f'claim "{v.claim.text}": {v.outcome}: {v.reason}' for v in verdicts if v.outcome != "not tested"]


def _shown(params: Mapping[str, Any], varied: Sequence[str]) -> str:
    """``loss=mae, optimizer=adam``: the parameters the sweep varies, in ``params``' order."""
    return label(params, [k for k in params if k in varied])


def _checkpointed(sweep_dir: Path, recorded: set[str]) -> dict[str, "Progress"]:
    """Trial id -> the progress of the trials this node has checkpointed but the ledger lacks:
    running, or cut short (a rerun goes on from their last epoch)."""
    from model.checkpoint import read_progress

    found = {}
    pattern = checkpoint_path(sweep_dir, "*")
    for path in sorted(pattern.parent.glob(pattern.name)):
        progress = read_progress(path) if path.stem not in recorded else None
        if progress is not None:
            found[path.stem] = progress
    return found


def _pace(trials: "pd.DataFrame", epochs: "pd.DataFrame", local: bool) -> tuple["pd.Series", str, bool]:
    """The ok trials' seconds to estimate from, how to name their mean (``{}`` for it), and
    whether any were computed as this CPU computes them.

    A trial's seconds are its epochs at its median epoch (:func:`_steady`) when the ledger has
    every epoch's time, else its recorded seconds. A trial was computed as this CPU computes
    when its 16-bit convolutions were float32-accumulated (``emulation``) exactly if this CPU
    emulates its dtype policy (float32: never). On a ``local`` sweep those are used when others
    differ; on a cluster, whose CPUs are not this one, all count. Of those, the last
    :data:`_RECENT` recorded set the pace: a shared host's own speed drifts over a long sweep.
    """
    seconds = trials["seconds"].astype(float)
    ok = (trials["status"] == "ok") & seconds.map(math.isfinite)
    done = trials[ok]
    steady = _steady_recorded(done, epochs)
    seconds = steady.fillna(seconds[ok])
    emulated = done["emulation"].notna()
    # The policy the trial trained under; before that was recorded, its precision (not ``auto``'s
    # choice, which is never emulated: such old trials count as this CPU's)
    policy = done["dtype_policy"].fillna(done.get("params_precision", "float32")).fillna("float32")
    like = emulated == policy.map(cpu_emulates).astype(bool)
    matched = bool(local and like.any())
    mixed = matched and not like.all()  # some, not all, computed as this CPU computes them
    pool = done.loc[like, "finished_at"] if mixed else done["finished_at"]
    # ISO times in UTC sort as times; a stable sort keeps the ledger's order for equal or missing ones
    recent = pool.fillna("").sort_values(kind="stable").index[-_RECENT:]
    at_median = _at_median(steady[recent].notna())
    last = "last " if len(recent) < len(pool) else ""
    if not mixed and not last:
        return seconds[recent], "the recorded mean of {}" + at_median, matched
    how = ""
    if mixed:
        kinds = {"float32" if p == "float32" else "16-bit convolutions accumulated in float32" if e
                 else "native 16-bit arithmetic" for p, e in zip(policy[recent], emulated[recent])}
        how = f" with {' or '.join(sorted(kinds, key=lambda kind: (kind != 'float32', kind)))} as on this CPU"
    return seconds[recent], f"{{}}, the mean of the {last}{len(recent)} recorded{how}" + at_median, matched


def _steady(cumulative: Sequence[float], epochs: int, last: int | None = None) -> float:
    """A whole trial's seconds at its median epoch: ``epochs`` times the median time between
    consecutive epochs' wall clocks (``cumulative``; the first from the start), of its ``last``
    epochs only if given. One slow epoch (a resumed trial's start-up, a test suite beside it)
    then does not set the pace, as it does a trial's total. NaN unless every epoch's time is known."""
    if not cumulative or epochs <= 0 or not all(map(math.isfinite, cumulative)):
        return math.nan
    between = [b - a for a, b in zip((0.0, *cumulative), cumulative)]
    return statistics.median(between[-last:] if last else between) * epochs


def _steady_recorded(trials: "pd.DataFrame", epochs: "pd.DataFrame") -> "pd.Series":
    """:func:`_steady` of each of ``trials`` (indexed alike) from its rows in ``epochs``; NaN for
    a trial whose rows are not one per epoch it ran (a gap would pass for one long epoch)."""
    import pandas as pd

    clocks = {tid: rows.sort_values("epoch")["seconds"].tolist() for tid, rows in epochs.groupby("trial_id")}
    return pd.Series([_steady(clock, int(n)) if len(clock := clocks.get(tid, ())) == n else math.nan
                      for tid, n in zip(trials["trial_id"], trials["epochs_run"])], index=trials.index, dtype=float)


def _at_median(steadied: "pd.Series") -> str:
    """How a pace's name says which of its trials count at their median epoch."""
    n = int(steadied.sum())
    if not n:
        return ""
    if n == len(steadied):
        return ", each at its median epoch"
    return f", {n} of them at {'its' if n == 1 else 'their'} median epoch"


def _checkpoint_pace(progress: Iterable["Progress"]) -> tuple["pd.Series", str]:
    """:func:`_pace` before any trial is recorded, or when none was computed as this CPU computes
    them: the whole-trial seconds that the checkpointed trials' epochs so far point to (their
    median epoch times their epochs; from a checkpoint without epoch clocks, its seconds per
    epoch). They ran on this node, so at its pace."""
    import pandas as pd

    counted_in = [p for p in progress if p.epochs > 0 and p.seconds > 0 and isinstance(p.params.get("epochs"), int)]
    steady = pd.Series([_steady(p.epoch_seconds, p.params["epochs"]) for p in counted_in], dtype=float)
    whole = steady.fillna(pd.Series([p.seconds / p.epochs * p.params["epochs"] for p in counted_in], dtype=float))
    return whole, f"{{}}, the pace so far of the {counted(len(whole), 'checkpointed trial')}" + _at_median(steady.notna())


def _running_pace(sweep_dir: Path, checkpointed: Mapping[str, "Progress"], driven: bool) -> tuple["pd.Series", str]:
    """The pace now: the whole-trial seconds of the checkpointed trials running on this node,
    each at the median of its last :data:`_RECENT_EPOCHS` epochs times its epochs. A trial runs
    when its checkpoint was written within :data:`_RUNNING_WITHIN` such epochs of now; one
    with fewer epochs, or without epoch clocks, does not count. Unless a driver holds the
    sweep (``driven``), those trials were cut short just now: still this node's pace, so named."""
    import time

    import pandas as pd

    now, whole = time.time(), []
    for tid, p in checkpointed.items():
        if p.epochs < _RECENT_EPOCHS or not isinstance(p.params.get("epochs"), int):
            continue
        trial = _steady(p.epoch_seconds, p.params["epochs"], last=_RECENT_EPOCHS)  # NaN without epoch clocks
        try:
            written = checkpoint_path(sweep_dir, tid).stat().st_mtime
        except OSError:  # gone since it was read: the trial ended
            continue
        if trial > 0 and now - written <= _RUNNING_WITHIN * trial / p.params["epochs"]:
            whole.append(trial)
    n = len(whole)
    which = f"now of the {counted(n, 'running trial')}" if driven else f"of the {counted(n, 'trial')} cut short just now"
    return pd.Series(whole, dtype=float), (f"{{}}, the pace {which}, the median of "
                                           f"{'its' if n == 1 else 'their'} last {_RECENT_EPOCHS} epochs")


def _time_left(to_go: int, started: Sequence["Progress"], seconds: "pd.Series", pace: str,
               concurrency: int | None) -> str | None:
    """When the ``to_go`` trials should be done: each takes the mean of ``seconds`` (named by
    ``pace``), as :func:`_span` runs them; ``None`` with nothing to go on."""
    if not to_go or seconds.empty:
        return None
    mean = float(seconds.mean())
    basis = f"{counted(to_go, 'trial')} at {pace.format(_duration(mean))}"
    how = f", {concurrency} at a time" if concurrency else ""
    return f"{_when(_span(to_go, started, mean, concurrency), concurrency)} ({basis}{how}; checkpointed epochs counted)"


def _span(to_go: int, started: Sequence["Progress"], mean: float, concurrency: int | None) -> float:
    """Seconds until ``to_go`` trials of ``mean`` seconds each are done, the ``started`` ones
    (their checkpoints' progress) only the share of their epochs left, ``concurrency`` at a
    time (the started ones first, as a rerun resumes them); without one, their trial time."""
    shares = sorted((min(1.0, p.epochs / p.params["epochs"]) for p in started
                     if isinstance(p.params.get("epochs"), int) and p.params["epochs"] > 0), reverse=True)[:to_go]
    work = [mean * (1.0 - share) for share in shares] + [mean] * (to_go - len(shares))
    if not concurrency:
        return sum(work)
    slots = [0.0] * concurrency
    for w in work:  # each trial to the slot that frees first
        heapq.heapreplace(slots, slots[0] + w)
    return max(slots)


def _when(seconds: float, concurrency: int | None, most: bool = False) -> str:
    """``in about 2.1 h`` of wall time with a concurrency, else ``after about 2.1 h of trial
    time``; ``in at most about 2.1 h`` for an upper bound (``most``)."""
    about = f"{'at most ' if most else ''}about {_duration(seconds)}"
    return f"in {about}" if concurrency else f"after {about} of trial time"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
