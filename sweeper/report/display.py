"""How the report shows a value: parameters, metric units and digits, JSON and CSV numbers.

Shared by the ranking (configuration labels), the verdicts (gaps), the renderings and the
figures, so that a value reads the same in every one of them.
"""

from __future__ import annotations

import math
from typing import Any

from model.metrics import VAL_PREFIX

__all__ = ["csv_number", "digits", "json_number", "show"]

# PSNR is in dB and moves in its first decimals; SSIM and MAE are fractions of one.
_PSNR = VAL_PREFIX + "psnr"


def show(value: Any) -> str:
    """A parameter value as a table or a label shows it: floats in ``%g`` (``0.001``, not ``0.0010``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def digits(metric: str, *, precise: bool = False) -> int:
    """Decimals to show ``metric`` with: 2 for PSNR (3 when ``precise``), 4 for the fractions."""
    if metric == _PSNR:
        return 3 if precise else 2
    return 4


def json_number(value: Any) -> Any:
    """``value``, with NaN and infinities as ``None`` (JSON has no such numbers)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def csv_number(value: float) -> str:
    """A number for a CSV cell: its full ``repr``, or empty when it is not finite."""
    return "" if not math.isfinite(value) else repr(float(value))
