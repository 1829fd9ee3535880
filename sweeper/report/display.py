"""How the report shows a number: metric digits, JSON and CSV numbers.

Shared by the verdicts (gaps), the renderings and the figures, so that a number reads the same
in every one of them. Parameter values and configuration labels are
:func:`sweeper.records.show` and :func:`sweeper.records.label`, shared with ``sweeper status``
and the race's log.
"""

from __future__ import annotations

import math
from typing import Any

from model.metrics import VAL_PREFIX

__all__ = ["csv_number", "digits", "json_number"]

# PSNR is in dB and moves in its first decimals; SSIM and MAE are fractions of one.
_PSNR = VAL_PREFIX + "psnr"


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
