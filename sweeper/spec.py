"""Search-space YAML -> :class:`SweepSpec`: frozen dataclasses, validation, ``--set`` overrides.

A spec file is a W&B sweep configuration plus a ``sweeper:`` block that W&B never sees::

    name: optim_loss
    method: grid
    metric: {name: val_psnr, goal: maximize}
    parameters:
      optimizer: {values: [adam, rmsprop]}
      learning_rate: {value: 0.001}
    sweeper:
      dataset: {dir: data, name: synthetic}
      resources: {cpu: 1, gpu: 1, accelerator_type: T4, fallback: cpu}

:func:`load` reads such a file with ``yaml.safe_load`` only, applies ``--set`` overrides to a
copy, checks everything, and raises one :class:`SpecError` listing every problem, one line each,
each naming its key path and the fix. Parameter values are checked by the same table that checks
training parameters (:func:`model.params.check_param`), so a spec that loads is one training
accepts. Nothing here imports TensorFlow, Keras or Ray.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import yaml

from model.errors import ConfigError, suggest
from model.params import PARAMETER_NAMES, TrainParams, check_param

__all__ = [
    "SweepSpec",
    "Param",
    "Hyperband",
    "Resources",
    "DatasetConfig",
    "SpecError",
    "load",
    "loads",
    "from_dict",
    "PARAMETER_NAMES",
    "MAX_GRID",
]

MAX_GRID = 100_000
"""Largest number of trials accepted without ``allow_huge=True`` (the CLI's ``--yes``)."""

METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
# Distributions with finite bounds only: their whole range can be checked against the
# parameter's rules, and each maps onto a Ray Tune sampler (uniform, loguniform, randint,
# quniform/qrandint, qloguniform/qlograndint).
DISTRIBUTIONS = ("int_uniform", "log_uniform_values", "q_log_uniform_values", "q_uniform", "uniform")
# W&B distributions we refuse: unbounded (normal, beta, ...) or deprecated exponent forms.
_WANDB_ONLY_DISTRIBUTIONS = (
    "beta", "inv_log_uniform", "inv_log_uniform_values", "log_normal", "log_uniform",
    "normal", "q_beta", "q_log_normal", "q_log_uniform", "q_normal",
)
_TOP_KEYS = ("early_terminate", "method", "metric", "name", "parameters", "run_cap", "sweeper")
# W&B sweep keys that make sense only to W&B's own agent; named so the message can say why.
_WANDB_ONLY_KEYS = (
    "apiVersion", "command", "controller", "description", "entity", "image_uri", "job",
    "kind", "metrics", "program", "project", "scheduler",
)
_SWEEPER_KEYS = ("dataset", "max_concurrent", "max_failures", "resources")
_METRIC_KEYS = ("goal", "name")
_PARAM_KEYS = ("distribution", "max", "min", "q", "value", "values")
_MAX_FILE_BYTES = 10 * 1024 * 1024  # a search space is a page of text; refuse anything absurd
_MAX_MESSAGE = 400
# Ints beyond float precision are never a sensible hyperparameter, and capping them keeps
# every later float conversion (math.isfinite, probes) from raising OverflowError.
_MAX_INT = 2**53
# Example values for messages come from the training defaults, so there is one source.
_EXAMPLES: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainParams)}

_Check = Callable[[Any], "str | None"]


# ---------------------------------------------------------------------------------------------
# Errors and small helpers


