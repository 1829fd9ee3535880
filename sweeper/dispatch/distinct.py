"""A Ray Tune searcher that proposes only trials the sweep has not run.

Imports Ray at module level (it subclasses Ray's ``Searcher``): the driver imports it only
once Ray is needed, so ``sweeper --help`` and ``--dry-run`` stay light.
"""

from __future__ import annotations

from typing import Any, Iterable

from ray.tune.search import Searcher

from sweeper.space import config_trial, finite_ids
from sweeper.spec import SweepSpec

__all__ = ["DistinctSearch", "MAX_REPEATS"]

MAX_REPEATS = 100
"""Suggestions in a row that repeat a trial before the search counts as spent, on a space
that cannot be listed (one with a distribution repeats a trial almost never)."""


class DistinctSearch(Searcher):
    """``inner`` (a Ray Tune searcher) made to propose only trials this sweep has not run.

    TPE on a discrete space proposes a parameter set again and again; trained again, it buys
    nothing, since the ledger keeps one row per trial id. A repeat of a trial in ``seen`` (the
    ledger's) or already proposed is told to the inner searcher as pruned, Optuna's advice for
    duplicates (its sampler then steers away from it), and the next suggestion is asked for.
    The search is finished once every trial of a finite space is taken, or after
    :data:`MAX_REPEATS` repeats in a row.

    Attributes:
        inner: The wrapped searcher.
        repeats: How many suggestions were repeats (each told to ``inner`` as pruned).
    """

    def __init__(self, inner: Any, spec: SweepSpec, seen: Iterable[str]) -> None:
        super().__init__(metric=inner.metric, mode=inner.mode)
        self.inner, self.seen, self.repeats = inner, set(seen), 0
        self._space = finite_ids(spec)
        # A searcher proposes the searched parameters only; Tune adds the fixed ones after.
        self._fixed = {p.name: p.value for p in spec.parameters if p.kind == "value"}
        self._inner_ids: dict[str, str] = {}  # Tune's trial id -> the one the inner searcher knows

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        ok = self.inner.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.inner.metric, self.inner.mode
        return ok

    def suggest(self, trial_id: str) -> dict | str | None:
        for attempt in range(MAX_REPEATS):
            if self._space is not None and self._space <= self.seen:
                return Searcher.FINISHED
            inner_id = trial_id if attempt == 0 else f"{trial_id}-repeat{attempt}"
            config = self.inner.suggest(inner_id)
            if not isinstance(config, dict):
                return config  # None: ask again later; FINISHED
            tid = config_trial({**self._fixed, **config})[1]
            if tid not in self.seen:
                self.seen.add(tid)
                self._inner_ids[trial_id] = inner_id
                return config
            self.inner.on_trial_complete(inner_id)  # no result, no error: Optuna's PRUNED
            self.repeats += 1
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(self._inner_ids.get(trial_id, trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(self._inner_ids.pop(trial_id, trial_id), result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
