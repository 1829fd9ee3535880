"""How long a sweep has to go: the pace of its trials (recorded, running, checkpointed) and
the wall time that many trials take at a concurrency. Read from files alone (no Ray)."""

from __future__ import annotations

import heapq
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from model.runtime import cpu_emulates
from sweeper.folder import checkpoint_path
from sweeper.records import counted

if TYPE_CHECKING:
    import pandas as pd

    from model.checkpoint import Progress

__all__ = ["pace", "rounds_span", "span", "time_left", "when"]

# How many of the last recorded trials set an estimate's pace: enough that one slow trial does
# not set it, few enough to follow the host's own speed (lr_rho_race's trials took 47-49 min
# for a day on one host, then 38-43 min, and a mean of all 18 said 49).
_RECENT = 6
# A running trial's last epochs that give the pace now, and how many of them may pass since
# its checkpoint was written for it to count as running still (not cut short).
_RECENT_EPOCHS = 3
_RUNNING_WITHIN = 3.0


def pace(sweep_dir: Path, trials: "pd.DataFrame", epochs: "pd.DataFrame", checkpointed: Mapping[str, "Progress"],
         *, local: bool, driven: bool) -> tuple["pd.Series", str, bool]:
    """The whole-trial seconds a sweep's trials to go take, how to name their mean (``{}`` for
    it), and whether they were computed as this CPU computes them.

    Trials running on this node now set it (a ``local`` sweep; ``driven``: a driver holds it),
    else the recorded ones (:func:`_recorded_pace`), else the epochs this node checkpointed.
    """
    seconds, name, matched = _recorded_pace(trials, epochs, local)
    running, running_name = _running_pace(sweep_dir, checkpointed, driven) if local else (seconds[:0], "")
    if not running.empty:
        # Trials running here now set the pace: the recorded ones may have run on another
        # machine (a race going on on a new host: 46-58 s an epoch on the last, 78 s here).
        return running, running_name, True
    if seconds.empty or (local and not matched):
        # No trial recorded yet, or none computed as this CPU computes them (a race begun on an
        # AVX2-only CPU, going on on one with native bf16, 5x faster): the epochs this node has
        # checkpointed so far set the pace when there are any.
        here, here_name = _checkpoint_pace(checkpointed.values())
        if seconds.empty or not here.empty:
            return here, here_name, True  # this node's own pace
    return seconds, name, matched


def _recorded_pace(trials: "pd.DataFrame", epochs: "pd.DataFrame", local: bool) -> tuple["pd.Series", str, bool]:
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
    """:func:`_recorded_pace` before any trial is recorded, or when none was computed as this CPU computes
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


def time_left(tuners: Sequence[int], started: Sequence["Progress"], seconds: "pd.Series", pace: str,
              concurrency: int | None, held: bool = False) -> str | None:
    """When the trials to go, run as ``tuners`` (their sizes, one after another), should be
    done: each takes the mean of ``seconds`` (named by ``pace``), as :func:`rounds_span` runs
    them (from when they start, if ``held``: none can start now); ``None`` with nothing to go on."""
    to_go = sum(tuners)
    if not to_go or seconds.empty:
        return None
    mean = float(seconds.mean())
    basis = f"{counted(to_go, 'trial')} at {pace.format(_duration(mean))}"
    how = f", {concurrency} at a time" if concurrency else ""
    return (f"{when(rounds_span(tuners, started, mean, concurrency), concurrency, held=held)} ({basis}{how}; "
            "checkpointed epochs counted)")


def span(to_go: int, started: Sequence["Progress"], mean: float, concurrency: int | None) -> float:
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


def rounds_span(rounds: Sequence[int], started: Sequence["Progress"], mean: float, concurrency: int | None) -> float:
    """Seconds until ``rounds`` of trials (their sizes) are done one after another: a race's
    rounds, whose look waits for all a round's trials, or the Tuners a long grid runs as, each
    waiting for all its own (5 trials 2 at a time take 3 trial times a round, not 2.5).
    :func:`span` of each, the ``started`` ones in the first."""
    return sum(span(n, started if i == 0 else (), mean, concurrency) for i, n in enumerate(rounds))


def when(seconds: float, concurrency: int | None, most: bool = False, held: bool = False) -> str:
    """``in about 2.1 h`` of wall time with a concurrency, else ``after about 2.1 h of trial
    time``; ``in at most about 2.1 h`` for an upper bound (``most``); ``about 2.1 h after its
    trials start`` while none can (``held``: the cluster's resources are taken)."""
    about = f"{'at most ' if most else ''}about {_duration(seconds)}"
    if not concurrency:
        return f"after {about} of trial time"
    return f"{about} after its trials start" if held else f"in {about}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
