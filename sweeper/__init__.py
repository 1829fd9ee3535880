"""sweeper: grid-search orchestration for the deblur model.

The stages, one module (or package) each, in the order data flows through them::

    spec/ (YAML -> SweepSpec) -> space (-> [Trial]) -> dispatch/ (Ray Tune; trainable in the
    workers, tracking to W&B) -> records (TrialReport -> TrialRow) -> ledger -> status,
    report/, study (Optuna mirror), dashboard

Public names are imported on first use, so ``import sweeper`` (and ``sweeper --help``) stays
free of TensorFlow, Ray and pyarrow.
"""

from __future__ import annotations

from model.lazy import lazy_exports

_WHERE = {
    "SweepSpec": "sweeper.spec",
    "SpecError": "sweeper.spec",
    "load_spec": "sweeper.spec:load",
    "Trial": "sweeper.space",
    "expand": "sweeper.space",
    "trial_id": "sweeper.space",
    "RunOptions": "sweeper.dispatch",
    "RunSummary": "sweeper.dispatch",
    "run": "sweeper.dispatch",
    "TrialReport": "sweeper.records",
    "TrialRow": "sweeper.records",
    "EpochRow": "sweeper.records",
    "Ledger": "sweeper.ledger",
    "Report": "sweeper.report",
    "build_report": "sweeper.report",
    "report": "sweeper.report",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
