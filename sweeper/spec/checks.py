"""The spec's error type, message helpers and field checks.

A check takes a value and returns a one-line problem (without its key path) or ``None``.
The block dataclasses and the loader share these, so a value is judged the same whether it
came from YAML or from Python.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from model.errors import ConfigError, suggest
from model.params import is_int, one_of

__all__ = [
    "MAX_INT",
    "Check",
    "SpecError",
    "choice",
    "directory",
    "is_real",
    "mapping",
    "number_hint",
    "one_line",
    "raise_if",
    "real",
    "run_checks",
    "safe_name",
    "show",
    "unknown_keys",
    "whole",
]

Check = Callable[[Any], "str | None"]
"""A field check: value -> one-line problem (without the key path) or ``None``."""

# Ints beyond float precision are never a sensible hyperparameter, and capping them keeps
# every later float conversion (math.isfinite, probes) from raising OverflowError.
MAX_INT = 2**53
_MAX_MESSAGE = 400
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")


class SpecError(ConfigError):
    """A bad search space: every problem found, one line each, naming its key path and the fix.

    Attributes:
        problems: one-line messages such as
            ``parameters.optimizer.values[2]: unknown optimizer 'rmsprp' (did you mean 'rmsprop'?)``.
        source: the file (or ``<string>``) the spec came from; prefixes every line of ``str()``.
    """

    exit_code = 2

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(one_line(p) for p in problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + problem for problem in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions unpickle as cls(*args); keep problems intact across Ray/multiprocessing.
        return (type(self), (self.problems, self.source))


def one_line(message: str) -> str:
    """Collapse a message to one bounded line, so the CLI prints exactly one line per problem."""
    text = " ".join(str(message).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def raise_if(problems: list[str]) -> None:
    """Raise a :class:`SpecError` listing ``problems``, if there are any.

    Raises:
        SpecError: when ``problems`` is not empty.
    """
    if problems:
        raise SpecError(problems)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a finite int or float that converts to float without overflow."""
    if is_int(value):
        return abs(value) <= MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def show(value: Any) -> str:
    """A short, YAML-flavoured rendering of a user's value for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (set, frozenset)):
        return "a set"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def number_hint(value: Any) -> str:
    """Explain why a number-looking value is text (PyYAML reads YAML 1.1: ``1e-3`` is a string).

    Returns:
        ``" (YAML read '1e-3' as text; write 0.001)"`` for such text, else ``""``.
    """
    if isinstance(value, str):
        for kind in (int, float):
            try:
                number = kind(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return f" (YAML read {value!r} as text; write {number!r})"
    return ""


def unknown_keys(path: str, block: Mapping[Any, Any], valid: Sequence[str]) -> list[str]:
    """One problem per key of ``block`` not in ``valid``, with a did-you-mean."""
    where = f"{path}." if path else ""
    return [
        f"{where}{key}: unknown key {show(key)}{suggest(str(key), valid)}; valid: {', '.join(valid)}"
        for key in block
        if key not in valid
    ]


def mapping(path: str, value: Any, example: str, problems: list[str]) -> dict[Any, Any] | None:
    """``value`` as a dict; ``null`` counts as empty.

    Returns:
        The dict, or ``None`` (with a problem appended to ``problems``) when ``value`` is
        anything else.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    problems.append(f"{path}: expected a mapping like {example}, got {show(value)}")
    return None


def run_checks(prefix: str, values: Mapping[str, Any], checks: Mapping[str, Check]) -> list[str]:
    """Apply ``checks`` (key -> check) to the keys present in ``values``; problems are prefixed."""
    return [
        f"{prefix}{key}: {problem}"
        for key, check in checks.items()
        if key in values and (problem := check(values[key])) is not None
    ]


def whole(minimum: int, *, optional: bool = False) -> Check:
    """A check for a whole number >= ``minimum`` (``None`` passes when ``optional``)."""

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if is_int(value):
            return None if value >= minimum else f"{value} is too small; use a whole number >= {minimum}"
        return f"expected a whole number >= {minimum}, got {show(value)}{number_hint(value)}"

    return check


def real(*, above: float | None = None, at_least: float | None = None, optional: bool = False) -> Check:
    """A check for a finite number ``> above`` or ``>= at_least`` (give one of them);
    ``optional`` lets ``None`` (not given) through."""
    bound = f"> {above:g}" if above is not None else f">= {at_least:g}"

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not is_real(value):
            return f"expected a number {bound}, got {show(value)}{number_hint(value)}"
        if (above is not None and value <= above) or (at_least is not None and value < at_least):
            return f"{value} is out of range; use a number {bound}"
        return None

    return check


def choice(valid: Sequence[str], what: str) -> Check:
    """A check for one of the strings ``valid``; ``what`` names the kind in the message."""
    return one_of(valid, what, show)


def safe_name(what: str, example: str, *, optional: bool = False) -> Check:
    """A check for a name that is safe as one path component (``None`` passes when ``optional``)."""

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            quote = " (quote it)" if isinstance(value, (int, float)) else ""
            return f"expected a {what} like {example!r}, got {show(value)}{quote}"
        if not _SAFE_NAME.fullmatch(value):
            return (
                f"{show(value)} is not a safe {what}; use 1-128 of A-Z a-z 0-9 _ . - "
                f"not starting with '.', e.g. {example!r}"
            )
        return None

    return check


def directory(value: Any) -> str | None:
    """Check a folder path: a :class:`~pathlib.Path` or a non-blank string without NUL."""
    if isinstance(value, Path) or (isinstance(value, str) and value.strip() and "\0" not in value):
        return None
    return f"expected a folder path like 'data', got {show(value)}"
