"""SweepSpec -> [Trial]: the deterministic list of trials a grid or random sweep runs.

Trial ids are a stable hash of the complete parameters, so the same trial has the same id
in every process, on every machine and in every re-run: the ledger keys on it for resume.
No Ray, no TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from model.params import TrainParams

__all__ = ["Trial", "trial_id", "expand", "pending", "full_params"]

_DEFAULTS = TrainParams()
_TYPES = {f.name: type(getattr(_DEFAULTS, f.name)) for f in dataclasses.fields(TrainParams)}


@dataclass(frozen=True)
class Trial:
    """One configuration to train: its stable id and complete, sorted parameters."""

    id: str
    params: Mapping[str, Any]


def _normalise(name: str, value: Any) -> Any:
    # 1 and 1.0 are one learning rate; 2.0 and 2 one epoch count: hash by the field's type.
    kind = _TYPES.get(name)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def full_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """TrainParams defaults overlaid with ``values``, normalised by field type, keys sorted."""
    merged = {**_DEFAULTS.to_dict(), **{k: _normalise(k, v) for k, v in values.items()}}
    return dict(sorted(merged.items()))


def trial_id(params: Mapping[str, Any]) -> str:
    """A 12-hex-digit id: sha256 of the canonical JSON of the complete parameters."""
    canonical = json.dumps(full_params(params), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _trial(values: Mapping[str, Any]) -> Trial:
    params = full_params(values)
    return Trial(trial_id(params), params)


def _grid(spec: Any) -> list[Trial]:
    names = [p.name for p in spec.parameters]  # sorted by the spec
    choices = [list(p.values) if p.values is not None else [p.value] for p in spec.parameters]
    return [_trial(dict(zip(names, combo))) for combo in itertools.product(*choices)]


def _draw(param: Any, rng: Any) -> Any:
    if param.value is not None:
        return param.value
    if param.values is not None:
        return param.values[int(rng.integers(len(param.values)))]
    lo, hi, dist = param.min, param.max, param.distribution
    if dist == "int_uniform":
        return int(rng.integers(int(lo), int(hi) + 1))
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:  # uniform, q_uniform
        x = float(rng.uniform(lo, hi))
    if dist.startswith("q_"):
        q = param.q if param.q is not None else 1
        x = round(x / q) * q
        return int(x) if param.integer else float(x)
    return x


def _random(spec: Any) -> list[Trial]:
    import numpy as np

    # Seeded by the sweep's name: the same spec draws the same trials, so resume works.
    seed = int.from_bytes(hashlib.sha256(spec.name.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    trials: dict[str, Trial] = {}
    attempts = 0
    while len(trials) < spec.run_cap and attempts < 100 * spec.run_cap:
        attempts += 1  # a small discrete space may hold fewer distinct trials than run_cap
        t = _trial({p.name: _draw(p, rng) for p in spec.parameters})
        trials.setdefault(t.id, t)
    return list(trials.values())


def expand(spec: Any) -> list[Trial]:
    """The trials of a grid (every combination, seeds repeating each) or random sweep.

    Raises:
        ValueError: for bayes, whose trials Optuna proposes while the sweep runs.
    """
    if spec.method == "grid":
        return _grid(spec)
    if spec.method == "random":
        return _random(spec)
    raise ValueError("bayes trials are proposed by Optuna at run time; nothing to expand")


def pending(trials: Iterable[Trial], done_ids: set[str] | frozenset[str]) -> list[Trial]:
    """The trials whose id is not in ``done_ids``, in their original order."""
    return [t for t in trials if t.id not in done_ids]
