"""The ``--set key=value`` language: edits to a parsed spec document before it is validated.

``--set parameters.epochs.value=2`` sets a dotted key, creating mappings on the way; the
value is read as YAML. ``--set epochs=2`` is shorthand for ``parameters.epochs.value`` (a
list value sets ``values``). ``--set '~sweeper.race'`` removes a key, as Hydra's ``~key``
does (``~seed`` removes the parameter): a spec's race, say, becomes a plain grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import yaml

from model.params import PARAMETER_NAMES
from sweeper.spec.checks import show
from sweeper.spec.params import PARAM_KEYS

__all__ = ["apply_overrides"]


def apply_overrides(doc: dict[Any, Any], overrides: Sequence[str]) -> list[str]:
    """Apply ``--set`` items to ``doc`` in place.

    Args:
        doc: the parsed document (the caller passes a copy).
        overrides: items such as ``"sweeper.max_concurrent=1"`` or ``"optimizer=[adam,sgd]"``.

    Returns:
        One problem per malformed item; the well-formed ones are applied regardless.
    """
    problems: list[str] = []
    if isinstance(overrides, (str, bytes)):
        return [f"--set: expected a list of key=value strings, got one string {show(overrides)}"]
    for item in overrides:
        label = f"--set {show(item)}"
        if isinstance(item, str) and item.startswith("~"):
            if (problem := _remove(doc, item[1:])) is not None:
                problems.append(f"{label}: {problem}")
            continue
        if not isinstance(item, str) or "=" not in item:
            problems.append(f"{label}: expected key=value, e.g. --set epochs=2 or --set sweeper.max_concurrent=1")
            continue
        key, text = item.split("=", 1)
        if (path := _path(key)) is None:
            problems.append(f"{label}: empty key; expected dotted.key=value, e.g. parameters.epochs.value=2")
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problems.append(f"{label}: the value is not valid YAML: {getattr(err, 'problem', None) or err}")
            continue
        except Exception as err:  # noqa: BLE001 - as when loading a file: hostile values must not crash
            problems.append(f"{label}: the value is not valid YAML: {type(err).__name__}")
            continue
        keys, parameter = path
        if parameter:  # `--set epochs=2` fixes a parameter; `--set seed=[0,1]` lists values
            value = {"values" if isinstance(value, list) else "value": value}
        if (problem := _set(doc, keys, value)) is not None:
            problems.append(f"{label}: {problem}")
    return problems


def _path(key: str) -> tuple[list[str], bool] | None:
    """``key``'s dotted parts, a bare parameter name (``epochs``) read as
    ``parameters.epochs``, and whether it was one; ``None`` when a part is empty."""
    keys = key.strip().split(".")
    if not all(keys):
        return None
    if len(keys) == 1 and keys[0] in PARAMETER_NAMES:
        return ["parameters", keys[0]], True
    return keys, False


def _remove(doc: dict[Any, Any], key: str) -> str | None:
    """Delete the dotted ``key`` from ``doc`` (``seed`` is ``parameters.seed``); a problem
    when it is malformed or not there: a misspelt removal must not pass for a done one."""
    if "=" in key:
        return "a removal takes no value; expected ~dotted.key, e.g. --set '~sweeper.race'"
    if (path := _path(key)) is None:
        return "empty key; expected ~dotted.key, e.g. --set '~sweeper.race'"
    keys = path[0]
    target: Any = doc
    for part in keys[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
    if not isinstance(target, dict) or keys[-1] not in target:
        return f"{'.'.join(keys)} is not in the spec; nothing to remove"
    del target[keys[-1]]
    return None


def _set(doc: dict[Any, Any], keys: list[str], value: Any) -> str | None:
    """Set ``doc[keys[0]][keys[1]]...`` to ``value``; a problem when a step is not a mapping."""
    target: Any = doc
    for depth, part in enumerate(keys[:-1]):
        if target.get(part) is None:
            target[part] = {}
        target = target[part]
        if not isinstance(target, dict):
            return f"{'.'.join(keys[: depth + 1])} is {show(target)}, not a mapping"
    if len(keys) == 3 and keys[0] == "parameters" and keys[2] in ("value", "values"):
        # Setting value or values replaces the parameter's other alternatives.
        for other in PARAM_KEYS:
            target.pop(other, None)
    target[keys[-1]] = value
    return None
