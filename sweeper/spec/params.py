"""One searched hyperparameter (:class:`Param`) and the rules for its values and distributions.

Values are checked by the table that checks training parameters
(:func:`model.params.check_param`), so a value the spec accepts is one training accepts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from model.errors import suggest
from model.params import PARAMETER_NAMES, TrainParams, check_param, is_int
from sweeper.spec.checks import MAX_INT, is_real, number_hint, raise_if, real, show

__all__ = ["DISTRIBUTIONS", "EXAMPLES", "PARAM_KEYS", "Param", "grid_size", "values_problems"]

# Distributions with finite bounds only: their whole range can be checked against the
# parameter's rules, and each maps onto a Ray Tune sampler (uniform, loguniform, randint,
# quniform/qrandint, qloguniform/qlograndint).
DISTRIBUTIONS = ("int_uniform", "log_uniform_values", "q_log_uniform_values", "q_uniform", "uniform")
# W&B distributions we refuse: unbounded (normal, beta, ...) or deprecated exponent forms.
_WANDB_ONLY_DISTRIBUTIONS = (
    "beta", "inv_log_uniform", "inv_log_uniform_values", "log_normal", "log_uniform",
    "normal", "q_beta", "q_log_normal", "q_log_uniform", "q_normal",
)
PARAM_KEYS = ("distribution", "max", "min", "q", "value", "values")
"""The keys a parameter block may have."""
# Example values for messages come from the training defaults, so there is one source.
EXAMPLES: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainParams)}


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter, in W&B sweep syntax: exactly one of ``value`` (fixed),
    ``values`` (a list, searched by grid/random/bayes) or ``distribution`` with ``min`` and
    ``max`` (and ``q`` for the quantized ones); see :data:`DISTRIBUTIONS`.

    ``None`` means "not given": no parameter accepts null as a value.

    Raises:
        SpecError: on construction, listing every problem.
    """

    name: str
    value: Any = None
    values: tuple[Any, ...] | None = None
    distribution: str | None = None
    min: float | None = None
    max: float | None = None
    q: float | None = None

    def __post_init__(self) -> None:
        raise_if(_param_problems(self))
        if self.values is not None:
            object.__setattr__(self, "values", tuple(self.values))

    @property
    def kind(self) -> str:
        """``"value"``, ``"values"`` or ``"distribution"``."""
        return "value" if self.value is not None else "values" if self.values is not None else "distribution"

    @property
    def choices(self) -> tuple[Any, ...]:
        """The values it can take: ``(value,)`` when fixed, ``values`` when listed; none for a
        distribution."""
        if self.values is not None:
            return self.values
        return (self.value,) if self.value is not None else ()

    @property
    def integer(self) -> bool:
        """Whether the distribution draws whole numbers: int_uniform, or a q_ distribution
        whose min, max and q (default 1) are all whole numbers (Ray's qrandint/qlograndint)."""
        if self.distribution == "int_uniform":
            return True
        return bool(self.distribution and self.distribution.startswith("q_")) and all(
            is_int(x) for x in (self.min, self.max, 1 if self.q is None else self.q)
        )

    def to_dict(self) -> dict[str, Any]:
        """The parameter block as W&B writes it, e.g. ``{"values": [0, 1]}``."""
        if self.value is not None:
            return {"value": self.value}
        if self.values is not None:
            return {"values": list(self.values)}
        block = {"distribution": self.distribution, "min": self.min, "max": self.max}
        return block if self.q is None else {**block, "q": self.q}


def grid_size(params: Iterable[Param]) -> int:
    """Trials a grid of ``params`` runs: the product of the ``values`` lists' lengths."""
    return math.prod(len(p.values) for p in params if p.values is not None)


def values_problems(path: str, name: str, values: Any) -> list[str]:
    """Every problem with ``values:`` of parameter ``name`` (at key path ``path``)."""
    if not isinstance(values, (list, tuple)):
        return [f"{path}.values: expected a list like [{EXAMPLES[name]!r}], got {show(values)}"]
    if not values:
        return [f"{path}.values: is empty; list at least one value, e.g. [{EXAMPLES[name]!r}]"]
    problems: list[str] = []
    seen: dict[Any, int] = {}
    for i, value in enumerate(values):
        problem = _value_problem(name, value)
        if problem is not None:
            problems.append(f"{path}.values[{i}]: {problem}")
        elif value in seen:
            # A repeated value repeats trials, and trials are identified by their params.
            problems.append(f"{path}.values[{i}]: duplicate of values[{seen[value]}]; remove it")
        else:
            seen[value] = i
    return problems


