"""The deblur model: architecture, data, synthetic data, losses, metrics and training.

Public names are imported lazily (PEP 562) so ``import model`` does not pull in TensorFlow:
``sweeper report`` and ``sweeper --help`` must stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "build_model",
    "ResidualBlock",
    "train",
    "predict",
    "TrainParams",
    "TrainResult",
    "DatasetRef",
    "synthesize",
    "get_loss",
    "parse_loss",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "UserError",
    "DataError",
    "ConfigError",
]

_WHERE = {
    "build_model": "model.architecture",
    "ResidualBlock": "model.architecture",
    "train": "model.train",
    "predict": "model.train",
    "TrainParams": "model.train",
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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
