"""Where a race stands, replayed from the ledger: rounds tested, configurations eliminated,
the trials to run next, and whether it is over.

The state is a function of the spec, the recorded trials and the recorded eliminations, so
a race resumed after a crash (or read by ``sweeper report``) is the same race: the tests are
deterministic, and a look once recorded is never re-decided: its eliminations stand as
recorded, none undone and none added, even if the spec's race settings (or the tests) changed
since. A look that eliminated nothing is recorded too (a row without a configuration), so it
stays a look that eliminated nothing.

A round is a number of seeds ``n``: every configuration still in the race has its trials on
seeds ``0 .. n-1``. The race starts at ``first`` seeds and adds one seed per round up to
``max``, testing after each round; a configuration whose trial failed (error, diverged) is
eliminated at that round, since a configuration that cannot train is no candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from sweeper.race.elimination import comparison_level, look, look_level, seeds_needed, smallest_p
from sweeper.records import Elimination, shown_apart
from sweeper.space import Trial, config_id, expand
from sweeper.spec import Race, SweepSpec

__all__ = ["Round", "RaceState", "race_state"]

# Why a race ended.
ONE_LEFT = "one configuration is left"
MAX_SEEDS = "every configuration left ran the maximum seeds"
BUDGET = "the budget is spent"


@dataclass(frozen=True)
class Round:
    """One test of the race.

    Attributes:
        seeds: The seeds every configuration in it had run.
        alive: The configurations tested (ids, in grid order).
        p_value: The omnibus test's p-value (``None`` with fewer than two to compare).
        best: The best configuration at this test.
        eliminated: The configurations it eliminated, in the order they left (failures first).
    """

    seeds: int
    alive: tuple[str, ...]
    p_value: float | None
    best: str
    eliminated: tuple[str, ...]


@dataclass(frozen=True)
class RaceState:
    """A race, as far as the ledger has run it.

    Attributes:
        configs: Configuration id -> its parameters but the seed, in grid order.
        rounds: The tests so far.
        eliminated: Configuration id -> why it left the race (recorded or decided now).
        new: The eliminations decided by this replay that the ledger does not hold yet.
        new_looks: The looks this replay made that eliminated nothing and that the ledger
            does not hold yet (:meth:`Elimination.none_at` rows).
        alive: The configurations still in the race, in grid order.
        pending: The trials to run next (empty when the race is over).
        done: Whether the race is over; ``why`` says how it ended.
        level: Each look's significance level (``alpha / looks``).
        trials_run: Trials recorded so far; ``seconds_run`` their seconds.
    """

    configs: dict[str, dict[str, Any]]
    rounds: tuple[Round, ...]
    eliminated: dict[str, Elimination]
    new: tuple[Elimination, ...]
    alive: tuple[str, ...]
    pending: tuple[Trial, ...]
    done: bool
    why: str
    level: float
    trials_run: int
    seconds_run: float
    scores: dict[str, dict[int, float]] = field(default_factory=dict)  # config -> seed -> signed score
    new_looks: tuple[Elimination, ...] = ()

    @property
    def to_record(self) -> tuple[Elimination, ...]:
        """The race rows the ledger lacks: :attr:`new`, then :attr:`new_looks`."""
        return self.new + self.new_looks

    @property
    def seeds(self) -> int:
        """Seeds every configuration still in the race has run (the last round tested)."""
        return self.rounds[-1].seeds if self.rounds else 0

    def full_trials(self, race_max: int) -> int:
        """Trials every configuration on ``race_max`` seeds would have cost: what racing saves on."""
        return len(self.configs) * race_max

    def most_seeds(self, race: Race) -> int:
        """The most seeds a configuration left can come to: ``race.max``, or fewer where a
        trials budget stops new rounds, as the race does (a seconds budget is left out, so
        this stays an upper bound)."""
        if self.done:
            return self.seeds
        seeds, run = self.under_way(race), self.trials_run + len(self.pending)
        while seeds < race.max and (race.budget_trials is None or run < race.budget_trials):
            seeds, run = seeds + 1, run + len(self.alive)
        return seeds

    def most_trials_left(self, race: Race) -> int:
        """The most trials the race can still run: the round under way's, then one per
        configuration left for each further seed up to :meth:`most_seeds` (no look
        eliminating another)."""
        if self.done:
            return 0
        return len(self.pending) + len(self.alive) * (self.most_seeds(race) - self.under_way(race))

    def most_trials(self, race: Race) -> int:
        """The most trials the race can come to in all: those run plus :meth:`most_trials_left`."""
        return self.trials_run + self.most_trials_left(race)

    def first_deciding_seeds(self, race: Race) -> int | None:
        """The fewest seeds at which a look could eliminate one of the configurations left
        (the round under way's where nothing rules it out), by the test's :func:`smallest_p`
        given the seeds run so far; ``None`` when no look up to :meth:`most_seeds` can (or the
        race is over)."""
        if self.done:
            return None
        seeds, most, observed = self.under_way(race), self.most_seeds(race), self.differences()
        while seeds <= most and smallest_p(race.test, len(self.alive), seeds, observed) >= self.level:
            seeds += 1
        return seeds if seeds <= most else None

    def differences(self) -> tuple[float, ...]:
        """With two configurations left, their paired differences (signed scores, the first
        minus the second) on the seeds both have run; else none."""
        return self.paired(*self.alive) if len(self.alive) == 2 else ()

    def paired(self, first: str, second: str) -> tuple[float, ...]:
        """``first``'s signed scores minus ``second``'s, on the seeds both have run."""
        mine, theirs = self.scores.get(first, {}), self.scores.get(second, {})
        return tuple(mine[s] - theirs[s] for s in sorted(mine.keys() & theirs.keys()))

    def seeds_to_part(self, diffs: tuple[float, ...]) -> int | None:
        """Seeds that would tell apart two configurations in the race with 80% power, from
        their :meth:`paired` differences ``diffs``: :func:`seeds_needed` at the level of one of
        the looks' comparisons with the leader (the look's level over the rivals left)."""
        return seeds_needed(diffs, self.level / max(1, len(self.alive) - 1))

    def under_way(self, race: Race) -> int:
        """The seeds of the round under way (not done: it has trials pending)."""
        return self.seeds + 1 if self.rounds else race.first


def race_state(spec: SweepSpec, trials: Any, eliminations: Any = None) -> RaceState:
    """Replay a raced sweep from its ledger.

    Args:
        spec: A spec with ``race`` set.
        trials: The ledger's trials frame.
        eliminations: The ledger's race frame (``None``: nothing recorded yet).

    Returns:
        The :class:`RaceState`.
    """
    race = spec.race
    if race is None:
        raise ValueError(f"{spec.name}: not a raced sweep (no sweeper.race)")
    sign = 1.0 if spec.goal == "maximize" else -1.0
    grid: dict[str, dict[int, Trial]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for trial in expand(spec):
        cid = config_id(trial.params)
        configs.setdefault(cid, {k: v for k, v in trial.params.items() if k != "seed"})
        grid.setdefault(cid, {})[int(trial.params["seed"])] = trial
    rows = {r["trial_id"]: r for r in trials.to_dict("records")}
    records = [] if eliminations is None else [
        Elimination(**{k: r[k] for k in Elimination.__dataclass_fields__}) for r in eliminations.to_dict("records")]
    recorded = {e.config_id: e for e in records if e.eliminates}
    looked = {e.round for e in records if not e.eliminates}  # looks recorded as eliminating nothing
    ran = [rows[t.id] for seeds in grid.values() for t in seeds.values() if t.id in rows]
    seconds = sum(float(r["seconds"]) for r in ran if math.isfinite(float(r["seconds"])))
    level = look_level(race.alpha, race.looks)
    eliminated: dict[str, Elimination] = {}
    rounds: list[Round] = []
    scores: dict[str, dict[int, float]] = {}

    def state(pending: tuple[Trial, ...], done: bool, why: str) -> RaceState:
        new = tuple(e for cid, e in eliminated.items() if cid not in recorded)
        quiet = tuple(Elimination.none_at(r.seeds, r.p_value, r.best, race.test, level)
                      for r in rounds if not r.eliminated and r.seeds not in looked)
        return RaceState(configs, tuple(rounds), dict(eliminated), new,
                         tuple(c for c in configs if c not in eliminated), pending, done, why, level,
                         len(ran), seconds, scores, quiet)

    for n in range(race.first, race.max + 1):
        for cid, elimination in recorded.items():
            if elimination.round < n:
                eliminated.setdefault(cid, elimination)  # recorded before: it stands
        alive = [c for c in configs if c not in eliminated]
        missing = tuple(grid[c][s] for c in alive for s in range(n) if grid[c][s].id not in rows)
        if missing:
            started = any(grid[c][n - 1].id in rows for c in alive)
            if n > race.first and not started and _spent(race, len(ran), seconds):
                return state((), True, BUDGET)
            return state(missing, False, "")
        decided, p_value, best = _test_round(spec, n, alive, {c: [rows[grid[c][s].id] for s in range(n)]
                                                               for c in alive}, sign, level, scores)
        taken = {cid: e for cid, e in recorded.items() if e.round == n}
        if taken or n in looked:
            # A look once recorded stands as recorded: a later change to the tests or to the
            # spec's race settings decides the looks still to come, never one already taken.
            decided = taken
        eliminated.update({c: e for c, e in decided.items() if c not in eliminated})
        # In the order they left: failures, then the step-down's eliminations one by one.
        rounds.append(Round(n, tuple(alive), p_value, best, tuple(c for c in decided if c in alive)))
        if sum(c not in eliminated for c in configs) <= 1:
            return state((), True, ONE_LEFT)
    return state((), True, MAX_SEEDS)


def _test_round(spec: SweepSpec, n: int, alive: list[str], rows: Mapping[str, list[Mapping[str, Any]]],
                sign: float, level: float, scores: dict[str, dict[int, float]],
                ) -> tuple[dict[str, Elimination], float | None, str]:
    """Round ``n``: failed configurations leave, then the test runs on the others.

    Returns:
        The round's eliminations, the omnibus p-value (``None`` with fewer than two scored)
        and the best configuration (by the test; the only scored one; or ``""``).
    """
    decided: dict[str, Elimination] = {}
    scored = []
    for cid in alive:
        values = [float(r[spec.metric]) for r in rows[cid]]
        failed = [s for s, r in enumerate(rows[cid]) if r["status"] != "ok" or not math.isfinite(values[s])]
        if failed:
            status = rows[cid][failed[0]]["status"]
            decided[cid] = Elimination(cid, n, test="failed", reason=f"its seed {failed[0]} trial ended {status}")
            continue
        scores[cid] = {s: sign * v for s, v in enumerate(values)}
        scored.append(cid)
    if len(scored) < 2:
        return decided, None, scored[0] if scored else ""
    result = look([[scores[c][s] for c in scored] for s in range(n)], spec.race.test, level)
    best = scored[result.best]
    for step, (j, p) in enumerate(result.eliminated.items()):
        decided[scored[j]] = Elimination(
            scored[j], n, p_value=p, best_config_id=best, test=spec.race.test,
            reason=_behind(spec.race.test, n, p, result.gates[j], len(scored) - step, level))
    return decided, result.p_value, best


def _behind(test: str, seeds: int, p: float, gate: float, left: int, level: float) -> str:
    """Why a look eliminated a configuration: its comparison with the best, and the omnibus
    test of the step that let it go (on the ``left`` configurations then in the race)."""
    gate_shown, level_shown = shown_apart(gate, level)
    return (f"behind the best after {seeds} seeds ({test}: {comparison(test, p, left, level)}, omnibus "
            f"p={gate_shown} on the {left} left, level {level_shown})")


def comparison(test: str, p: float, left: int | None = None, level: float | None = None) -> str:
    """An elimination's comparison with the best as a reason or a figure says it: ``p=0.0013``.

    Args:
        test: The race's test.
        p: The comparison's p-value.
        left: The configurations in the race at that step, when the wording may name them.
        level: The look's level, when the wording has room for the level ``p`` was tested at:
            ``p`` then has the digits that tell it from that level, and Holm's level (below
            the look's) is named.
    """
    # Conover's p is 0 only when every seed ranked the configurations left alike (no residual
    # spread): "p=0" would read as a rounding slip, so say what happened instead.
    if test == "friedman" and p == 0.0:
        return f"last of the {left} left on every seed" if left else "last on every seed"
    if left is None or level is None:
        return f"p={p:.2g}"
    at = comparison_level(test, level, left)
    shown, at_shown = shown_apart(p, at)
    return f"p={shown}" + (f" at Holm's level {at_shown}" if at != level else "")


def _spent(race: Any, trials_run: int, seconds: float) -> bool:
    return (race.budget_trials is not None and trials_run >= race.budget_trials) or (
        race.budget_seconds is not None and seconds >= race.budget_seconds)
