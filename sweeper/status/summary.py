"""``sweeper status``: a sweep's progress read from its ledger (no Ray, no TensorFlow).

Safe while the sweep runs: the ledger is replaced atomically, so a read sees a whole file.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from model.metrics import metric_goal, metric_unit
from sweeper.dispatch.cluster import cluster_address, drivers_still_on_it, local_cpu_warning
from sweeper.dispatch.lock import described, holder
from sweeper.dispatch.search import tuner_sizes
from sweeper.folder import checkpoint_path, find_sweep, read_spec
from sweeper.ledger import Ledger, count_statuses
from sweeper.race import RaceState, race_state, smallest_p
from sweeper.records import counted, label, params_of
from sweeper.space import searched_params
from sweeper.spec import Race
from sweeper.status.dry_run import planned_trials
from sweeper.status.pace import pace, rounds_span, time_left, when

if TYPE_CHECKING:
    from model.checkpoint import Progress

__all__ = ["sweep_status"]

# A trial's worker starts within this (TensorFlow's import included); one waiting longer to
# start waits for resources the cluster does not have free.
_STARTS_WITHIN = 120.0


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
    note = (driver or {}).get("trials")
    waiting = note if note and note["waiting"] else None  # the driver's note, while some of its trials wait
    held = _held(waiting)
    if driver is not None:
        lines.append(f"running now: {described(driver)}{_trials_now(waiting, held)}{_keeping(note)}")
    checkpointed = _checkpointed(sweep_dir, set(trials["trial_id"]))
    if raced:
        state = race_state(spec, trials, ledger.eliminations())
        where = f"over: {state.why}" if state.done else f"{counted(len(state.pending), 'trial')} of the next round to run"
        head = f"race after {state.seeds} seeds" if state.rounds else f"race before its first look (at {spec.race.first} seeds)"
        most = state.most_trials_left(spec.race)
        lines.append(f"{head}: {len(state.alive)} of {len(state.configs)} configurations "
                     f"left; {where} (at most {state.most_trials(spec.race)} trials)")
        # Imported here: the report package imports this module (``planned_trials``).
        from sweeper.report.claims import race_verdicts

        race, verdicts = race_verdicts(spec, state, trials, spec.metric)
        if race.parting:
            lines.append(race.parting_line())
        to_go, started = len(state.pending), [checkpointed[t.id] for t in state.pending if t.id in checkpointed]
    else:
        to_go, started = max(0, (planned or done) - done), list(checkpointed.values())  # unrecorded: all to go
        most = to_go  # a grid runs exactly the trials it lacks: its bound is its count
        if planned:
            lines.append(f"remaining: {to_go}")
    local = cluster_address(None) is None
    slow = local_cpu_warning(spec, None) if spec is not None else None  # None when not local
    seconds, pace_name, matched = pace(sweep_dir, trials, epochs, checkpointed, local=local, driven=driver is not None)
    # The driver's own (``--max-concurrent`` overrides the spec's) while one runs the sweep.
    told = (driver or {}).get("max_concurrent")
    concurrency = told if isinstance(told, int) else spec.max_concurrent if spec is not None else None
    running = waiting["running"] if held else 0
    if running:
        concurrency = running  # the others wait for resources: at the pace of those running now
    waits = held and not running  # none can start now: the times count from when they do
    tuners = tuner_sizes(spec, to_go)  # a round, or a grid, of over TRIALS_PER_TUNER runs as several Tuners
    left = time_left(tuners, started, seconds, pace_name, concurrency, held=waits)
    if left:
        # The round under way is a race's last when nothing may run after it: its look ends it.
        lines.append(("done " if not raced else "the race's last look " if most == to_go else "the next look ") + left)
        if raced and most > to_go:
            # The longest the race can take: the looks may stop configurations sooner, never later.
            # After the round under way, one round per seed of every configuration left.
            later = tuner_sizes(spec, len(state.alive)) * ((most - to_go) // len(state.alive))
            longest = rounds_span([*tuners, *later], started, float(seconds.mean()), concurrency)
            budget = ", within the budget" if spec.race.budget_trials or spec.race.budget_seconds else ""
            lines.append(f"the race ends {when(longest, concurrency, most=True, held=waits)} ({most} trials: the "
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
        # the verdict so far on each claim the race tests, as the report words it (an
        # elimination is final, so "not reproduced" mid-race is the verdict)
        lines.extend(f'claim "{v.claim.text}": {v.outcome}: {v.reason}' for v in verdicts if v.outcome != "not tested")
    return "\n".join(lines)


def _held(waiting: Mapping[str, Any] | None) -> bool:
    """Whether the trials of the driver's note (``waiting``: some wait to start) have waited
    longer than a start takes: the cluster lacks the resources they ask for (another sweep
    joined to it holds its cores)."""
    if waiting is None:
        return False
    try:
        since = _dt.datetime.fromisoformat(waiting["since"]).timestamp()
    except ValueError:
        return False
    return time.time() - since >= _STARTS_WITHIN


def _trials_now(waiting: Mapping[str, Any] | None, held: bool) -> str:
    """``; 0 running, 1 waiting to start since ...`` from the driver's note of its trials (none
    while none waits: the pace line says what runs)."""
    if waiting is None:
        return ""
    why = ": the cluster's resources are taken (by another sweep on it?)" if held else ""
    return f"; {waiting['running']} running, {waiting['waiting']} waiting to start since {waiting['since']}{why}"


def _keeping(note: Mapping[str, Any] | None) -> str:
    """``; its trials are done: it keeps its Ray cluster up for the driver still on it (...)``
    from the driver's note, once its sweep is done (a sweep joined to its cluster runs on)."""
    others = (note or {}).get("keeping")
    if not others:
        return ""
    return (f"; its trials are done: it keeps its Ray cluster up for {drivers_still_on_it(others)} "
            f"({', '.join(others)}; Ctrl-C stops it)")


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
