"""The deblur model: architecture, data, synthetic data, losses, metrics and training.

Public names are imported lazily (PEP 562) so ``import model`` does not pull in TensorFlow:
``sweeper report`` and ``sweeper --help`` must stay light.
"""

from __future__ import annotations

from model.lazy import lazy_exports

_WHERE = {
    "build_model": "model.architecture",
    "ResidualBlock": "model.architecture",
    "train": "model.train",
    "predict": "model.train",
    "TrainParams": "model.params",
    "TrainResult": "model.train",
    "DatasetRef": "model.data",
    "synthesize": "model.synth",
    "get_loss": "model.losses",
    "parse_loss": "model.losses",
    "LOSSES": "model.losses",
    "METRICS": "model.metrics",
    "OPTIMIZERS": "model.optimizers",
    "UserError": "model.errors",
    "DataError": "model.errors",
    "ConfigError": "model.errors",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
