"""Lazy re-exports for a package ``__init__`` (PEP 562), so that importing a package does
not import the heavy libraries (TensorFlow, Ray, pandas, pyarrow) behind some of its names.

``sweeper --help`` and ``sweeper report`` must stay free of TensorFlow and Ray, yet
``model.build_model`` and ``sweeper.run`` should still be one import away.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import each public name on first use.

    Args:
        package: The package's ``__name__`` (for the AttributeError message).
        where: Public name -> ``"module"`` or ``"module:attribute"`` (when the attribute's
            name differs from the public one).

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = where[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