class SpecError(ConfigError):
    """A bad search space: every problem found, one line each, naming its key path and the fix.

    Attributes:
        problems: one-line messages such as
            ``parameters.optimizer.values[2]: unknown optimizer 'rmsprp' (did you mean 'rmsprop'?)``.
        source: the file (or ``<string>``) the spec came from; prefixes every line of ``str()``.
    """

    exit_code = 2

    def __init__(self, problems: Iterable[str], source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(_one_line(p) for p in problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + problem for problem in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions unpickle as cls(*args); keep problems intact across Ray/multiprocessing.
        return (type(self), (self.problems, self.source))


def _one_line(message: str) -> str:
    """Collapse a message to one bounded line, so the CLI prints exactly one line per problem."""
    text = " ".join(str(message).split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `epochs: true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A finite int or float that converts to float without overflow."""
    if _is_int(value):
        return abs(value) <= _MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def _show(value: Any) -> str:
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


def _number_hint(value: Any) -> str:
    """Explain why a number-looking value is text (PyYAML reads YAML 1.1: ``1e-3`` is a string)."""
    if isinstance(value, str):
        for kind in (int, float):
            try:
                number = kind(value)
            except ValueError:
                continue
            if math.isfinite(number):
                return f" (YAML read {value!r} as text; write {number!r})"
    return ""


def _unknown_keys(path: str, block: Mapping[Any, Any], valid: Sequence[str]) -> list[str]:
    """One problem per key of ``block`` not in ``valid``, with a did-you-mean."""
    where = f"{path}." if path else ""
    return [
        f"{where}{key}: unknown key {_show(key)}{suggest(str(key), valid)}; valid: {', '.join(valid)}"
        for key in block
        if key not in valid
    ]


def _mapping(path: str, value: Any, example: str, problems: list[str]) -> dict[Any, Any] | None:
    """``value`` as a dict; ``null`` counts as empty; anything else is a problem (returns None)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    problems.append(f"{path}: expected a mapping like {example}, got {_show(value)}")
    return None


def _run_checks(prefix: str, values: Mapping[str, Any], checks: Mapping[str, _Check]) -> list[str]:
    """Apply ``checks`` (key -> check) to the keys present in ``values``; problems are prefixed."""
    return [
        f"{prefix}{key}: {problem}"
        for key, check in checks.items()
        if key in values and (problem := check(values[key])) is not None
    ]


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise SpecError(problems)


# Field checks: value -> problem (without key path) or None. Shared by the dataclasses and
# the loader, so a value is judged the same whether it came from YAML or from Python.


def _whole(minimum: int, *, optional: bool = False) -> _Check:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not _is_int(value):
            return f"expected a whole number >= {minimum}, got {_show(value)}{_number_hint(value)}"
        if value < minimum:
            return f"{value} is too small; use a whole number >= {minimum}"
        return None

    return check


def _real(*, above: float | None = None, at_least: float | None = None) -> _Check:
    bound = f"> {above:g}" if above is not None else f">= {at_least:g}"

    def check(value: Any) -> str | None:
        if not _is_real(value):
            return f"expected a number {bound}, got {_show(value)}{_number_hint(value)}"
        if (above is not None and value <= above) or (at_least is not None and value < at_least):
            return f"{value} is out of range; use a number {bound}"
        return None

    return check


def _choice(valid: Sequence[str], what: str) -> _Check:
    def check(value: Any) -> str | None:
        if value in valid and isinstance(value, str):
            return None
        hint = suggest(str(value), valid) if isinstance(value, str) else ""
        return f"unknown {what} {_show(value)}{hint}; use one of {', '.join(valid)}"

    return check


def _safe_name(what: str, example: str, *, optional: bool = False) -> _Check:
    pattern = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            quote = " (quote it)" if isinstance(value, (int, float)) else ""
            return f"expected a {what} like {example!r}, got {_show(value)}{quote}"
        if not pattern.fullmatch(value):
            return (
                f"{_show(value)} is not a safe {what}; use 1-128 of A-Z a-z 0-9 _ . - "
                f"not starting with '.', e.g. {example!r}"
            )
        return None

    return check


def _directory(value: Any) -> str | None:
    if isinstance(value, Path) or (isinstance(value, str) and value.strip() and "\0" not in value):
        return None
    return f"expected a folder path like 'data', got {_show(value)}"


# ---------------------------------------------------------------------------------------------
# Parameters


def _value_problem(name: str, value: Any) -> str | None:
    """Check one candidate value of parameter ``name`` (a fixed value, a list item or a bound)."""
    if isinstance(value, (Mapping, list, tuple, set, frozenset, bytes, bytearray)):
        # Never hand containers to check_param: their repr can be huge or recursive.
        return f"expected a single value, got {_show(value)}"
    if _is_int(value) and abs(value) > _MAX_INT:
        return f"{value} is too large"
    problem = check_param(name, value)
    return None if problem is None else problem + _number_hint(value)


def _param_problems(p: "Param") -> list[str]:
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
            f"(found {' and '.join(found) or 'none'}), e.g. {{value: {_EXAMPLES[p.name]!r}}}"
        ]
    if p.value is not None:
        problem = _value_problem(p.name, p.value)
        return [] if problem is None else [f"{path}.value: {problem}"]
    if p.values is not None:
        return _values_problems(path, p.name, p.values)
    return _distribution_problems(path, p)


def _values_problems(path: str, name: str, values: Any) -> list[str]:
    if not isinstance(values, (list, tuple)):
        return [f"{path}.values: expected a list like [{_EXAMPLES[name]!r}], got {_show(values)}"]
    if not values:
        return [f"{path}.values: is empty; list at least one value, e.g. [{_EXAMPLES[name]!r}]"]
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


def _distribution_problems(path: str, p: "Param") -> list[str]:
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
        return [f"{path}.distribution: {_show(dist)} {why}{hint}; use one of {', '.join(DISTRIBUTIONS)}"]
    problems: list[str] = []
    for key in ("min", "max"):
        bound = getattr(p, key)
        if bound is None:
            problems.append(f"{path}.{key}: missing; {dist} needs min and max")
        elif not _is_real(bound):
            problems.append(f"{path}.{key}: expected a number, got {_show(bound)}{_number_hint(bound)}")
    quantized = dist.startswith("q_")
    if p.q is not None and not quantized:
        problems.append(f"{path}.q: only q_uniform and q_log_uniform_values take q; remove it")
    elif p.q is not None and (problem := _real(above=0)(p.q)) is not None:
        problems.append(f"{path}.q: {problem}")
    if problems:
        return problems
    low, high = p.min, p.max
    if dist == "int_uniform" and not (_is_int(low) and _is_int(high)):
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


def _probe(p: "Param") -> Any:
    """A value ``p``'s distribution draws from inside its range, of the type it draws."""
    low, high = float(p.min), float(p.max)
    if p.distribution == "int_uniform":
        return p.min + 1
    middle = math.exp((math.log(low) + math.log(high)) / 2) if "log" in p.distribution else low / 2 + high / 2
    if p.distribution.startswith("q_"):
        q = 1 if p.q is None else p.q
        middle = round(middle / q) * q
    return int(round(middle)) if p.integer else float(middle)


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
        _raise_if(_param_problems(self))
        if self.values is not None:
            object.__setattr__(self, "values", tuple(self.values))

    @property
    def kind(self) -> str:
        """``"value"``, ``"values"`` or ``"distribution"``."""
        return "value" if self.value is not None else "values" if self.values is not None else "distribution"

    @property
    def integer(self) -> bool:
        """Whether the distribution draws whole numbers: int_uniform, or a q_ distribution
        whose min, max and q (default 1) are all whole numbers (Ray's qrandint/qlograndint)."""
        if self.distribution == "int_uniform":
            return True
        return bool(self.distribution and self.distribution.startswith("q_")) and all(
            _is_int(x) for x in (self.min, self.max, 1 if self.q is None else self.q)
        )

    def to_dict(self) -> dict[str, Any]:
        """The parameter block as W&B writes it, e.g. ``{"values": [0, 1]}``."""
        if self.value is not None:
            return {"value": self.value}
        if self.values is not None:
            return {"values": list(self.values)}
        block = {"distribution": self.distribution, "min": self.min, "max": self.max}
        return block if self.q is None else {**block, "q": self.q}


def _grid_size(params: Iterable[Param]) -> int:
    return math.prod(len(p.values) for p in params if p.values is not None)


# ---------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class Hyperband:
    """``early_terminate: {type: hyperband, min_iter, eta, max_iter}`` (run as Ray Tune's ASHA:
    grace period ``min_iter`` epochs, reduction factor ``eta``, ``max_t`` = ``max_iter``)."""

    min_iter: int
    eta: float = 3
    max_iter: int | None = None
    type: str = "hyperband"

    PATH: ClassVar[str] = "early_terminate."
    CHECKS: ClassVar[dict[str, _Check]] = {
        "type": _choice(("hyperband",), "early_terminate type"),
        "min_iter": _whole(1),
        "eta": _real(above=1),
        "max_iter": _whole(1, optional=True),
    }

    def __post_init__(self) -> None:
        problems = _run_checks(self.PATH, _fields(self), self.CHECKS)
        if not problems and self.max_iter is not None and self.max_iter <= self.min_iter:
            problems.append(f"{self.PATH}max_iter: {self.max_iter} must be greater than min_iter {self.min_iter}")
        _raise_if(problems)

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        block = {"type": self.type, "min_iter": self.min_iter, "eta": self.eta}
        return block if self.max_iter is None else {**block, "max_iter": self.max_iter}


@dataclass(frozen=True)
class Resources:
    """Per-trial resources. ``accelerator_type`` pins trials to that GPU type where the cluster
    has it; otherwise ``fallback: cpu`` runs on CPU and ``fallback: none`` refuses."""

    cpu: float = 1
    gpu: float = 1
    accelerator_type: str | None = "T4"
    fallback: str = "cpu"

    PATH: ClassVar[str] = "sweeper.resources."
    CHECKS: ClassVar[dict[str, _Check]] = {
        "cpu": _real(above=0),
        "gpu": _real(at_least=0),
        "accelerator_type": _safe_name("accelerator type", "T4", optional=True),
        "fallback": _choice(("cpu", "none"), "fallback"),
    }

    def __post_init__(self) -> None:
        _raise_if(_run_checks(self.PATH, _fields(self), self.CHECKS))
        object.__setattr__(self, "cpu", float(self.cpu))
        object.__setattr__(self, "gpu", float(self.gpu))

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        return _fields(self)


@dataclass(frozen=True)
class DatasetConfig:
    """Where trials read data: ``<dir>/<name>/{train,test}/{blur,sharp}``. The ``synthetic``
    dataset is made on first use; any other name must exist (checked at dispatch, not here,
    because ``--data-dir`` can still move it)."""

    dir: Path = Path("data")
    name: str = "synthetic"

    PATH: ClassVar[str] = "sweeper.dataset."
    CHECKS: ClassVar[dict[str, _Check]] = {
        "dir": _directory,
        "name": _safe_name("dataset name", "synthetic"),
    }

    def __post_init__(self) -> None:
        _raise_if(_run_checks(self.PATH, _fields(self), self.CHECKS))
        object.__setattr__(self, "dir", Path(self.dir))

    def to_dict(self) -> dict[str, Any]:
        """The block as written in the YAML."""
        return {"dir": str(self.dir), "name": self.name}


# ---------------------------------------------------------------------------------------------
# The spec


def _metric_problems(name: Any, goal: Any) -> list[str]:
    """Problems with ``metric: {name, goal}``. ``goal`` is required: W&B would default it to
    minimize, which is wrong for val_psnr, so the file would mean different things to W&B and us."""
    from model.metrics import metric_goal

    if not isinstance(name, str):
        return [f"metric.name: expected a metric name like 'val_psnr', got {_show(name)}"]
    try:
        direction = metric_goal(name)
    except ConfigError as err:
        return [f"metric.name: {err}"]
    if not str(name).startswith("val_"):
        return [f"metric.name: use 'val_{name}', the name trials log it under"]
    better = "higher" if direction == "maximize" else "lower"
    if goal is None:
        return [f"metric.goal: missing; add goal: {direction} ({name} is better when {better})"]
    if (problem := _choice(GOALS, "goal")(goal)) is not None:
        return [f"metric.goal: {problem}"]
    if goal != direction:
        return [f"metric.goal: {name} is better when {better}; use goal: {direction}"]
    return []


def _cross_problems(
    method: str, params: Sequence[Param], run_cap: Any, allow_huge: bool, *, run_cap_given: bool
) -> list[str]:
    """Rules that relate fields: what a method needs, and the trial-count guard."""
    problems: list[str] = []
    if method == "grid":
        problems += [
            f"parameters.{p.name}: grid needs values or value; use random or bayes for distributions"
            for p in params
            if p.kind == "distribution"
        ]
        size = _grid_size(params)
        if run_cap_given:
            problems.append(f"run_cap: a grid runs all its {size} combinations; remove run_cap or use method: random")
        if size > MAX_GRID and not allow_huge:
            problems.append(
                f"parameters: the grid has {size:,} trials, more than {MAX_GRID:,}; "
                "shorten the values lists, or confirm with --yes (allow_huge=True)"
            )
    elif method in METHODS:
        if not run_cap_given:
            problems.append(f"run_cap: required for method {method}; add e.g. run_cap: 20")
        elif _is_int(run_cap) and run_cap > MAX_GRID and not allow_huge:
            problems.append(
                f"run_cap: {run_cap:,} trials is more than {MAX_GRID:,}; lower it, or confirm with --yes (allow_huge=True)"
            )
    return problems


@dataclass(frozen=True)
class SweepSpec:
    """A validated search space. Construct it with :func:`load`, :func:`loads` or
    :func:`from_dict`; direct construction validates too (``allow_huge`` is assumed there).

    Attributes:
        parameters: sorted by name; parameters not listed take :class:`model.params.TrainParams`
            defaults.
        early_terminate: ``None`` or a :class:`Hyperband` block (run as ASHA).
        run_cap: number of trials for random and bayes; ``None`` for grid.
        max_concurrent: trials running at once; ``None`` lets Ray decide from resources.
        max_failures: retries of a failing trial before it is recorded as an error.
    """

    name: str
    method: str
    metric: str
    goal: str
    parameters: tuple[Param, ...]
    early_terminate: Hyperband | None = None
    run_cap: int | None = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    resources: Resources = field(default_factory=Resources)
    max_concurrent: int | None = None
    max_failures: int = 2

    CHECKS: ClassVar[dict[str, tuple[str, _Check]]] = {
        "name": ("name", _safe_name("sweep name", "optim_loss")),
        "method": ("method", _choice(METHODS, "method")),
        "run_cap": ("run_cap", _whole(1, optional=True)),
        "max_concurrent": ("sweeper.max_concurrent", _whole(1, optional=True)),
        "max_failures": ("sweeper.max_failures", _whole(0)),
    }

    def __post_init__(self) -> None:
        params = tuple(self.parameters) if isinstance(self.parameters, (list, tuple)) else ()
        problems = _spec_field_problems(_fields(self), tuple(self.CHECKS))
        problems += _metric_problems(self.metric, self.goal)
        for label, value, kind in (
            ("early_terminate", self.early_terminate, (Hyperband, type(None))),
            ("sweeper.dataset", self.dataset, DatasetConfig),
            ("sweeper.resources", self.resources, Resources),
        ):
            if not isinstance(value, kind):
                expected = kind.__name__ if isinstance(kind, type) else kind[0].__name__
                problems.append(f"{label}: expected a {expected}, got {_show(value)}")
        if not params or not all(isinstance(p, Param) for p in params):
            problems.append("parameters: expected one or more Param")
        else:
            names = [p.name for p in params]
            problems += [f"parameters.{n}: given more than once" for n in sorted(set(names)) if names.count(n) > 1]
            problems += _cross_problems(
                self.method, params, self.run_cap, allow_huge=True, run_cap_given=self.run_cap is not None
            )
        _raise_if(problems)
        object.__setattr__(self, "parameters", tuple(sorted(params, key=lambda p: p.name)))

    def grid_size(self) -> int:
        """Trials a grid runs: the product of each ``values`` list's length (a fixed value
        counts once). For random and bayes the trial count is ``run_cap`` instead."""
        return _grid_size(self.parameters)

    def param(self, name: str) -> Param | None:
        """The parameter called ``name``, or ``None`` when the spec leaves it at its default."""
        return next((p for p in self.parameters if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as a YAML-ready document (defaults filled in); loads back equal."""
        doc: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "metric": {"name": self.metric, "goal": self.goal},
            "parameters": {p.name: p.to_dict() for p in self.parameters},
        }
        if self.run_cap is not None:
            doc["run_cap"] = self.run_cap
        if self.early_terminate is not None:
            doc["early_terminate"] = self.early_terminate.to_dict()
        doc["sweeper"] = {
            "dataset": self.dataset.to_dict(),
            "resources": self.resources.to_dict(),
            "max_concurrent": self.max_concurrent,
            "max_failures": self.max_failures,
        }
        return doc

    def wandb_config(self) -> dict[str, Any]:
        """The spec minus ``sweeper:``: what ``wandb.sweep`` / ``wandb sweep`` accepts."""
        doc = self.to_dict()
        del doc["sweeper"]
        return doc


# ---------------------------------------------------------------------------------------------
# Loading


def load(path: str | Path, overrides: Sequence[str] = (), *, allow_huge: bool = False) -> SweepSpec:
    """Read and validate a search-space YAML file.

    Args:
        path: the file. Its stem is the sweep name when the file has no ``name:``.
        overrides: ``--set`` items, ``"dotted.key=value"`` (value read as YAML) or the shorthand
            ``"epochs=2"`` for ``parameters.epochs.value`` (a list value sets ``values``).
        allow_huge: accept more than :data:`MAX_GRID` trials (the CLI's ``--yes``).

    Raises:
        SpecError: every problem found, one line each (exit status 2).
    """
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as err:
        raise SpecError([f"cannot read the spec file: {err.strerror or err}; check the path"], source) from None
    if len(data) > _MAX_FILE_BYTES:
        limit = _MAX_FILE_BYTES // 2**20
        raise SpecError([f"file is larger than {limit} MB; a search space is a page of YAML"], source)
    return _load_text(data, source, overrides, allow_huge, default_name=Path(path).stem)


def loads(
    text: str | bytes, source: str = "<string>", overrides: Sequence[str] = (), *, allow_huge: bool = False
) -> SweepSpec:
    """Validate a search space given as YAML text; like :func:`load` but ``name:`` is required.

    Raises:
        SpecError: every problem found, each line prefixed by ``source``.
    """
    return _load_text(text, source, overrides, allow_huge, default_name=None)


def from_dict(
    document: Mapping[str, Any], source: str = "<dict>", overrides: Sequence[str] = (), *, allow_huge: bool = False
) -> SweepSpec:
    """Validate an already-parsed document (e.g. ``SweepSpec.to_dict()``); never mutates it.

    Raises:
        SpecError: every problem found.
    """
    return _from_document(document, source, overrides, allow_huge, default_name=None)


def _load_text(
    text: str | bytes, source: str, overrides: Sequence[str], allow_huge: bool, default_name: str | None
) -> SweepSpec:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err)], source) from None
    except RecursionError:
        raise SpecError(["the YAML is nested too deeply"], source) from None
    except Exception as err:  # noqa: BLE001 - PyYAML raises ValueError etc. on hostile input (dates, huge ints)
        raise SpecError([f"cannot read the YAML: {type(err).__name__}: {err}"], source) from None
    if document is None:
        raise SpecError(["the file is empty; a spec needs name, method, metric and parameters"], source)
    return _from_document(document, source, overrides, allow_huge, default_name)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: where it is, and what; tags that build objects are named."""
    if isinstance(err, yaml.reader.ReaderError):
        return f"byte {err.position}: not readable as YAML text: {err.reason}"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "YAML"
    problem = getattr(err, "problem", None) or str(err)
    tag = re.search(r"constructor for the tag '([^']*)'", problem)
    if tag:
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        why = "tags that build Python objects are never run" if "python/" in shown else "only plain YAML is read"
        return f"{where}: refused YAML tag {shown!r}: {why}; only yaml.safe_load is used"
    context = getattr(err, "context", None)
    return f"{where}: YAML syntax error: {problem}" + (f" ({context})" if context else "")


def _from_document(
    document: Any, source: str, overrides: Sequence[str], allow_huge: bool, default_name: str | None
) -> SweepSpec:
    if not isinstance(document, dict):
        expected = "expected a mapping with name, method, metric and parameters"
        raise SpecError([f"the document is {_show(document)}, {expected}"], source)
    try:
        # Overrides go to a copy: the caller's document is never changed.
        doc = copy.deepcopy(document)
        problems = _apply_overrides(doc, overrides)
        spec, more = _build(doc, allow_huge, default_name)
    except RecursionError:
        raise SpecError(["the document is nested too deeply"], source) from None
    problems += more
    if spec is not None and not problems:
        problems += _wandb_schema_problems({k: v for k, v in doc.items() if k != "sweeper"})
    if problems or spec is None:
        raise SpecError(problems or ["the spec is incomplete"], source)
    return spec


def _build(doc: dict[Any, Any], allow_huge: bool, default_name: str | None) -> tuple[SweepSpec | None, list[str]]:
    """Check the document piece by piece, collecting every problem; build the spec if none."""
    problems: list[str] = []
    for key in doc:
        if key in _WANDB_ONLY_KEYS:
            problems.append(f"{key}: a W&B agent key sweeper does not use (it runs and tracks trials itself); remove it")
        elif key not in _TOP_KEYS:
            hint = suggest(str(key), _TOP_KEYS)
            problems.append(f"{key}: unknown top-level key {_show(key)}{hint}; valid: {', '.join(_TOP_KEYS)}")
    for key, example in (("method", "method: grid"), ("metric", "metric: {name: val_psnr, goal: maximize}"),
                         ("parameters", "parameters: {epochs: {value: 3}}")):
        if key not in doc:
            problems.append(f"{key}: missing; add e.g. {example}")
    # SweepSpec fields the document gives (checked even when null), keyed by field name.
    fields: dict[str, Any] = {key: doc[key] for key in ("name", "method", "run_cap") if key in doc}
    if "name" not in fields:
        if default_name is None:
            problems.append("name: missing; add e.g. name: optim_loss (it names the results folder)")
        else:
            fields["name"] = default_name
    problems += _spec_field_problems(fields, ("name", "method", "run_cap"))
    if "run_cap" in fields and fields["run_cap"] is None:
        problems.append("run_cap: is empty (null); give a whole number >= 1 or remove it")

    metric = _mapping("metric", doc["metric"], "{name: val_psnr, goal: maximize}", problems) if "metric" in doc else None
    if metric is not None:
        problems += _unknown_keys("metric", metric, _METRIC_KEYS)
        if "name" not in metric:
            problems.append("metric.name: missing; add e.g. name: val_psnr")
        else:
            problems += _metric_problems(metric["name"], metric.get("goal"))
            fields["metric"], fields["goal"] = metric["name"], metric.get("goal")

    params = _build_params(doc["parameters"], problems) if "parameters" in doc else []
    fields["parameters"] = tuple(params)

    if "early_terminate" in doc:
        block = doc["early_terminate"]
        example = "{type: hyperband, min_iter: 1, eta: 3}"
        if block is None:
            problems.append(f"early_terminate: is empty (null); remove it or give {example}")
        elif (block := _mapping("early_terminate", block, example, problems)) is not None:
            for key in ("type", "min_iter"):
                if key not in block:
                    problems.append(f"early_terminate.{key}: missing; e.g. {example}")
            fields["early_terminate"] = _build_block(Hyperband, block, problems, required=("type", "min_iter"))

    sweeper = _mapping("sweeper", doc.get("sweeper"), "{dataset: {dir: data, name: synthetic}}", problems)
    if sweeper is not None:
        problems += _unknown_keys("sweeper", sweeper, _SWEEPER_KEYS)
        for key, cls, example in (("dataset", DatasetConfig, "{dir: data, name: synthetic}"),
                                  ("resources", Resources, "{cpu: 1, gpu: 1}")):
            block = _mapping(f"sweeper.{key}", sweeper.get(key), example, problems)
            if block is not None:
                fields[key] = _build_block(cls, block, problems)
        fields.update({key: sweeper[key] for key in ("max_concurrent", "max_failures") if key in sweeper})

    problems += _spec_field_problems(fields, ("max_concurrent", "max_failures"))
    if fields.get("method") in METHODS:
        problems += _cross_problems(
            fields["method"], params, fields.get("run_cap"), allow_huge, run_cap_given="run_cap" in fields
        )
    if problems:
        return None, problems
    return SweepSpec(**fields), problems


def _spec_field_problems(fields: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """:attr:`SweepSpec.CHECKS` applied to those of ``keys`` that ``fields`` has."""
    return [
        f"{path}: {problem}"
        for key in keys
        if key in fields
        for path, check in [SweepSpec.CHECKS[key]]
        if (problem := check(fields[key])) is not None
    ]


def _build_params(block: Any, problems: list[str]) -> list[Param]:
    """Every valid :class:`Param` of ``parameters:``; problems with the others are collected."""
    mapping = _mapping("parameters", block, "{optimizer: {values: [adam, rmsprop]}}", problems)
    if mapping is None:
        return []
    if not mapping:
        problems.append("parameters: is empty; list at least one, e.g. {epochs: {value: 3}}")
    params: list[Param] = []
    for name, raw in mapping.items():
        path = f"parameters.{name}"
        if name not in PARAMETER_NAMES:
            problems.append(f"{path}: {check_param(name, None)}")
            continue
        if not isinstance(raw, dict):
            kind = "values" if isinstance(raw, list) else "value"
            problems.append(
                f"{path}: expected a mapping like {{{kind}: ...}}, got {_show(raw)}; write {name}: {{{kind}: ...}}"
            )
            continue
        problems += _unknown_keys(path, raw, _PARAM_KEYS)
        kwargs = {k: raw[k] for k in _PARAM_KEYS if k in raw}
        if "value" in kwargs and kwargs["value"] is None:
            problems.append(f"{path}.value: is empty (null); give a value, e.g. {_EXAMPLES[name]!r}")
            continue
        if "values" in kwargs and not isinstance(kwargs["values"], list):
            problems += _values_problems(path, name, kwargs["values"])
            continue
        # W&B's explicit spellings of the default kinds.
        if kwargs.get("distribution") == "categorical" and "values" in kwargs:
            del kwargs["distribution"]
        elif kwargs.get("distribution") == "constant" and "value" in kwargs:
            del kwargs["distribution"]
        elif not {"distribution", "value", "values"} & kwargs.keys() and {"min", "max"} & kwargs.keys():
            # W&B infers the distribution from the bounds' types; so do we.
            whole = _is_int(kwargs.get("min")) and _is_int(kwargs.get("max"))
            kwargs["distribution"] = "int_uniform" if whole else "uniform"
        if "values" in kwargs:
            kwargs["values"] = tuple(kwargs["values"])
        try:
            params.append(Param(name, **kwargs))
        except SpecError as err:
            problems += err.problems
    return params


def _build_block(cls: type, block: dict[Any, Any], problems: list[str], required: Sequence[str] = ()) -> Any:
    """Build a block dataclass from a mapping: unknown keys and field problems are collected."""
    valid = tuple(f.name for f in dataclasses.fields(cls))
    problems += _unknown_keys(cls.PATH.rstrip("."), block, valid)
    if any(key not in block for key in required):
        return None
    try:
        return cls(**{k: v for k, v in block.items() if k in valid})
    except SpecError as err:
        problems += err.problems
        return None


def _apply_overrides(doc: dict[Any, Any], overrides: Sequence[str]) -> list[str]:
    """Apply ``--set key=value`` items to ``doc`` in place; return problems with malformed ones."""
    problems: list[str] = []
    if isinstance(overrides, (str, bytes)):
        return [f"--set: expected a list of key=value strings, got one string {_show(overrides)}"]
    for item in overrides:
        label = f"--set {_show(item)}"
        if not isinstance(item, str) or "=" not in item:
            problems.append(f"{label}: expected key=value, e.g. --set epochs=2 or --set sweeper.max_concurrent=1")
            continue
        key, text = item.split("=", 1)
        keys = key.strip().split(".")
        if not all(keys):
            problems.append(f"{label}: empty key; expected dotted.key=value, e.g. parameters.epochs.value=2")
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problems.append(f"{label}: the value is not valid YAML: {getattr(err, 'problem', None) or err}")
            continue
        except Exception as err:  # noqa: BLE001 - as in _load_text: hostile values must not crash
            problems.append(f"{label}: the value is not valid YAML: {type(err).__name__}")
            continue
        if len(keys) == 1 and keys[0] in PARAMETER_NAMES:
            # Shorthand: `--set epochs=2` fixes a parameter; `--set seed=[0,1]` lists values.
            keys, value = ["parameters", keys[0]], {"values" if isinstance(value, list) else "value": value}
        target: Any = doc
        for depth, part in enumerate(keys[:-1]):
            if target.get(part) is None:
                target[part] = {}
            target = target[part]
            if not isinstance(target, dict):
                problems.append(f"{label}: {'.'.join(keys[: depth + 1])} is {_show(target)}, not a mapping")
                break
        else:
            if len(keys) == 3 and keys[0] == "parameters" and keys[2] in ("value", "values"):
                # Setting value or values replaces the parameter's other alternatives.
                for other in _PARAM_KEYS:
                    target.pop(other, None)
            target[keys[-1]] = value
    return problems


# ---------------------------------------------------------------------------------------------
# W&B's own schema


@functools.cache
def _wandb_checker() -> Callable[[dict[str, Any]], list[str]] | None:
    """``sweeps.schema_violations_from_proposed_config``, or None when ``sweeps`` is missing."""
    try:
        with warnings.catch_warnings():
            # sweeps 0.3.0 declares a pydantic-v1 config key; pydantic 2 warns on import.
            warnings.filterwarnings("ignore", category=UserWarning, module="pydantic")
            from sweeps import schema_violations_from_proposed_config
    except ImportError:
        return None
    return schema_violations_from_proposed_config


def _wandb_schema_problems(document: dict[str, Any]) -> list[str]:
    """Violations of W&B's sweep schema by ``document`` (the spec minus ``sweeper:``).

    Runs only once our own checks pass: for the same mistake W&B's messages are vaguer
    ("... is not valid under any of the given schemas") and would duplicate ours, and its
    function raises ValueError on some malformed shapes. What it still reports after our
    checks pass is a real incompatibility with ``wandb sweep``. Skipped (no problems) when
    the ``sweeps`` package is not importable.
    """
    check = _wandb_checker()
    if check is None:
        return []
    try:
        messages = check(document)
    except Exception as err:  # noqa: BLE001 - a third-party validator must not crash the CLI
        messages = [f"{type(err).__name__}: {err}"]
    # dict.fromkeys: sweeps reports a min >= max violation twice.
    return [f"(W&B sweep schema): {message}" for message in dict.fromkeys(messages)]
