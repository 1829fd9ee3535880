"""Where a trial ran: reported by the worker (:class:`~sweeper.records.trial_report.TrialReport`)
and kept in its ledger row (:class:`~sweeper.records.rows.TrialRow`), as the same flat columns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from sweeper.records.columns import plain

__all__ = ["Placement"]


@dataclass(frozen=True)
class Placement:
    """Where a trial ran: reported by the worker, kept in the ledger.

    Attributes:
        accelerator: ``"cpu"``, or the GPU type the trial was pinned to (e.g. ``"T4"``; ``"GPU"``
            when the spec names no type).
        gpu_ids: The GPU ids Ray assigned, comma-separated.
        node: The Ray node id.
        dtype_policy: The Keras dtype policy the trial trained under (what ``precision: auto``
            became on that node).
        emulation: ``"float32-accumulate"`` when the trial's 16-bit convolutions were computed
            in float32 and rounded, on a CPU without native 16-bit arithmetic
            (:func:`model.runtime.accumulates_in_float32`); empty when the hardware's own
            kernels ran them.
    """

    accelerator: str = ""
    gpu_ids: str = ""
    node: str = ""
    dtype_policy: str = ""
    emulation: str = ""

    def to_dict(self) -> dict[str, str | None]:
        """The fields as flat columns (an unknown dtype policy and no emulation as ``None``:
        their columns are nullable)."""
        return {**dataclasses.asdict(self), "dtype_policy": self.dtype_policy or None,
                "emulation": self.emulation or None}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "Placement":
        """The placement in a flat mapping (a ledger row, a Tune result); missing fields are empty."""
        return cls(**{f.name: str(plain(columns[f.name])) for f in dataclasses.fields(cls)
                      if plain(columns.get(f.name)) is not None})
