"""What ``sweeper run --dry-run`` shows: the trials a run would start, from the spec and the
ledger (nothing runs, no Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeper.ledger import Ledger
from sweeper.race import RaceState, race_state
from sweeper.records import counted
from sweeper.space import Trial, expand, trial_count
from sweeper.spec import SweepSpec

__all__ = ["Preview", "planned_trials", "preview"]


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
