"""Lazy re-exports for a package ``__init__`` (PEP 562), so that importing a package does
not import the heavy libraries (TensorFlow, Ray, pandas, pyarrow) behind some of its names.

``sweeper --help`` and ``sweeper report`` must stay free of TensorFlow and Ray, yet
``model.build_model`` and ``sweeper.run`` should still be one import away.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__all__``, and module ``__getattr__`` and ``__dir__`` that import each
    public name on first use.

    Args:
        package: The package's ``__name__`` (for the AttributeError message).
        exports: Module -> the public names it provides, each ``"name"`` or, where the public
            name differs from the module's, ``"attribute as name"`` (as in an import).

    Returns:
        ``(__all__, __getattr__, __dir__)`` to assign at module level.
    """
    where: dict[str, tuple[str, str]] = {}  # public name -> (module, attribute)
    for module, names in exports.items():
        for entry in names:
            attribute, _, public = entry.partition(" as ")
            where[public or attribute] = (module, attribute)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = where[name]
        return getattr(importlib.import_module(module), attribute)

    def __dir__() -> list[str]:
        return sorted(where)

    return list(where), __getattr__, __dir__