def _value_problem(name: str, value: Any) -> str | None:
    """Check one candidate value of parameter ``name`` (a fixed value, a list item or a bound)."""
    if isinstance(value, (Mapping, list, tuple, set, frozenset, bytes, bytearray)):
        # Never hand containers to check_param: their repr can be huge or recursive.
        return f"expected a single value, got {show(value)}"
    if is_int(value) and abs(value) > MAX_INT:
        return f"{value} is too large"
    problem = check_param(name, value)
    return None if problem is None else problem + number_hint(value)


def _param_problems(p: Param) -> list[str]:
    """Every problem with one parameter block; paths are ``parameters.<name>...``."""
    path = f"parameters.{p.name}"
    if p.name not in PARAMETER_NAMES:
        return [f"{path}: {check_param(p.name, None)}"]
    ranged = p.distribution is not None or any(x is not None for x in (p.min, p.max, p.q))
    found = [k for k, present in (("value", p.value is not None), ("values", p.values is not None),
                                  ("distribution", ranged)) if present]
    if len(found) != 1:
        return [
            f"{path}: give exactly one of value, values or a distribution with min and max "
            f"(found {' and '.join(found) or 'none'}), e.g. {{value: {EXAMPLES[p.name]!r}}}"
        ]
    if p.value is not None:
        problem = _value_problem(p.name, p.value)
        return [] if problem is None else [f"{path}.value: {problem}"]
    if p.values is not None:
        return values_problems(path, p.name, p.values)
    return _distribution_problems(path, p)


def _distribution_problems(path: str, p: Param) -> list[str]:
    """Every problem with a ranged parameter: the distribution's name, bounds, q and range."""
    dist = p.distribution
    if dist is None:
        return [f"{path}: min and max need a distribution, e.g. distribution: uniform"]
    if dist not in DISTRIBUTIONS:
        why = (
            "is not supported by sweeper (its range is unbounded or it is deprecated)"
            if dist in _WANDB_ONLY_DISTRIBUTIONS
            else "is unknown"
        )
        hint = suggest(str(dist), DISTRIBUTIONS) if isinstance(dist, str) and why == "is unknown" else ""
        return [f"{path}.distribution: {show(dist)} {why}{hint}; use one of {', '.join(DISTRIBUTIONS)}"]
    problems: list[str] = []
    for key in ("min", "max"):
        bound = getattr(p, key)
        if bound is None:
            problems.append(f"{path}.{key}: missing; {dist} needs min and max")
        elif not is_real(bound):
            problems.append(f"{path}.{key}: expected a number, got {show(bound)}{number_hint(bound)}")
    quantized = dist.startswith("q_")
    if p.q is not None and not quantized:
        problems.append(f"{path}.q: only q_uniform and q_log_uniform_values take q; remove it")
    elif p.q is not None and (problem := real(above=0)(p.q)) is not None:
        problems.append(f"{path}.q: {problem}")
    if problems:
        return problems
    low, high = p.min, p.max
    if dist == "int_uniform" and not (is_int(low) and is_int(high)):
        return [f"{path}: int_uniform needs whole-number min and max, got {low!r} and {high!r}"]
    if low >= high:
        return [f"{path}: min {low!r} must be less than max {high!r}"]
    if "log" in dist and low <= 0:
        return [f"{path}.min: {dist} needs min > 0, got {low!r}"]
    for key, bound in (("min", low), ("max", high)):
        if (problem := _value_problem(p.name, bound)) is not None:
            problems.append(f"{path}.{key}: {problem}")
    if problems:
        return problems
    # The bounds are valid; also check a value drawn from inside the range, which catches
    # a float distribution on a whole-number parameter, or int_uniform on patch_size (9).
    probe = _probe(p)
    if (problem := _value_problem(p.name, probe)) is not None:
        whole_ok = not p.integer and _value_problem(p.name, round(probe)) is None
        hint = " (int_uniform draws whole numbers)" if whole_ok else ""
        problems.append(
            f"{path}.distribution: {dist} over [{low!r}, {high!r}] draws values such as {probe!r}: {problem}{hint}"
        )
    return problems


def _probe(p: Param) -> Any:
    """A value ``p``'s distribution draws from inside its range, of the type it draws."""
    low, high = float(p.min), float(p.max)
    if p.distribution == "int_uniform":
        return p.min + 1
    middle = math.exp((math.log(low) + math.log(high)) / 2) if "log" in p.distribution else low / 2 + high / 2
    if p.distribution.startswith("q_"):
        q = 1 if p.q is None else p.q
        middle = round(middle / q) * q
    return int(round(middle)) if p.integer else float(middle)
