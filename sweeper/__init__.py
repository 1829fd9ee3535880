"""sweeper: grid-search orchestration for the deblur model (spec -> trials -> Ray Tune -> ledger -> report).

Public names are imported lazily so ``import sweeper`` stays free of TensorFlow and Ray.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SweepSpec", "SpecError", "load_spec"]

_WHERE = {
    "SweepSpec": ("sweeper.spec", "SweepSpec"),
    "SpecError": ("sweeper.spec", "SpecError"),
    "load_spec": ("sweeper.spec", "load"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module, attr = _WHERE[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sweeper' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
