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

from model.params import PARAMETER_NAMES, TrainParams
from sweeper.records import param_column, plain

__all__ = ["Trial", "trial_id", "config_id", "config_trial", "expand", "pending", "full_params", "finite_ids", "trial_count", "searched_params",
           "config_keys"]

_DEFAULTS = TrainParams()
# Parameters added after ledgers were first written, with the behaviour before them: a trial
# hashes them only when set to something else, so every recorded trial keeps its id.
_ADDED_LATER = {"precision": "float32"}
_TYPES = {f.name: type(getattr(_DEFAULTS, f.name)) for f in dataclasses.fields(TrainParams)}
# How many random draws may be spent per requested trial before concluding that a small
# discrete space holds fewer distinct trials than run_cap.
_DRAWS_PER_TRIAL = 100


@dataclass(frozen=True)
class Trial:
    """One configuration to train: its stable id and complete, sorted parameters."""

    id: str
    params: dict[str, Any]


def _normalise(name: str, value: Any) -> Any:
    # 1 and 1.0 are one learning rate; 2.0 and 2 one epoch count: hash by the field's type.
    value = plain(value)
    kind = _TYPES.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def full_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Complete a trial's parameters.

    Returns:
        TrainParams defaults overlaid with ``values``, each normalised to its field's type
        (numpy scalars to Python numbers), keys sorted.
    """
    merged = {**_DEFAULTS.to_dict(), **{k: _normalise(k, v) for k, v in values.items()}}
    return dict(sorted(merged.items()))


def trial_id(params: Mapping[str, Any]) -> str:
    """The stable id of a trial.

    Args:
        params: The trial's parameters; missing ones take the TrainParams defaults.

    Returns:
        The first 12 hex digits of the sha256 of the canonical JSON (sorted keys, floats as
        their shortest repr) of the complete, type-normalised parameters (those added later
        left out while at their old behaviour, e.g. ``precision: float32``).
    """
    return _digest(_identity(full_params(params)))


def _identity(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


def config_id(params: Mapping[str, Any]) -> str:
    """The stable id of a configuration: a trial's parameters but its seed (a race runs one
    configuration on many seeds). Like :func:`trial_id`, missing parameters take defaults."""
    return _digest({k: v for k, v in _identity(full_params(params)).items() if k != "seed"})


def _digest(params: Mapping[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def config_trial(config: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A Tune trial's parameters and trial id, from its config (a grid's carries the id; a
    bayes suggestion only its parameters, so the id is derived from them)."""
    params = {k: config[k] for k in PARAMETER_NAMES if k in config}
    return params, str(config.get("trial_id") or (trial_id(params) if params else ""))


def _trial(values: Mapping[str, Any]) -> Trial:
    params = full_params(values)
    return Trial(trial_id(params), params)


def _sorted_params(spec: Any) -> list[Any]:
    # The spec sorts its parameters already; sorting again keeps the order ours to guarantee.
    return sorted(spec.parameters, key=lambda p: p.name)


def _grid(spec: Any) -> list[Trial]:
    choices = {p.name: list(p.choices) for p in _sorted_params(spec)}  # a grid has no distributions
    if getattr(spec, "race", None) is not None:
        choices["seed"] = list(range(spec.race.max))  # a race's seeds are its own (the spec lists none)
    names = sorted(choices)
    return [_trial(dict(zip(names, combo))) for combo in itertools.product(*(choices[n] for n in names))]


def _quantise(x: float, q: float) -> float:
    # W&B and Ray round to the nearest multiple of q; rounding again to 12 decimals drops
    # the float noise (0.30000000000000004 -> 0.3) so ids and tables show the intended value.
    return round(round(x / q) * q, 12)


