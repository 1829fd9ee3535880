"""The deblur model: architecture, data, synthetic data, losses, metrics and training.

Public names are imported lazily (PEP 562) so ``import model`` does not pull in TensorFlow:
``sweeper report`` and ``sweeper --help`` must stay light.
"""

from __future__ import annotations

from model.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "model.architecture": ("build_model", "ResidualBlock"),
    "model.train": ("train", "predict", "TrainResult"),
    "model.params": ("TrainParams",),
    "model.data": ("DatasetRef",),
    "model.synth": ("synthesize",),
    "model.losses": ("get_loss", "parse_loss", "LOSSES"),
    "model.metrics": ("METRICS",),
    "model.optimizers": ("OPTIMIZERS",),
    "model.errors": ("UserError", "DataError", "ConfigError"),
})
