"""The statistics of a race: which configurations one look at the scores eliminates.

A look sees a ``(seeds, configurations)`` matrix of scores, higher is better, every
configuration scored on the same seeds (a block design: a seed is a block, as an instance
is in irace). Two tests, as irace offers them:

- ``friedman``: the Friedman rank test, its p-value from permutations of the ranks within
  each seed (exact under the null whatever the scores' distribution: the chi-square and
  Iman-Davenport approximations rejected 1.5-4 times too often in the far tail a race looks
  at, with 3-5 seeds), then Conover's post-hoc comparison of
  each configuration's rank sum with the best one's (Conover, *Practical Nonparametric
  Statistics*, 1999, pp. 369-371). With two configurations left, Wilcoxon's signed-rank test.
- ``ttest-holm``: a repeated-measures ANOVA F test, then one-sided paired t tests of each
  configuration against the best, Holm-corrected.

Both are gated and step down: nothing is eliminated unless the omnibus test rejects "all
configurations left are equal" at the look's level; then the worst one goes if its
comparison with the best is significant too, and the rest are tested again from scratch.
irace gates its Friedman test but not its t tests, and compares every configuration with the
best in one step; here, without the gate, comparing with the one that happened to score
best eliminates equal configurations far more often than the level says (the best of k equal
scores is biased upwards), and in one step a few clearly worse configurations shrink
Conover's noise estimate until equal ones look different too. With gate and step-down, a look
eliminates any configuration of a field of equals with probability at most its level. A race
looks several times, so each look gets ``alpha / looks`` (:func:`look_level`, Bonferroni
alpha spending): the whole race then eliminates any configuration of a field of equals with
probability at most ``alpha``. ``tests/test_race.py`` checks both by simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["TESTS", "Look", "comparison_level", "look", "look_level", "seeds_needed", "smallest_p"]

TESTS = ("friedman", "ttest-holm")
_TINY = 1e-12  # a spread below this is no spread: identical scores
# Permutations for the Friedman p-value, drawn in chunks; a chunk that already shows the
# p-value is above the level ends the draw (the decision is then the full draw's).
_PERMUTATIONS = 4999
_CHUNK = 500
_PERMUTATION_SEED = 0  # fixed: a race's decisions are a function of its scores, replayed on resume


@dataclass(frozen=True)
class Look:
    """What one test of the alive configurations decided.

    Attributes:
        best: Index (into the columns given) of the best configuration.
        p_value: The omnibus test's p-value (Friedman/F, or Wilcoxon/t with two left), on
            all the configurations given (the first step's).
        eliminated: Column index -> the p-value of its comparison with the best, in the
            order the steps eliminated them.
        gates: Column index -> the omnibus p-value of the step that eliminated it (on the
            configurations left at that step: the gate it passed).
    """

    best: int
    p_value: float
    eliminated: dict[int, float]
    gates: dict[int, float] = field(default_factory=dict)


def look_level(alpha: float, looks: int) -> float:
    """The level of each of ``looks`` tests when the whole race may err with ``alpha``."""
    return alpha / max(1, looks)


def comparison_level(test: str, level: float, left: int) -> float:
    """The level a look's step compares the worst of the ``left`` configurations with the best
    at: the look's ``level`` for Conover's and Wilcoxon's tests, Holm's ``level / (left - 1)``
    for ``ttest-holm`` (Holm's i-th of m comparisons is at ``level / (m - i)``; after i
    step-down eliminations, ``m - i`` is the rivals of the best still left)."""
    return level / max(1, left - 1) if test == "ttest-holm" else level


def look(scores: Any, test: str, level: float) -> Look:
    """Test the configurations (columns) of ``scores`` once.

    Step-down: while the omnibus test on the configurations left rejects "all equal" at
    ``level``, the worst of them is compared with the best (Conover for ``friedman``; a
    one-sided paired t test at Holm's ``level / (m - i)`` for ``ttest-holm``) and eliminated if
    that comparison is significant too; the next step re-ranks and re-tests the rest. Testing
    the rest again, rather than comparing everyone with the best in one step, is what keeps
    clearly separated configurations from shrinking the noise estimate of the others (one
    step of Conover's test eliminated equal configurations alongside clearly worse ones).

    Args:
        scores: ``(seeds, configurations)`` array-like, higher is better, no NaN.
        test: One of :data:`TESTS`.
        level: The look's significance level.

    Returns:
        The :class:`Look`: which columns are eliminated, and why.
    """
    import numpy as np

    if test not in _STEPS:
        raise ValueError(f"unknown race test {test!r}; use one of {', '.join(TESTS)}")
    x = np.asarray(scores, dtype=float)
    n, k = x.shape
    alive, eliminated, gates, first = list(range(k)), {}, {}, None
    while n >= 2 and len(alive) >= 2:
        p, worst, pair = _STEPS[test](x[:, alive], level, comparison_level(test, level, len(alive)))
        first = p if first is None else first
        if worst is None:
            break
        gone = alive.pop(worst)
        eliminated[gone], gates[gone] = pair, p
    means = x.mean(axis=0)
    best = max(alive, key=lambda j: means[j])
    return Look(best, 1.0 if first is None else first, eliminated, gates)


def _friedman_step(x: Any, level: float, at: float) -> tuple[float, int | None, float]:
    """(omnibus p, the worst configuration if it is to go, its comparison's p at level ``at``)."""
    import numpy as np
    from scipy import stats

    n, k = x.shape
    if k == 2:
        return _wilcoxon_step(x, level)
    ranks = np.vstack([stats.rankdata(-row) for row in x])  # rank 1 is the best in its seed
    if all((row == row[0]).all() for row in ranks):  # every score tied in every seed
        return 1.0, None, math.nan
    p = _permutation_p(ranks, level)
    if not p < level:
        return p, None, math.nan
    # Conover: rank sums differ beyond t * sqrt(2 (n A - sum R^2) / df), A the sum of squared ranks.
    sums = ranks.sum(axis=0)
    df = (n - 1) * (k - 1)
    scale = math.sqrt(max(0.0, 2.0 * (n * float((ranks**2).sum()) - float((sums**2).sum())) / df))
    # Rank sums tie often with few seeds; a tie goes by the mean score (the lower is the worse),
    # so which configuration leaves is the scores' choice, never the grid's order.
    means = x.mean(axis=0)
    badness = [(sums[j], -means[j]) for j in range(k)]
    worst, best = max(range(k), key=badness.__getitem__), min(range(k), key=badness.__getitem__)
    if scale <= _TINY:
        # Every seed ranks the configurations the same way: Conover's residual spread is zero
        # and its statistic unbounded, the clearest case there is (the omnibus test already
        # rejected at the level), not a reason to keep the worst.
        return (p, worst, 0.0) if sums[worst] > sums[best] else (p, None, math.nan)
    pair = float(2.0 * stats.t.sf((sums[worst] - sums[best]) / scale, df))
    return (p, worst, pair) if pair < at else (p, None, pair)


def _wilcoxon_step(x: Any, level: float) -> tuple[float, int | None, float]:
    from scipy import stats

    diff = x[:, 0] - x[:, 1]
    if (abs(diff) <= _TINY).all():
        return 1.0, None, math.nan
    p = float(stats.wilcoxon(x[:, 0], x[:, 1], zero_method="wilcox", alternative="two-sided").pvalue)
    # The worse is the one the signed ranks point at (the test's own statistic, so the choice
    # does not flip with the columns' order as a mean of exactly zero would make it), ranked
    # without the zero differences, as zero_method="wilcox" ranks them.
    nonzero = diff[diff != 0]
    ranks = stats.rankdata(abs(nonzero))
    worst = 1 if ranks[nonzero > 0].sum() > ranks[nonzero < 0].sum() else 0
    return (p, worst, p) if p < level else (p, None, p)


def _ttest_step(x: Any, level: float, at: float) -> tuple[float, int | None, float]:
    """(repeated-measures F test's p, the worst configuration if it is to go, its t test's p at
    Holm's level ``at``)."""
    import numpy as np
    from scipy import stats

    n, k = x.shape
    grand = x.mean()
    treatment = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    residual = float(((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum())
    df1, df2 = k - 1, (n - 1) * (k - 1)
    if residual <= _TINY:
        p = 0.0 if treatment > _TINY else 1.0
    else:
        p = float(stats.f.sf((treatment / df1) / (residual / df2), df1, df2))
    if not p < level:
        return p, None, math.nan
    means = x.mean(axis=0)
    worst, best = int(np.argmin(means)), int(np.argmax(means))
    pair = _paired_p(x[:, best] - x[:, worst])
    return (p, worst, pair) if pair < at else (p, None, pair)


def _permutation_p(ranks: Any, level: float) -> float:
    """P(a Friedman statistic at least the observed one) when the configurations' ranks are
    exchangeable within each seed, from random permutations of each seed's ranks.

    With ties fixed within seeds, the sum of squared rank-sum deviations orders permutations
    exactly as the tie-corrected Friedman statistic does.
    """
    import numpy as np

    n, k = ranks.shape
    centre = n * (k + 1) / 2.0

    def statistic(r: Any) -> Any:
        return ((r.sum(axis=-2) - centre) ** 2).sum(axis=-1)

    observed = float(statistic(ranks))
    observed -= 1e-9 * max(1.0, abs(observed))  # a permutation's equal statistic counts as at least it
    # Each seed's ranks in sorted order before drawing: the permutations drawn (and so the
    # p-value) are then the same whatever order the configurations come in.
    ranks = np.sort(ranks, axis=1)
    rng = np.random.default_rng(_PERMUTATION_SEED)
    drawn = above = 0
    while drawn < _PERMUTATIONS:
        size = min(_CHUNK, _PERMUTATIONS - drawn)
        shuffled = rng.permuted(np.broadcast_to(ranks, (size, n, k)), axis=2)
        above += int((statistic(shuffled) >= observed).sum())
        drawn += size
        if (above + 1) / (_PERMUTATIONS + 1) >= level:  # no more draws can bring it below the level
            break
    return (above + 1) / (drawn + 1)


_STEPS = {"friedman": _friedman_step, "ttest-holm": _ttest_step}


def _paired_p(diff: Any) -> float:
    """One-sided paired t test that ``diff`` (best minus other) is above zero."""
    from scipy import stats

    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    if sd <= _TINY:
        return 0.0 if mean > _TINY else 1.0
    return float(stats.t.sf(mean / (sd / math.sqrt(len(diff))), len(diff) - 1))


def smallest_p(test: str, left: int, seeds: int, observed: Sequence[float] = ()) -> float:
    """The smallest p-value a look at ``left`` configurations on ``seeds`` seeds can give,
    whatever the scores of the seeds not run yet, where the test has such a floor; 0 where it
    has none.

    With two left, ``friedman`` is Wilcoxon's exact signed-rank test, and ``observed`` the two's
    paired differences on the seeds run so far. Its p is smallest when every seed still to run
    favours the same one by more than any seed so far (their ranks go on top; the others' stay
    as they are): 2 / 2**seeds when every seed favours it (fewer seeds can never reach a small
    level: 0.0078 on 8), more when one so far went the other way. The t tests have no floor,
    nor does the permutation p with three or more left (an estimate, which may come out below
    its exact floor).
    """
    if test != "friedman" or left != 2:
        return 0.0
    import numpy as np

    done = [float(d) for d in observed][:seeds]
    top = max((abs(d) for d in done), default=0.0)
    ahead = [top + 1.0 + i for i in range(seeds - len(done))]  # distinct, so no tie blurs the ranks
    return min(_wilcoxon_step(np.array([[d, 0.0] for d in done + [sign * a for a in ahead]]), 0.0)[0]
               for sign in (1.0, -1.0))


def seeds_needed(diff: Sequence[float], level: float, power: float = 0.8, limit: int = 10_000) -> int | None:
    """Seeds a one-sided paired t test at ``level`` needs to tell the observed mean difference
    from zero with probability ``power``, taking the observed spread as the truth.

    Returns:
        The number of seeds, or ``None`` when the observed difference is zero (no number of
        seeds decides it) or more than ``limit`` would be needed.
    """
    from scipy import stats

    values = [float(v) for v in diff]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if abs(mean) <= _TINY:
        return None
    if sd <= _TINY:
        return 2
    effect = abs(mean) / sd
    for n in range(2, limit + 1):
        if (stats.t.ppf(1 - level, n - 1) + stats.t.ppf(power, n - 1)) / math.sqrt(n) <= effect:
            return n
    return None
