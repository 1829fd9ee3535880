"""The bridge to W&B's own sweep schema (the optional ``sweeps`` package).

``sweeps`` declares ``numpy<2``, which conflicts with TensorFlow, so it is installed without
its dependencies and may be missing; the check is then skipped, with one logged warning.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any, Callable

__all__ = ["INSTALL_HINT", "schema_problems", "wandb_checker"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps 'sweeps>=0.2,<0.4' jsonschema jsonref pydantic"
"""How to install ``sweeps``: without its dependencies, since it pins numpy<2."""


@functools.cache  # the import is slow, and the warning is logged once per process
def wandb_checker() -> Callable[[dict[str, Any]], list[str]] | None:
    """``sweeps.schema_violations_from_proposed_config``, or ``None`` when ``sweeps`` is missing.

    Logs one warning (the first call only; the result is cached) when ``sweeps`` cannot be
    imported.
    """
    try:
        with warnings.catch_warnings():
            # sweeps 0.3.0 declares a pydantic-v1 config key; pydantic 2 warns on import.
            warnings.filterwarnings("ignore", category=UserWarning, module="pydantic")
            from sweeps import schema_violations_from_proposed_config
    except ImportError:
        logger.warning(
            "W&B sweep schema check skipped: the 'sweeps' package is not installed. Install it with: %s "
            "(without its dependencies, because sweeps declares numpy<2, which conflicts with TensorFlow)",
            INSTALL_HINT,
        )
        return None
    return schema_violations_from_proposed_config


def schema_problems(document: dict[str, Any]) -> list[str]:
    """Violations of W&B's sweep schema by ``document`` (the spec minus ``sweeper:``).

    Run only once our own checks pass: for the same mistake W&B's messages are vaguer
    ("... is not valid under any of the given schemas") and would duplicate ours, and its
    function raises ValueError on some malformed shapes. What it still reports after our
    checks pass is a real incompatibility with ``wandb sweep``.

    Returns:
        One problem per distinct violation, prefixed ``(W&B sweep schema):``; none when the
        ``sweeps`` package is not importable.
    """
    check = wandb_checker()
    if check is None:
        return []
    try:
        messages = check(document)
    except Exception as err:  # noqa: BLE001 - a third-party validator must not crash the CLI
        messages = [f"{type(err).__name__}: {err}"]
    # dict.fromkeys: sweeps reports a min >= max violation twice.
    return [f"(W&B sweep schema): {message}" for message in dict.fromkeys(messages)]