def _draw(param: Any, rng: Any) -> Any:
    if param.value is not None:
        return param.value
    if param.values is not None:
        return param.values[int(rng.integers(len(param.values)))]
    lo, hi, dist = param.min, param.max, param.distribution
    if dist == "int_uniform":
        return int(rng.integers(int(lo), int(hi) + 1))
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(float(rng.uniform(math.log(lo), math.log(hi))))
    else:  # uniform, q_uniform
        x = float(rng.uniform(lo, hi))
    if dist.startswith("q_"):
        x = _quantise(x, param.q if param.q is not None else 1)
        return int(x) if param.integer else x
    return x


def _sampler_seed(name: str) -> int:
    # Derived from the sweep's name with sha256 (not hash(), which is salted per process):
    # the same spec draws the same trials in every run, so a resumed random sweep matches.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _random(spec: Any) -> list[Trial]:
    import numpy as np

    rng = np.random.default_rng(_sampler_seed(spec.name))
    params = _sorted_params(spec)
    trials: dict[str, Trial] = {}
    draws = 0
    while len(trials) < spec.run_cap and draws < _DRAWS_PER_TRIAL * spec.run_cap:
        draws += 1
        trial = _trial({p.name: _draw(p, rng) for p in params})
        trials.setdefault(trial.id, trial)  # a duplicate is dropped and drawn again
    return list(trials.values())


def expand(spec: Any) -> list[Trial]:
    """List the trials of a sweep.

    Grid: every combination over the sorted parameter names (a listed ``seed`` repeats
    each other combination once per seed), in that deterministic order. Random: ``run_cap``
    distinct trials drawn by a generator seeded from the sweep's name (fewer when the
    space holds fewer distinct trials).

    Raises:
        ValueError: for bayes, whose trials Optuna proposes while the sweep runs.
    """
    if spec.method == "grid":
        return _grid(spec)
    if spec.method == "random":
        return _random(spec)
    raise ValueError("bayes trials are proposed by Optuna at run time; nothing to expand")


def finite_ids(spec: Any, limit: int = 100_000) -> frozenset[str] | None:
    """The id of every trial a space of only ``value`` / ``values`` parameters holds, whatever
    the method (a bayes sweep over such a space can run out of new trials).

    Returns:
        ``None`` when a parameter is a distribution, or the space has more than ``limit``
        combinations (too many to list; treated as unbounded).
    """
    if any(p.kind == "distribution" for p in spec.parameters) or spec.grid_size() > limit:
        return None
    return frozenset(t.id for t in _grid(spec))


def trial_count(spec: Any) -> int:
    """How many trials the sweep runs: the listed ones (grid, random), or for bayes
    ``run_cap``, fewer when the space holds fewer distinct trials."""
    if spec.method == "grid":  # counted, not listed: a grid can hold 100,000 trials
        return spec.grid_size() * (spec.race.max if getattr(spec, "race", None) is not None else 1)
    if spec.method != "bayes":
        return len(expand(spec))
    space = finite_ids(spec)
    return spec.run_cap if space is None else min(spec.run_cap, len(space))


def searched_params(spec: Any = None, trials: Any = None) -> list[str]:
    """The parameters a sweep varies, sorted: those the spec searches (a ``values`` list of
    two or more, or a distribution); without a spec, those with more than one value in the
    ledger's ``trials`` frame."""
    if spec is not None:
        raced = ["seed"] if getattr(spec, "race", None) is not None else []
        return sorted(raced + [
            p.name for p in spec.parameters
            if p.kind == "distribution" or (p.kind == "values" and len(p.values or ()) > 1)
        ])
    return [name for name in PARAMETER_NAMES
            if param_column(name) in trials.columns and trials[param_column(name)].nunique(dropna=False) > 1]


def config_keys(spec: Any = None, trials: Any = None) -> list[str]:
    """The parameters that tell a sweep's configurations apart: those it searches but the seed
    (a seed repeats a configuration; it is not another one)."""
    return [name for name in searched_params(spec, trials) if name != "seed"]


def pending(trials: Iterable[Trial], done_ids: set[str] | frozenset[str]) -> list[Trial]:
    """The trials whose id is not in ``done_ids``, in their original order."""
    return [t for t in trials if t.id not in done_ids]
