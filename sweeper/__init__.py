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

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "sweeper.spec": ("SweepSpec", "SpecError", "load as load_spec"),
    "sweeper.space": ("Trial", "expand", "trial_id"),
    "sweeper.dispatch": ("RunOptions", "RunSummary", "run"),
    "sweeper.records": ("TrialReport", "TrialRow", "EpochRow"),
    "sweeper.ledger": ("Ledger",),
    "sweeper.report": ("Report", "build_report", "report"),
})
